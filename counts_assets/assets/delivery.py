"""Delivery assets: one per file asset, partitioned the same way. Each materialization is a
ledger entry (what was delivered where and when, size and sha256); a failed delivery run shows
as a failed partition; a file made but not yet delivered shows as missing."""

import datetime as dt
import hashlib
from typing import Any

import dagster as dg
from pydantic import Field

from counts_assets.assets.exports import DAILY, MONTHLY, Cadence
from counts_assets.delivery.resource import DeliveryResource
from counts_assets.delivery.retry import deliver_with_retries
from counts_assets.exports.layout import file_path
from counts_assets.exports.periods import period_bounds, period_label
from counts_assets.partitions import split_key
from counts_assets.resources import ExportFiles, OrgRegistry
from counts_assets.validation.gate import validate_published_file

SFTP_POOL = "sftp"


class DeliveryRunConfig(dg.Config):
    sha256: str = Field(
        default="",
        description="Content the sensor saw materialized; a newer file on disk supersedes it.",
    )


def delivery_key(cadence: Cadence, kind: str) -> dg.AssetKey:
    return dg.AssetKey(f"{cadence.name}_{kind}_delivery")


def last_delivery(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str
) -> dict[str, Any] | None:
    """Newest ledger entry of a file: its metadata, or None when never delivered."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def build_delivery_asset(cadence: Cadence, kind: str) -> dg.AssetsDefinition:
    key = delivery_key(cadence, kind)

    @dg.asset(
        key=key,
        deps=[cadence.file_keys[kind]],
        partitions_def=cadence.partitions_def,
        group_name="delivery",
        pool=SFTP_POOL,
        output_required=False,
        description=f"The {cadence.name} {kind} file as delivered to 211 Counts (the ledger).",
    )
    def deliver_file(
        context: dg.AssetExecutionContext,
        config: DeliveryRunConfig,
        delivery: DeliveryResource,
        export_files: ExportFiles,
        org_registry: OrgRegistry,
    ):
        org_id, start = split_key(cadence.partitions_def, context.partition_key)
        first, last = period_bounds(start, cadence.monthly)
        period = period_label(first, cadence.monthly)
        org = org_registry.load().orgs.get(org_id)
        if org is None:
            raise dg.Failure(f"{org_id} has no valid organization file: nothing is delivered")
        path = file_path(export_files.root, org_id, period, kind)
        try:
            content = path.read_bytes()
        except FileNotFoundError as exc:
            raise dg.Failure(f"{path} does not exist: materialize the file first") from exc
        sha = hashlib.sha256(content).hexdigest()
        if config.sha256 and sha != config.sha256:
            context.log.info(
                f"{path.name} was replaced by a newer materialization ({sha[:12]}) since this "
                "delivery was requested: that one has its own delivery run"
            )
            return
        failures = validate_published_file(
            content,
            kind,
            org_id,
            period,
            max(first, org.share_from).isoformat(),
            last.isoformat(),
        )
        if failures:
            raise dg.Failure(
                f"{path} fails validation and is not delivered:\n" + "\n".join(failures)
            )

        target = delivery.target()
        previous = last_delivery(context.instance, key, context.partition_key)
        if (
            previous
            and previous.get("sha256") == sha
            and previous.get("target") == (target.describe())
        ):
            context.log.info(f"{path.name} unchanged since {previous.get('delivered_at')}")
            yield dg.MaterializeResult(metadata={**previous, "status": "unchanged"})
            return
        receipt = deliver_with_retries(
            target,
            org.remote_dir,
            path.name,
            content,
            delivery.retry_policy(),
            context.log.warning,
        )
        context.log.info(f"delivered {path.name} to {receipt.location}")
        yield dg.MaterializeResult(
            metadata={
                "status": "delivered",
                "target": target.describe(),
                "location": receipt.location,
                "size_bytes": receipt.size,
                "sha256": receipt.sha256,
                "delivered_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "replaced_sha256": (previous or {}).get("sha256", ""),
            }
        )

    return deliver_file


DELIVERY_ASSETS = {
    (cadence.name, kind): build_delivery_asset(cadence, kind)
    for cadence in (DAILY, MONTHLY)
    for kind in ("summary", "needs")
}
