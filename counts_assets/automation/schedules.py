"""`daily_export_schedule` and `monthly_reconciliation_schedule` (contract §7).

A schedule has one cron, so both evaluate every 15 minutes and decide due-ness per org inside.
Dagster only de-duplicates a schedule's run keys within one tick, so "never twice" is kept
here: each request carries a `counts/request` tag, and keys already on a run of the schedule
are not requested again (a failed run is retried by Dagster's run retries, not re-requested)."""

import datetime as dt

import dagster as dg
from dagster._core.storage.tags import SCHEDULE_NAME_TAG

from counts_assets import settings
from counts_assets.automation.due import DAILY_LOOKBACK, MONTHLY_LOOKBACK, due_days, due_months
from counts_assets.jobs import daily_export_job, monthly_reconciliation_job
from counts_assets.partitions import ORGS_PARTITION_SET, partition_key
from counts_assets.resources import OrgRegistry

REQUEST_TAG = "counts/request"
EVERY_15_MINUTES = "*/15 * * * *"


def already_requested(
    instance: dg.DagsterInstance, schedule_name: str, since: dt.datetime
) -> set[str]:
    records = instance.get_run_records(
        dg.RunsFilter(tags={SCHEDULE_NAME_TAG: schedule_name}, created_after=since)
    )
    return {r.dagster_run.tags[REQUEST_TAG] for r in records if REQUEST_TAG in r.dagster_run.tags}


def _requests(
    context: dg.ScheduleEvaluationContext,
    org_registry: OrgRegistry,
    monthly: bool,
    schedule_name: str,
):
    now = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    registry = org_registry.load()
    partitioned = set(context.instance.get_dynamic_partitions(ORGS_PARTITION_SET))
    orgs = [org for org_id, org in sorted(registry.orgs.items()) if org_id in partitioned]
    grace = dt.timedelta(minutes=settings.grace_minutes())
    first = dt.date.fromisoformat(org_registry.first_date)
    due = (due_months if monthly else due_days)(orgs, now, grace, first)
    memory = dt.timedelta(days=31 * (MONTHLY_LOOKBACK + 1) if monthly else DAILY_LOOKBACK + 3)
    done = already_requested(context.instance, schedule_name, now - memory)
    cadence = "monthly" if monthly else "daily"
    requests = []
    for org_id, start in due:
        key = f"{cadence}|{org_id}|{start.isoformat()}"
        if key in done:
            continue
        requests.append(
            dg.RunRequest(
                run_key=key,
                partition_key=partition_key(monthly, org_id, start),
                tags={REQUEST_TAG: key},
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
