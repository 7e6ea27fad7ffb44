"""What the instance knows about pairs: the newest published version of each, and what was last
delivered (the ledger). Both are read per asset for many partitions at once, never per pair."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

from counts_assets.assets.exports import DAILY, MONTHLY, Cadence
from counts_assets.pairs.store import PairVersion

CADENCES = {"daily": DAILY, "monthly": MONTHLY}
_CHUNK = 500


def ledger_key(cadence: Cadence) -> dg.AssetKey:
    return dg.AssetKey(f"{cadence.name}_delivery")


def legacy_ledger_keys(cadence: Cadence) -> tuple[dg.AssetKey, dg.AssetKey]:
    """The per-file ledgers of earlier versions: their deliveries still count."""
    return (
        dg.AssetKey(f"{cadence.name}_summary_delivery"),
        dg.AssetKey(f"{cadence.name}_needs_delivery"),
    )


def metadata_of(record: dg.EventLogRecord) -> dict[str, Any]:
    event = record.asset_materialization or record.asset_observation
    return {k: v.value for k, v in event.metadata.items()}


def latest_records(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    partitions: Iterable[str],
    observations: bool = False,
) -> dict[str, dg.EventLogRecord]:
    """The newest materialization (or observation) of each partition, paged in chunks."""
    fetch = instance.fetch_observations if observations else instance.fetch_materializations
    wanted = list(dict.fromkeys(partitions))
    found: dict[str, dg.EventLogRecord] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        cursor = None
        while True:
            result = fetch(
                dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=chunk),
                limit=2 * len(chunk),
                cursor=cursor,
                ascending=False,
            )
            for record in result.records:
                found.setdefault(record.partition_key, record)
            if not result.has_more or all(p in found for p in chunk):
                break
            cursor = result.cursor
    return found


def latest_ids(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, observations: bool = False
) -> Mapping[str, int]:
    """Storage id of the newest materialization (or observation) of every partition: one
    grouped query over the event index, however long the history."""
    kind = (
        dg.DagsterEventType.ASSET_OBSERVATION
        if observations
        else dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    return instance.get_latest_storage_id_by_partition(asset_key, kind)


@dataclass(frozen=True)
class Published:
    version: PairVersion
    storage_id: int
    paths: dict[str, str]


def published_versions(
    instance: dg.DagsterInstance, cadence: Cadence, partitions: Iterable[str]
) -> dict[str, Published]:
    """The newest published pair of each partition (periods that made no file are absent)."""
    partitions = list(partitions)
    summaries = latest_records(instance, cadence.summary, partitions)
    needs = latest_records(instance, cadence.needs, partitions)
    out = {}
    for partition, record in summaries.items():
        meta = metadata_of(record)
        needs_record = needs.get(partition)
        if "sha256" not in meta or needs_record is None:
            continue
        needs_meta = metadata_of(needs_record)
        if "sha256" not in needs_meta:
            continue
        out[partition] = Published(
            PairVersion(meta["sha256"], meta.get("needs_sha256") or needs_meta["sha256"]),
            record.storage_id,
            {"summary": meta.get("path", ""), "needs": needs_meta.get("path", "")},
        )
    return out


@dataclass(frozen=True)
class Delivered:
    version: PairVersion
    target: str
    storage_id: int
    delivered_at: str


def delivered_versions(
    instance: dg.DagsterInstance, cadence: Cadence, partitions: Iterable[str]
) -> dict[str, Delivered]:
    """What was last delivered of each partition, and where; the per-file ledger of earlier
    versions counts when both of its files were delivered to the same place."""
    partitions = list(partitions)
    out = {}
    for partition, record in latest_records(instance, ledger_key(cadence), partitions).items():
        meta = metadata_of(record)
        out[partition] = Delivered(
            PairVersion(meta["summary_sha256"], meta["needs_sha256"]),
            meta["target"],
            record.storage_id,
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
                out[partition] = Delivered(
                    PairVersion(s["sha256"], n["sha256"]),
                    f"{s['target'].rstrip('/')}/{_remote_dir(s['location'], s['target'])}",
                    min(summaries[partition].storage_id, needs[partition].storage_id),
                    s.get("delivered_at", ""),
                )
    return out


def _remote_dir(location: str, target: str) -> str:
    """`<target>/<remote_dir>/<file>` -> `<remote_dir>`."""
    inner = location[len(target.rstrip("/")) + 1 :] if location.startswith(target) else location
    return inner.rsplit("/", 1)[0]


def delivered_ids(instance: dg.DagsterInstance, cadence: Cadence) -> dict[str, int]:
    """Storage id of the newest delivery of every partition, the earlier per-file ledger
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
