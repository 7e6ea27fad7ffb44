"""Publishes cut short between their renames and their record (a run cancelled or its process
lost): each left a publish journal that vouches for the pair on disk. Recovery records such a
pair under its lock and drops the journal; the pair is then pending like any other.

`journal_recovery_job` does it for the orgs of export runs that ended without success:
`delivery_sensor` requests it from the instance's run history, so its tick never touches the
files. A delivery run does the same for its own org before it looks at what to send."""

import datetime as dt
import logging
from collections.abc import Callable, Container
from typing import NamedTuple

import dagster as dg

from counts_assets.core.pairs.store import PairBytes, PairLockTimeout, PairStore, disk_failure
from counts_assets.defs.delivery.ledger import (
    published_versions,
)
from counts_assets.defs.exports.jobs import EXPORT_JOBS
from counts_assets.defs.shared.cadence import DAILY, MONTHLY, Cadence
from counts_assets.defs.shared.partitions import partition_key
from counts_assets.defs.shared.resources import ExportFiles
from counts_assets.defs.shared.runs import (
    DELIVERY_MAX_RUNTIME,
    DELIVERY_WORK,
    export_runs,
    failure_metadata,
    partitions_of,
    step_failures,
)


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


def record_journalled_pairs(
    instance: dg.DagsterInstance,
    store: PairStore,
    org_ids: list[str],
    log: logging.Logger,
    by: str,
    record: Callable[[dg.AssetMaterialization], None],
    wait: bool = False,
) -> tuple[int, list[str]]:
    """Publishes left without their record by a run that ended between the two (cancelled,
    or its process lost): each journal vouches for its pair, which is recorded here, under
    the pair's lock, before the journal goes; it is then pending like any other. A pair whose
    lock is held (at once, or with `wait` past the store's lock wait) is left as it is.
    Returns how many were recorded, and the pairs left because their lock stayed held."""
    recorded = 0
    held: list[str] = []
    for org_id, cadence_name, period in store.journalled(org_ids):
        where = f"{org_id} {cadence_name} {period}"
        try:
            cadence = MONTHLY if cadence_name == "monthly" else DAILY
            start = dt.date.fromisoformat(period + "-01" if cadence.monthly else period)
            partition = str(partition_key(cadence.monthly, org_id, start))
            with store.locked(org_id, period, wait=wait) as pair:
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
        except PairLockTimeout as exc:
            log.warning(f"{where}: publish journal left, the pair's lock stayed held: {exc}")
            held.append(where)
        except BlockingIOError:
            continue  # a run holds the pair
        except OSError as exc:
            failure = disk_failure(exc)
            log.warning(f"{where}: publish journal left as it is: {failure.path}: {failure.reason}")
        except ValueError:
            log.warning(f"{where}: not the name of a publish journal; the file is left as it is")
    return recorded, held


JOURNAL_RECOVERY_JOB = "journal_recovery_job"
ENDED_WITHOUT_SUCCESS = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
# Which attempt a recovery run is; one that failed because a pair stayed locked is requested
# again, up to this many attempts in all (each failure is an alert).
RECOVERY_ATTEMPT_TAG = "counts/recovery_attempt"
MAX_RECOVERY_ATTEMPTS = 5
HELD_PAIRS = "held_pairs"


class RecoveryDue(NamedTuple):
    """A recovery to request: for the run `run_id` (an export run that ended without success,
    or a recovery run that failed), when its record last changed, its orgs (empty: all), and
    which attempt it is."""

    run_id: str
    updated_at: float
    org_ids: list[str]
    attempt: int


def ended_export_runs(
    instance: dg.DagsterInstance, updated_after: dt.datetime, known: Container[str]
) -> list[RecoveryDue]:
    """Every export run that started and ended without success after `updated_after`, but
    those `known`: the runs that may have left a publish journal (one that never started
    published nothing)."""
    ended = {}
    for cadence, job in EXPORT_JOBS:
        for record in export_runs(
            instance, job.name, cadence.summary, ENDED_WITHOUT_SUCCESS, updated_after=updated_after
        ):
            run = record.dagster_run
            if run.run_id in known or record.start_time is None:
                continue
            keys = partitions_of(run, cadence.partitions_def, instance)
            orgs = sorted({key.split("|")[1] for key in keys})
            ended[run.run_id] = RecoveryDue(
                run.run_id, record.update_timestamp.timestamp(), orgs, 1
            )
    return sorted(ended.values(), key=lambda due: due.updated_at)


def failed_recoveries(
    instance: dg.DagsterInstance, updated_after: dt.datetime, known: Container[str]
) -> list[RecoveryDue]:
    """Every journal_recovery_job run that failed after `updated_after` because a pair's lock
    stayed held past the wait, but those `known` and those that were the last attempt: the
    journals are still there, so the recovery is tried again. Any other failure (a run that
    died, a bad config) is left to the operator, who has its alert."""
    due = []
    for record in instance.get_run_records(
        dg.RunsFilter(
            job_name=JOURNAL_RECOVERY_JOB,
            statuses=[dg.DagsterRunStatus.FAILURE],
            updated_after=updated_after,
        )
    ):
        run = record.dagster_run
        attempt = int(run.tags.get(RECOVERY_ATTEMPT_TAG, "1")) + 1
        if run.run_id in known or attempt > MAX_RECOVERY_ATTEMPTS:
            continue
        if HELD_PAIRS not in failure_metadata(step_failures(instance, run)):
            continue
        config = (run.run_config or {}).get("ops", {}).get("recover_journals", {})
        orgs = sorted(config.get("config", {}).get("org_ids", []))
        due.append(RecoveryDue(run.run_id, record.update_timestamp.timestamp(), orgs, attempt))
    return sorted(due, key=lambda item: item.updated_at)


class JournalRecovery(dg.Config):
    org_ids: list[str]


@dg.op(
    name="recover_journals",
    description="Records the pairs whose publish was cut short before its record, from their "
    "publish journals, for the given organizations. A pair whose lock another run holds past "
    "the lock wait fails the run, and delivery_sensor requests it again (at most "
    f"{MAX_RECOVERY_ATTEMPTS} attempts).",
)
def recover_journals(
    context: dg.OpExecutionContext, config: JournalRecovery, export_files: ExportFiles
) -> None:
    recovered, held = record_journalled_pairs(
        context.instance,
        export_files.store(f"run {context.run_id}"),
        config.org_ids,
        context.log,
        "journal_recovery_job",
        context.log_event,
        wait=True,
    )
    context.log.info(f"{recovered} pairs recorded from their publish journals")
    if held:
        raise dg.Failure(
            f"{len(held)} publish journals left: another run held the pair past the lock wait "
            f"({'; '.join(held[:20])}); delivery_sensor requests this recovery again, up to "
            f"{MAX_RECOVERY_ATTEMPTS} attempts in all",
            metadata={HELD_PAIRS: len(held)},
        )


@dg.job(
    name=JOURNAL_RECOVERY_JOB,
    executor_def=dg.in_process_executor,
    tags=DELIVERY_WORK | DELIVERY_MAX_RUNTIME,
    description="Records pairs published by an export run that ended before recording them "
    "(cancelled, or its process lost), from their publish journals (launched by "
    "delivery_sensor with ops.recover_journals.config.org_ids).",
)
def journal_recovery_job() -> None:
    recover_journals()
