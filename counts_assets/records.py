"""Reading the instance's event records in bulk: the newest record of many partitions of an
asset in a few queries, never one query per partition."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import dagster as dg

_CHUNK = 500
T = TypeVar("T")


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


def latest_ids(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> Mapping[str, int]:
    """Storage id of the newest materialization of every partition: one grouped query over
    the event index, however long the history."""
    return instance.get_latest_storage_id_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION
    )


def newest_of_each_partition(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    keep: Callable[[dg.EventLogRecord], T],
    page: int = 10_000,
) -> dict[str, T]:
    """One pass over an asset's materializations, oldest first, keeping `keep(record)` of the
    newest of each partition: the whole state of a fleet's partitions at a small cost per
    record, where reading them partition by partition costs a query per few hundred."""
    newest: dict[str, T] = {}
    cursor = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key), limit=page, cursor=cursor, ascending=True
        )
        for record in result.records:
            if record.partition_key is not None:
                newest[record.partition_key] = keep(record)
        if not result.has_more:
            return newest
        cursor = result.cursor
