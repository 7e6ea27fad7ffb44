"""`daily_export_schedule` and `monthly_reconciliation_schedule`.

A schedule has one cron, so both evaluate every 15 minutes and decide due-ness per org inside.
"Requested once" counts every run, not only the schedule's own: a due partition is not
requested when its files already have a materialization (from any run, even one that wrote no
file because of share_from), when a run for it is queued or in progress, or when this schedule
requested it less than an hour ago. So a partition whose last run failed is requested again at
most once an hour while it is inside the look-back window."""

import datetime as dt

import dagster as dg

from counts_assets.core import settings
from counts_assets.core.due import due_days, due_months
from counts_assets.core.files.periods import period_bounds, period_starts
from counts_assets.core.orgs.models import Organization
from counts_assets.defs.exports.jobs import daily_export_job, monthly_reconciliation_job
from counts_assets.defs.exports.records import STATUS_NOT_ENDED, STATUS_NOT_MADE
from counts_assets.defs.shared.cadence import DAILY, MONTHLY, Cadence
from counts_assets.defs.shared.partitions import ORGS_PARTITION_SET, partition_key
from counts_assets.defs.shared.records import latest_ids, latest_records, metadata_of
from counts_assets.defs.shared.resources import OrgRegistry
from counts_assets.defs.shared.runs import (
    IN_FLIGHT,
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    export_runs,
    partitions_of,
)

REQUEST_TAG = "counts/request"
REQUESTED_AT_TAG = "counts/requested_at"
SCHEDULE_NAME_TAG = "dagster/schedule_name"  # Dagster's tag on the runs a schedule requests
EVERY_15_MINUTES = "*/15 * * * *"
REQUEST_AGAIN_AFTER = dt.timedelta(hours=1)


def already_requested(
    instance: dg.DagsterInstance, schedule_name: str, since: dt.datetime, monthly: bool
) -> set[str]:
    """Partitions this schedule requested after `since` (by the tick's own time)."""
    cadence = MONTHLY if monthly else DAILY
    records = instance.get_run_records(
        dg.RunsFilter(tags={SCHEDULE_NAME_TAG: schedule_name}, created_after=since)
    )
    keys: set[str] = set()
    for record in records:
        run = record.dagster_run
        requested_at = run.tags.get(REQUESTED_AT_TAG)
        if REQUEST_TAG in run.tags and (
            requested_at is None or dt.datetime.fromisoformat(requested_at) > since
        ):
            keys |= partitions_of(run, cadence.partitions_def, instance)
    return keys


def made_or_in_flight(
    instance: dg.DagsterInstance, monthly: bool, job_name: str, due: list[str]
) -> set[str]:
    """Due partitions already materialized by any run (a materialization that waited for the
    period to end, or of an org without a valid file then, does not count), or covered by a
    queued or in-progress run."""
    cadence = MONTHLY if monthly else DAILY
    made = {
        partition
        for partition, record in latest_records(instance, cadence.summary, due).items()
        if metadata_of(record).get("status") not in (STATUS_NOT_ENDED, STATUS_NOT_MADE)
    }
    return made | in_flight(instance, cadence, job_name)


def in_flight(instance: dg.DagsterInstance, cadence: Cadence, job_name: str) -> set[str]:
    """The partitions a queued or running export run covers, launched by a schedule, by hand
    or as a backfill from the asset pages."""
    busy: set[str] = set()
    for record in export_runs(instance, job_name, cadence.summary, IN_FLIGHT):
        busy |= partitions_of(record.dagster_run, cadence.partitions_def, instance)
    return busy


def months_and_their_days(
    instance: dg.DagsterInstance,
    months: dict[str, tuple[str, dt.date]],
    orgs: dict[str, Organization],
    now: dt.datetime,
    grace: dt.timedelta,
    first: dt.date,
) -> tuple[set[str], set[str]]:
    """(months to wait for, months to make again). A month waits while one of its daily
    partitions is unsettled: a run covers it, or it is due inside the daily look-back with no
    materialization and the daily schedule has not yet requested it this hour (it is about to:
    at a month end both schedules tick together). Failed days, and days outside the look-back
    (made by backfill only), are settled. A month made before a daily partition of it was
    recorded is made again, so its reconciliation diff compares the daily files as they are."""
    days_of: dict[str, list[str]] = {}
    for month_key, (org_id, month) in months.items():
        org = orgs[org_id]
        days = period_starts(month, period_bounds(month, True)[1], False)
        days_of[month_key] = [
            str(partition_key(False, org_id, d)) for d in days if d >= org.share_from
        ]
    all_days = {key for days in days_of.values() for key in days}
    due = {str(partition_key(False, o, d)) for o, d in due_days(orgs.values(), now, grace, first)}
    made = made_or_in_flight(instance, False, daily_export_job.name, sorted(due & all_days))
    busy = in_flight(instance, DAILY, daily_export_job.name)
    requested = already_requested(
        instance, "daily_export_schedule", now - REQUEST_AGAIN_AFTER, monthly=False
    )
    unsettled = (busy & all_days) | ((due & all_days) - made - requested)
    waiting = {m for m, days in days_of.items() if unsettled.intersection(days)}
    month_ids = latest_ids(instance, MONTHLY.summary, months)
    day_ids = latest_ids(instance, DAILY.summary, all_days)
    behind = {
        m
        for m, days in days_of.items()
        if m in month_ids and max((day_ids.get(d, 0) for d in days), default=0) > month_ids[m]
    }
    # A month already being made again is not requested again while its run waits.
    remaking = in_flight(instance, MONTHLY, monthly_reconciliation_job.name)
    return waiting, behind - waiting - remaking


