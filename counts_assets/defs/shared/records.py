"""Reading the instance's event records in bulk: the newest record of many partitions of an
asset in a few queries, never one query per partition."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from counts_assets.defs.shared.dagster_internals import latest_storage_ids

_CHUNK = 500


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
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Iterable[str] | None = None
) -> Mapping[str, int]:
    """Storage id of the newest materialization of every partition (or of those named): one
    grouped query over the event index, however long the history, where Dagster's instance
    offers it (not a public method); else Dagster's public record reads."""
    wanted = None if partitions is None else set(partitions)
    grouped = latest_storage_ids(instance, asset_key, wanted)
    if grouped is not None:
        return grouped
    if wanted is not None:
        return {p: r.storage_id for p, r in latest_records(instance, asset_key, wanted).items()}
    ids: dict[str, int] = {}
    cursor = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key), limit=10_000, cursor=cursor
        )
        for record in result.records:
            if record.partition_key:
                ids.setdefault(record.partition_key, record.storage_id)
        if not result.has_more:
            return ids
        cursor = result.cursor


def newest_facts(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    facts: Callable[[dg.EventLogRecord], list],
    cache: Path | None = None,
) -> dict[str, list]:
    """`facts(record)` of the newest materialization of every partition. A record never
    changes, so its facts are kept in `cache` (a JSON file: storage id -> partition and facts)
    and only records not seen before are read: reading a record costs about half a millisecond,
    a fleet's year is some 60,000 of them. An entry counts only for the partition it names
    (a storage id of another instance, or reused, names another); a cache that cannot be read
    or written only costs time. The caller names the cache after the layout of its facts."""
    newest = latest_ids(instance, asset_key)
    known: dict[int, list] = {}
    if cache is not None:
        try:
            known = {int(k): v for k, v in json.loads(cache.read_text()).items()}
        except (OSError, ValueError, AttributeError, TypeError):
            known = {}
    valid = {}
    for partition, sid in newest.items():
        entry = known.get(sid)
        if isinstance(entry, list) and entry and entry[0] == partition:
            valid[sid] = entry
    wanted = [sid for sid in newest.values() if sid not in valid]
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=chunk), limit=len(chunk)
        )
        for record in result.records:
            valid[record.storage_id] = [record.partition_key, *facts(record)]
    if cache is not None and wanted:
        _write_atomically(cache, json.dumps(valid, separators=(",", ":")))
    return {p: valid[sid][1:] for p, sid in newest.items() if sid in valid}


def _write_atomically(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, path)
    except OSError:
        pass  # a cache that cannot be written only costs the next reader time
