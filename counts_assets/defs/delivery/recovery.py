"""Publishes cut short between their renames and their record (a run cancelled or its process
lost): each left a publish journal that vouches for the pair on disk. Recovery records such a
pair under its lock and drops the journal; the pair is then pending like any other."""

import datetime as dt
import logging
from collections.abc import Callable

import dagster as dg

from counts_assets.core.pairs.store import PairBytes, PairStore, disk_failure
from counts_assets.defs.delivery.ledger import (
    published_versions,
)
from counts_assets.defs.shared.cadence import DAILY, MONTHLY, Cadence
from counts_assets.defs.shared.partitions import partition_key


def recovered_records(
    cadence: Cadence, partition: str, disk: PairBytes, by: str
) -> list[dg.AssetMaterialization]:
    """The records of a publish that was cut short after its renames and before it was
    recorded: its journal vouches for the bytes on disk."""
    records = []
    for kind, asset_key in (("needs", cadence.needs), ("summary", cadence.summary)):
        meta = {
            "status": "published",
            "path": dg.MetadataValue.path(str(disk.paths[kind].resolve())),
            "sha256": disk.version.sha256(kind),
            "size_bytes": len(disk.contents[kind]),
            "recovered": f"recorded by {by} from the publish journal",
        }
        if kind == "summary":
            meta["needs_sha256"] = disk.version.needs_sha256
        records.append(
            dg.AssetMaterialization(asset_key=asset_key, partition=partition, metadata=meta)
        )
    return records


def sweep_journals(
    instance: dg.DagsterInstance,
    store: PairStore,
    org_ids: list[str],
    log: logging.Logger,
    by: str,
    record: Callable[[dg.AssetMaterialization], None],
) -> int:
    """Publishes left without their record by a run that ended between the two (cancelled,
    or its process lost): each journal vouches for its pair, which is recorded here, under
    the pair's lock, before the journal goes; it is then pending like any other. A pair whose
    lock is held (a publish in progress) is left to its run. Returns how many were recorded."""
    recorded = 0
    for org_id, cadence_name, period in store.journalled(org_ids):
        where = f"{org_id} {cadence_name} {period}"
        try:
            cadence = MONTHLY if cadence_name == "monthly" else DAILY
            start = dt.date.fromisoformat(period + "-01" if cadence.monthly else period)
            partition = str(partition_key(cadence.monthly, org_id, start))
            with store.locked(org_id, period, wait=False) as pair:
                journal = pair.journal
                if journal is None:
                    continue  # an unfinished journal: the repair rolled the publish back
                disk = pair.read()
                if disk.version != journal:
                    log.warning(
                        f"{where}: the files on disk are not the ones its publish journal "
                        "names (edited since?); journal dropped, the pair waits to be made again"
                    )
                elif published_versions(instance, cadence, [partition]).get(partition) != journal:
                    for materialization in recovered_records(cadence, partition, disk, by):
                        record(materialization)
                    recorded += 1
                pair.drop_journal()
        except BlockingIOError:
            continue  # a run holds the pair
        except OSError as exc:
            failure = disk_failure(exc)
            log.warning(f"{where}: publish journal left as it is: {failure.path}: {failure.reason}")
        except ValueError:
            log.warning(f"{where}: not the name of a publish journal; the file is left as it is")
    return recorded
