"""`org_registry_sensor`: keeps the dynamic partition set `orgs` in step with the YAML files,
records what the UI shows of them, and has the periods before each org's share_from recorded."""

import datetime as dt
import hashlib
import json

import dagster as dg

from counts_assets.core.files.periods import period_starts
from counts_assets.core.orgs.models import Organization
from counts_assets.defs.exports.jobs import daily_export_job, monthly_reconciliation_job
from counts_assets.defs.organizations.assets import (
    permission_changes,
    permission_record,
    registry_observation,
)
from counts_assets.defs.organizations.checks import files_accepted
from counts_assets.defs.shared.cadence import DAILY, MONTHLY
from counts_assets.defs.shared.partitions import ORGS_PARTITION_SET, orgs_partitions, partition_key
from counts_assets.defs.shared.records import latest_records
from counts_assets.defs.shared.resources import OrgRegistry
from counts_assets.defs.shared.runs import RANGE_END_TAG, RANGE_START_TAG


def periods_before_share_from(
    org: Organization, first: dt.date
) -> list[tuple[bool, dt.date, dt.date]]:
    """(monthly, first period start, last period start) of the org's partitions that end before
    its share_from: days from COUNTS_FIRST_DATE, and months wholly before share_from's month."""
    spans = []
    if org.share_from > first:
        spans.append((False, first, org.share_from - dt.timedelta(days=1)))
    first_month, share_month = first.replace(day=1), org.share_from.replace(day=1)
    if share_month > first_month:
        spans.append((True, first_month, (share_month - dt.timedelta(days=1)).replace(day=1)))
    return spans


def before_share_from_requests(
    instance: dg.DagsterInstance, org: Organization, first: dt.date
) -> list[dg.RunRequest]:
    """One ranged run per cadence that records the org's periods before share_from (no file,
    the reason in the metadata), so the partition view shows them as done, not as gaps among
    the real ones. Periods already recorded by any run are not requested again."""
    requests = []
    for monthly, start, last in periods_before_share_from(org, first):
        cadence = MONTHLY if monthly else DAILY
        keys = [str(partition_key(monthly, org.id, p)) for p in period_starts(start, last, monthly)]
        if len(latest_records(instance, cadence.summary, keys)) == len(keys):
            continue
        job = monthly_reconciliation_job if monthly else daily_export_job
        requests.append(
            dg.RunRequest(
                run_key=f"before share_from|{cadence.name}|{org.id}|{org.share_from}",
                job_name=job.name,
                tags={
                    RANGE_START_TAG: str(partition_key(monthly, org.id, start)),
                    RANGE_END_TAG: str(partition_key(monthly, org.id, last)),
                },
            )
        )
    return requests


def _cursor(raw: str | None) -> dict:
    try:
        cursor = json.loads(raw or "{}")
    except ValueError:
        cursor = {}
    return cursor if isinstance(cursor, dict) else {}


def registry_changes(known: set[str], registered: list[str]) -> tuple[list[str], list[str]]:
    """(to add, removed from the registry). A removed org keeps its partitions and history;
    automation stops because it only ever looks at the registry."""
    return sorted(set(registered) - known), sorted(known - set(registered))


@dg.sensor(
    name="org_registry_sensor",
    # A tick reads the folder's listing and stats (the parsed files are cached): cheap enough
    # that a new org file is picked up within seconds, not a minute.
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[daily_export_job, monthly_reconciliation_job],
    description="Adds each organization file's id to the `orgs` partitions; reports bad "
    "files; records each permission change; and, for a new org or a new share_from, requests "
    "one run per cadence that records the periods before share_from (no file: the partition "
    "view then shows them as done, and real gaps stand out).",
)
def org_registry_sensor(
    context: dg.SensorEvaluationContext, org_registry: OrgRegistry
) -> dg.SensorResult | dg.SkipReason:
    registry = org_registry.load()
    now = dt.datetime.now(dt.UTC)
    cursor = _cursor(context.cursor)
    # Rejections are logged when they change, not again at every tick; the skip reason of
    # every tick still counts them.
    state = [*map(str, registry.errors), *sorted(registry.orgs)]
    seen = hashlib.sha256("\n".join(state).encode()).hexdigest()[:16]
    observed = permission_changes(registry, cursor.get("permissions", {}), now)
    if seen != cursor.get("registry") or observed:
        if seen != cursor.get("registry"):
            for error in registry.errors:
                context.log.error(f"organization file rejected: {error}")
        observed.insert(0, registry_observation(registry, now))
        if seen != cursor.get("registry"):
            observed.append(files_accepted(registry))
    recorded = cursor.get("permissions", {}) | {
        org_id: permission_record(org.permission) for org_id, org in registry.orgs.items()
    }
    first = dt.date.fromisoformat(org_registry.first_date)
    shares = cursor.get("share_from", {})
    requests = []
    for org_id, org in sorted(registry.orgs.items()):
        if shares.get(org_id) != org.share_from.isoformat():
            requests += before_share_from_requests(context.instance, org, first)
    shares |= {org_id: org.share_from.isoformat() for org_id, org in registry.orgs.items()}
    context.update_cursor(
        json.dumps({"registry": seen, "permissions": recorded, "share_from": shares})
    )
    known = set(context.instance.get_dynamic_partitions(ORGS_PARTITION_SET))
    to_add, removed = registry_changes(known, list(registry.orgs))
    if removed:
        context.log.info(f"no longer in the registry (history kept): {', '.join(removed)}")
    if not to_add and not observed and not requests:
        return dg.SkipReason(
            f"{len(registry.orgs)} organizations registered, {len(registry.errors)} file errors"
        )
    if to_add:
        context.log.info(f"adding organizations: {', '.join(to_add)}")
    if requests:
        context.log.info(f"recording periods before share_from: {len(requests)} runs")
    return dg.SensorResult(
        asset_events=observed,
        run_requests=requests,
        dynamic_partitions_requests=[orgs_partitions.build_add_request(to_add)] if to_add else [],
    )
