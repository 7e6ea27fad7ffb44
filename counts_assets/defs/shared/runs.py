"""Runs that are queued or in progress, and the partitions they cover (a ranged run covers
every partition of its range): what a schedule or sensor must not request again."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

import dagster as dg

from counts_assets.defs.shared.dagster_internals import asset_job_name

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# Dagster's own run tags for a run's partition or partition range.
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# What a run does, for the run queue's limits per kind of work (dagster.yaml): exports take the
# CPU, deliveries wait on the network, and neither may starve the other.
WORK_TAG = "counts/work"
EXPORT_WORK = {WORK_TAG: "export"}
DELIVERY_WORK = {WORK_TAG: "delivery"}
# Every run has a bound: Dagster's run monitoring ends a run past its `dagster/max_runtime`
# (dagster.yaml); its pairs stay pending, its slots are freed.
MAX_RUNTIME_TAG = "dagster/max_runtime"
EXPORT_MAX_RUNTIME = {MAX_RUNTIME_TAG: str(2 * 3600)}
DELIVERY_MAX_RUNTIME = {MAX_RUNTIME_TAG: str(30 * 60)}
# A delivery run's organization, the destination it sends to (a hash of it: a run still sending to
# an old destination after COUNTS_DELIVERY_URL or a remote_dir changed writes entries for that old
# destination), and whether it stopped at its batch limit with pairs left (continued at once).
ORG_TAG = "counts/org"
DESTINATION_TAG = "counts/destination"
MORE_PENDING_TAG = "counts/more_pending"


def destination_tag(destination: str) -> str:
    return hashlib.sha256(destination.encode()).hexdigest()[:16]


def run_org(run: dg.DagsterRun) -> str | None:
    """The organization a delivery or re-delivery run works for: its tag, or its config (an
    operator's re-delivery launched from the UI carries no tag)."""
    if ORG_TAG in run.tags:
        return run.tags[ORG_TAG]
    ops = (run.run_config or {}).get("ops", {})
    return next(
        (op["config"]["org_id"] for op in ops.values() if "org_id" in op.get("config", {})), None
    )


def in_flight_runs(instance: dg.DagsterInstance, job_name: str) -> list[dg.DagsterRun]:
    records = instance.get_run_records(dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT))
    return [record.dagster_run for record in records]


def export_runs(
    instance: dg.DagsterInstance,
    job_name: str,
    summary: dg.AssetKey,
    statuses: list[dg.DagsterRunStatus],
    created_after: dt.datetime | None = None,
    updated_after: dt.datetime | None = None,
) -> list[dg.RunRecord]:
    """The runs that make a cadence's pairs: its job's, and those launched from the asset pages
    (Dagster's implicit asset job) whose selection holds the cadence's files. Where Dagster's
    name for that job cannot be read, the runs of every job are read and kept by selection."""
    asset_job = asset_job_name()
    records = []
    for name in (job_name, asset_job) if asset_job else (None,):
        runs = instance.get_run_records(
            dg.RunsFilter(
                job_name=name,
                statuses=statuses,
                created_after=created_after,
                updated_after=updated_after,
            )
        )
        records += [
            r
            for r in runs
            if r.dagster_run.job_name == job_name
            or summary in (r.dagster_run.asset_selection or ())
        ]
    return records


def scoped_orgs(run_config: dict) -> set[str]:
    """The orgs an export run was told to make inside its range (empty: all of them)."""
    ops = run_config.get("ops", {})
    return {org for op in ops.values() for org in op.get("config", {}).get("orgs", [])}


def partitions_of(
    run: dg.DagsterRun,
    partitions_def: dg.PartitionsDefinition,
    instance: dg.DagsterInstance,
) -> set[str]:
    tags = run.tags
    if PARTITION_TAG in tags:
        return {tags[PARTITION_TAG]}
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        start, end = tags[RANGE_START_TAG], tags[RANGE_END_TAG]
        orgs = scoped_orgs(run.run_config or {})
        try:
            keys = partitions_def.get_partition_keys_in_range(
                dg.PartitionKeyRange(start, end), dynamic_partitions_store=instance
            )
        except Exception:
            # A range Dagster can no longer expand (an org partition deleted, the first date
            # moved later): its ends, and the orgs it named, are what is left to go by.
            keys = [start, end] + [
                f"{day}|{org}" for day in {start.split("|")[0], end.split("|")[0]} for org in orgs
            ]
        return {k for k in keys if not orgs or k.split("|")[1] in orgs}
    return set()


def step_failures(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Sequence[dg.DagsterEvent]:
    """The events of a run's failed steps, read as a run-failure sensor reads them (Dagster's
    public context; the run's own failure event it is built with is not read)."""
    context = dg.RunFailureSensorContext(
        sensor_name="counts_assets",
        dagster_run=run,
        dagster_event=dg.DagsterEvent(dg.DagsterEventType.RUN_FAILURE.value, run.job_name),
        instance=instance,
    )
    return context.get_step_failure_events()


def failure_metadata(events: Sequence[dg.DagsterEvent]) -> dict[str, object]:
    """The metadata the failed steps' `dg.Failure`s carried, merged."""
    found: dict[str, object] = {}
    for event in events:
        error = event.step_failure_data
        user = error.user_failure_data if error else None
        if user:
            found.update({key: value.value for key, value in user.metadata.items()})
    return found
