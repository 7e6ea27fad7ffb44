"""Runs that are queued or in progress, and the partitions they cover (a ranged run covers
every partition of its range): what a schedule or sensor must not request again."""

from __future__ import annotations

import dagster as dg

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


def in_flight_runs(instance: dg.DagsterInstance, job_name: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT)))


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
        keys = partitions_def.get_partition_keys_in_range(
            dg.PartitionKeyRange(tags[RANGE_START_TAG], tags[RANGE_END_TAG]),
            dynamic_partitions_store=instance,
        )
        orgs = scoped_orgs(run.run_config or {})
        return {k for k in keys if not orgs or k.split("|")[1] in orgs}
    return set()
