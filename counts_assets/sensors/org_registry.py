"""`org_registry_sensor`: keeps the dynamic partition set `orgs` in step with the YAML files,
records what the UI shows of them, and has the periods before each org's share_from recorded."""

import datetime as dt
import hashlib
import json
from pathlib import Path

import dagster as dg
import pandas as pd

from counts_assets.assets.exports import DAILY, MONTHLY
from counts_assets.assets.metadata import markdown_table
from counts_assets.automation.runs import RANGE_END_TAG, RANGE_START_TAG
from counts_assets.exports.periods import period_starts
from counts_assets.jobs import daily_export_job, monthly_reconciliation_job
from counts_assets.orgs.models import Organization
from counts_assets.orgs.registry import Registry
from counts_assets.partitions import ORGS_PARTITION_SET, orgs_partitions, partition_key
from counts_assets.records import latest_records
from counts_assets.resources import OrgRegistry

ORGANIZATION_FILES = dg.AssetSpec(
    "organization_files",
    group_name="organizations",
    description="The organization files in COUNTS_ORGS_DIR, as the registry reads them. Each "
    "change is observed by org_registry_sensor: which organizations are registered and which "
    "files are rejected, with the field or line and the reason.",
)


EVERY_FILE_ACCEPTED = "every_file_accepted"


def files_accepted(registry: Registry) -> dg.AssetCheckEvaluation:
    """Passes when every organization file is accepted; fails naming each rejected file, its
    field or line and the reason (a rejected file's org is neither made nor delivered)."""
    by_file: dict[str, list[str]] = {}
    for error in registry.errors:
        by_file.setdefault(Path(error.path).name, []).append(f"{error.field}: {error.reason}")
    rejected = sorted(by_file)
    return dg.AssetCheckEvaluation(
        asset_key=ORGANIZATION_FILES.key,
        check_name=EVERY_FILE_ACCEPTED,
        passed=not rejected,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(rejected)} organization files rejected: "
            + " | ".join(f"{name}: {'; '.join(by_file[name])}" for name in rejected)
            if rejected
            else f"all {len(registry.orgs)} organization files accepted"
        )[:2000],
        metadata={"rejected": dg.MetadataValue.json(rejected)},
    )


ORGANIZATION_PERMISSION = dg.AssetSpec(
    "organization_permission",
    group_name="organizations",
    partitions_def=orgs_partitions,
    description="Each organization's signed permission letter, as its file states it. Every "
    "change of the `permission` block (a letter added, replaced, revoked or removed) is an "
    "observation of the org's partition: its history is the audit trail of which letter "
    "allowed sharing, from when, and when it was revoked. Nothing is delivered without a "
    "letter in force.",
)


def registry_observation(registry: Registry, now: dt.datetime) -> dg.AssetObservation:
    """What the UI shows of the registry: counts, each organization with its permission, and
    every rejected file."""
    orgs = pd.DataFrame(
        [
            (org.id, org.name, org.permission_summary(now))
            for _, org in sorted(registry.orgs.items())
        ],
        columns=["org", "name", "permission"],
    )
    rejected = pd.DataFrame(
        [(Path(e.path).name, e.field, e.reason) for e in registry.errors],
        columns=["file", "field or line", "reason"],
    )
    return dg.AssetObservation(
        asset_key=ORGANIZATION_FILES.key,
        metadata={
            "registered": len(registry.orgs),
            "rejected": len(registry.errors),
            "organizations": dg.MetadataValue.md(markdown_table(orgs, limit=500)),
            "rejected_files": dg.MetadataValue.md(markdown_table(rejected, limit=200)),
        },
    )


def permission_record(letter) -> dict:
    """The permission block as recorded in the audit trail (None: no block)."""
    if letter is None:
        return {}
    return {
        "document": letter.document,
        "signed_on": letter.signed_on.isoformat(),
        "prior_years": letter.prior_years,
        "revoked_on": letter.revoked_on.isoformat() if letter.revoked_on else None,
    }


def permission_changes(
    registry: Registry, recorded: dict[str, dict], now: dt.datetime
) -> list[dg.AssetObservation]:
    """One observation per org whose permission block differs from the one last recorded."""
    observations = []
    for org_id, org in sorted(registry.orgs.items()):
        current = permission_record(org.permission)
        if org_id in recorded and recorded[org_id] == current:
            continue
        change = "first seen" if org_id not in recorded else "changed"
        if not current:
            change = "no letter" if org_id not in recorded else "letter removed"
        observations.append(
            dg.AssetObservation(
                asset_key=ORGANIZATION_PERMISSION.key,
                partition=org_id,
                metadata={
                    "change": change,
                    "status": org.permission_summary(now),
                    "document": current.get("document") or "-",
                    "signed_on": current.get("signed_on") or "-",
                    "prior_years": bool(current.get("prior_years")),
                    "revoked_on": current.get("revoked_on") or "-",
                    "previous": json.dumps(recorded.get(org_id)) if org_id in recorded else "-",
                },
            )
        )
    return observations


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
    minimum_interval_seconds=60,
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
