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
from counts_assets.defs.shared.cadence import DAILY, MONTHLY, Cadence
from counts_assets.defs.shared.records import latest_ids, latest_records, metadata_of

CADENCES = {"daily": DAILY, "monthly": MONTHLY}
# What the place holds, read back and compared (`delivery_audit`).
AUDIT_KEY = dg.AssetKey("delivery_audit")


def ledger_key(cadence: Cadence) -> dg.AssetKey:
    return dg.AssetKey(f"{cadence.name}_delivery")


def diverged_entry(
    cadence: Cadence, partition: str, place: str, reason: str, found: dict[str, str]
) -> dg.AssetMaterialization:
    """A `diverged` ledger entry: the place does not hold what the ledger last said it holds
    (`found`: what was seen there), so the pair is pending again."""
    return dg.AssetMaterialization(
        asset_key=ledger_key(cadence),
        partition=partition,
        metadata={"status": DIVERGED, "reason": reason, "target": place, **found},
    )


def legacy_ledger_keys(cadence: Cadence) -> tuple[dg.AssetKey, dg.AssetKey]:
    """The per-file ledgers of earlier versions: their deliveries still count."""
    return (
        dg.AssetKey(f"{cadence.name}_summary_delivery"),
        dg.AssetKey(f"{cadence.name}_needs_delivery"),
    )


def _version(meta: dict, needs_sha256: str | None) -> PairVersion | None:
    if "sha256" not in meta:
        return None  # the period made no file (before share_from, or not yet ended)
    needs = meta.get("needs_sha256") or needs_sha256
    return PairVersion(meta["sha256"], needs) if needs else None


def published_pairs(
    instance: dg.DagsterInstance, cadence: Cadence, partitions: Iterable[str]
) -> dict[str, Published]:
    """The newest record of each partition: its version, or None when it made no file. The
    summary file's record names both files; records made by earlier versions, without the
    needs file's SHA-256, take it from the needs file's record."""
    summaries = latest_records(instance, cadence.summary, partitions)
    older = [p for p, r in summaries.items() if "needs_sha256" not in metadata_of(r)]
    needs = {
        partition: metadata_of(record).get("sha256")
        for partition, record in latest_records(instance, cadence.needs, older).items()
    }
    return {
        partition: Published(record.storage_id, _version(metadata_of(record), needs.get(partition)))
        for partition, record in summaries.items()
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
            version = _version(metadata_of(record), None)
            if version is not None:
                versions.append(version)
        if not result.has_more:
            return versions
        cursor = result.cursor


def ledger_entries(
    instance: dg.DagsterInstance, cadence: Cadence, partitions: Iterable[str]
) -> dict[str, LedgerEntry]:
    """The newest ledger entry of each partition: what its place holds as far as the ledger
    knows. The per-file ledger of earlier versions counts when both of its files were
    delivered to the same place."""
    partitions = list(partitions)
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
    missing = [p for p in partitions if p not in out]
    if missing:
        summary_key, needs_key = legacy_ledger_keys(cadence)
        summaries = latest_records(instance, summary_key, missing)
        needs = latest_records(instance, needs_key, missing)
        for partition in set(summaries) & set(needs):
            s, n = metadata_of(summaries[partition]), metadata_of(needs[partition])
            if s.get("target") and s.get("target") == n.get("target"):
                out[partition] = LedgerEntry(
                    min(summaries[partition].storage_id, needs[partition].storage_id),
                    DELIVERED,
                    PairVersion(s["sha256"], n["sha256"]),
                    f"{s['target'].rstrip('/')}/{_remote_dir(s['location'], s['target'])}",
                    s.get("delivered_at", ""),
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


def _remote_dir(location: str, target: str) -> str:
    """`<target>/<remote_dir>/<file>` -> `<remote_dir>`."""
    inner = location[len(target.rstrip("/")) + 1 :] if location.startswith(target) else location
    return inner.rsplit("/", 1)[0]


def delivered_ids(instance: dg.DagsterInstance, cadence: Cadence) -> dict[str, int]:
    """Storage id of the newest ledger entry of every partition, the earlier per-file ledger
    included (a pair counts there once both files were delivered)."""
    ids = dict(latest_ids(instance, ledger_key(cadence)))
    summary_key, needs_key = legacy_ledger_keys(cadence)
    legacy_summary = latest_ids(instance, summary_key)
    if legacy_summary:
        legacy_needs = latest_ids(instance, needs_key)
        for partition, sid in legacy_summary.items():
            if partition in legacy_needs:
                legacy = min(sid, legacy_needs[partition])
                ids[partition] = max(ids.get(partition, 0), legacy)
    return ids
