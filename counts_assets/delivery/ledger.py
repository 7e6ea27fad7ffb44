"""What the instance knows about pairs: the newest published version of each, and what was last
delivered (the ledger). Both are read per asset for many partitions at once, never per pair."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

from counts_assets.assets.exports import DAILY, MONTHLY, Cadence
from counts_assets.pairs.store import PairVersion
from counts_assets.records import latest_ids, latest_records, metadata_of

CADENCES = {"daily": DAILY, "monthly": MONTHLY}


def ledger_key(cadence: Cadence) -> dg.AssetKey:
    return dg.AssetKey(f"{cadence.name}_delivery")


def legacy_ledger_keys(cadence: Cadence) -> tuple[dg.AssetKey, dg.AssetKey]:
    """The per-file ledgers of earlier versions: their deliveries still count."""
    return (
        dg.AssetKey(f"{cadence.name}_summary_delivery"),
        dg.AssetKey(f"{cadence.name}_needs_delivery"),
    )


def published_versions(
    instance: dg.DagsterInstance, cadence: Cadence, partitions: Iterable[str]
) -> dict[str, PairVersion]:
    """The newest published pair of each partition (periods that made no file are absent): the
    summary file's record names both files. Records made by earlier versions, without the
    needs file's SHA-256, take it from the needs file's record."""
    summaries = {
        partition: metadata_of(record)
        for partition, record in latest_records(instance, cadence.summary, partitions).items()
    }
    published = {p: meta for p, meta in summaries.items() if "sha256" in meta}
    older = [p for p, meta in published.items() if "needs_sha256" not in meta]
    needs = {
        partition: metadata_of(record).get("sha256")
        for partition, record in latest_records(instance, cadence.needs, older).items()
    }
    return {
        partition: PairVersion(meta["sha256"], meta.get("needs_sha256") or needs[partition])
        for partition, meta in published.items()
        if meta.get("needs_sha256") or needs.get(partition)
    }


@dataclass(frozen=True)
class Delivered:
    version: PairVersion
    target: str
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