def per_period(org_order: list[str], pending: list[tuple[str, dt.date]]) -> list:
    """Pending (org, period start) pairs as runs: one per period, its orgs in partition order.
    Each run covers the range from its first to its last org and names the orgs to make in
    it, so one run serves every org that came due at a tick, wherever the others sit in the
    order (each run costs a process start)."""
    position = {org_id: n for n, org_id in enumerate(org_order)}
    by_start: dict[dt.date, list[str]] = {}
    for org_id, start in pending:
        by_start.setdefault(start, []).append(org_id)
    return [
        (start, sorted(by_start[start], key=position.__getitem__)) for start in sorted(by_start)
    ]


def _requests(
    context: dg.ScheduleEvaluationContext,
    org_registry: OrgRegistry,
    monthly: bool,
    schedule_name: str,
):
    now = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    registry = org_registry.load()
    org_order = context.instance.get_dynamic_partitions(ORGS_PARTITION_SET)
    registered = set(org_order)
    orgs = [org for org_id, org in sorted(registry.orgs.items()) if org_id in registered]
    grace = dt.timedelta(minutes=settings.current().grace_minutes)
    first = dt.date.fromisoformat(org_registry.first_date)
    due = (due_months if monthly else due_days)(orgs, now, grace, first)
    keys = {str(partition_key(monthly, org_id, start)): (org_id, start) for org_id, start in due}
    job_name = (monthly_reconciliation_job if monthly else daily_export_job).name
    handled = made_or_in_flight(context.instance, monthly, job_name, list(keys))
    if monthly:
        waiting, behind = months_and_their_days(
            context.instance, keys, {org.id: org for org in orgs}, now, grace, first
        )
        handled = (handled - behind) | waiting
    handled |= already_requested(
        context.instance, schedule_name, now - REQUEST_AGAIN_AFTER, monthly
    )
    pending = [pair for partition, pair in keys.items() if partition not in handled]
    cadence = "monthly" if monthly else "daily"
    requests = []
    for start, org_ids in per_period(org_order, pending):
        first_key = str(partition_key(monthly, org_ids[0], start))
        last_key = str(partition_key(monthly, org_ids[-1], start))
        request = f"{cadence}|{start.isoformat()}|{len(org_ids)} orgs"
        # The partition tags from the start, so a queued request already counts as in flight.
        tags = {REQUEST_TAG: request, REQUESTED_AT_TAG: now.isoformat()}
        run_config = {}
        if len(org_ids) > 1:
            tags |= {RANGE_START_TAG: first_key, RANGE_END_TAG: last_key}
            run_config = {"ops": {f"{cadence}_exports": {"config": {"orgs": org_ids}}}}
        else:
            tags[PARTITION_TAG] = first_key
        requests.append(
            dg.RunRequest(
                run_key=f"{request}|{first_key}..{last_key}|{now.isoformat(timespec='minutes')}",
                partition_key=first_key if len(org_ids) == 1 else None,
                run_config=run_config,
                tags=tags,
            )
        )
    if not requests:
        return dg.SkipReason(f"nothing newly due at {now.isoformat()} for {len(orgs)} orgs")
    return requests


@dg.schedule(
    name="daily_export_schedule",
    cron_schedule=EVERY_15_MINUTES,
    job=daily_export_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Requests (D, org) once D has ended in the org's time zone plus the grace "
    "period; looks back over the last 7 due dates to catch up after an outage.",
)
def daily_export_schedule(context: dg.ScheduleEvaluationContext, org_registry: OrgRegistry):
    return _requests(context, org_registry, monthly=False, schedule_name="daily_export_schedule")


@dg.schedule(
    name="monthly_reconciliation_schedule",
    cron_schedule=EVERY_15_MINUTES,
    job=monthly_reconciliation_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Requests (M, org) once month M has ended in the org's time zone plus the "
    "grace period; looks back over the last 2 due months.",
)
def monthly_reconciliation_schedule(
    context: dg.ScheduleEvaluationContext, org_registry: OrgRegistry
):
    return _requests(
        context, org_registry, monthly=True, schedule_name="monthly_reconciliation_schedule"
    )
