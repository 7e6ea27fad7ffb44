"""What the instance knows about pairs: the newest published version of each, and what was last
delivered where (the ledger). Both are read per asset for many partitions at once, never per
pair."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from counts_assets.core.delivery.plan import (
    DELIVERED,
    DIVERGED,
    REFUSED,
    LedgerEntry,
    Published,
    Refusal,
)
from counts_assets.core.pairs.store import PairVersion
from counts_assets.defs.shared.cadence import Cadence
from counts_assets.defs.shared.records import latest_records, metadata_of

# What the destination holds, read back and compared (`delivery_audit`).
AUDIT_KEY = dg.AssetKey("delivery_audit")


def ledger_key(cadence: Cadence) -> dg.AssetKey:
    return dg.AssetKey(f"{cadence.name}_delivery")


def diverged_entry(
    cadence: Cadence, partition: str, destination: str, reason: str, found: dict[str, str]
) -> dg.AssetMaterialization:
    """A `diverged` ledger entry: the destination does not hold what the ledger last said it holds
    (`found`: what was seen there), so the pair is pending again."""
    return dg.AssetMaterialization(
        asset_key=ledger_key(cadence),
        partition=partition,
        metadata={"status": DIVERGED, "reason": reason, "target": destination, **found},
    )


def _version(meta: dict) -> PairVersion | None:
    if "sha256" not in meta:
        return None  # the period made no file (before share_from, or not yet ended)
    return PairVersion(meta["sha256"], meta["needs_sha256"])


def published_pairs(
    instance: dg.DagsterInstance, cadence: Cadence, partitions: Iterable[str]
) -> dict[str, Published]:
    """The newest record of each partition: its version (the summary file's record names both
    files), or None when it made no file."""
    return {
        partition: Published(record.storage_id, _version(metadata_of(record)))
        for partition, record in latest_records(instance, cadence.summary, partitions).items()
    }


def published_versions(
    instance: dg.DagsterInstance, cadence: Cadence, partitions: Iterable[str]
) -> dict[str, PairVersion]:
    """The newest published version of each partition (periods that made no file are absent)."""
    return {
        partition: published.version
        for partition, published in published_pairs(instance, cadence, partitions).items()
        if published.version is not None
    }


def version_history(
    instance: dg.DagsterInstance, cadence: Cadence, partition: str
) -> list[PairVersion]:
    """Every version of the pair ever published, newest first."""
    versions, cursor = [], None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=cadence.summary, asset_partitions=[partition]),
            limit=100,
            cursor=cursor,
        )
        for record in result.records:
            version = _version(metadata_of(record))
            if version is not None:
                versions.append(version)
        if not result.has_more:
            return versions
        cursor = result.cursor


def ledger_entries(
    instance: dg.DagsterInstance, cadence: Cadence, partitions: Iterable[str]
) -> dict[str, LedgerEntry]:
    """The newest ledger entry of each partition: what its destination holds as far as the
    ledger knows."""
    out = {}
    for partition, record in latest_records(instance, ledger_key(cadence), partitions).items():
        meta = metadata_of(record)
        summary, needs = meta.get("summary_sha256"), meta.get("needs_sha256")
        out[partition] = LedgerEntry(
            record.storage_id,
            meta.get("status", DELIVERED),
            PairVersion(summary, needs) if summary and needs else None,
            meta["target"],
            meta.get("delivered_at", ""),
        )
    return out


def latest_refusals(
    instance: dg.DagsterInstance, cadence: Cadence, partitions: Iterable[str]
) -> dict[str, Refusal]:
    """The pairs whose newest ledger observation is a refusal."""
    return {
        partition: Refusal(record.storage_id, metadata_of(record).get("org_file", ""))
        for partition, record in latest_records(
            instance, ledger_key(cadence), partitions, observations=True
        ).items()
        if metadata_of(record).get("status") == REFUSED
    }
