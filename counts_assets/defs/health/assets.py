"""`fleet_health`: is every centre fine today? The per-organization table of
`python -m counts_assets.status`, as an asset the UI shows, made again every hour (with the
check of `organization_files`), with a check that fails naming the orgs that are not fine."""

import datetime as dt

import dagster as dg
import pandas as pd

from counts_assets.defs.delivery.resources import DeliveryResource
from counts_assets.defs.health.resources import AlertHook
from counts_assets.defs.health.view import (
    attention_markdown,
    fleet_health,
    health_cache,
    health_table,
    summary_line,
)
from counts_assets.defs.organizations.checks import every_file_accepted
from counts_assets.defs.shared.metadata import markdown_table
from counts_assets.defs.shared.resources import OrgRegistry

FLEET_HEALTH = dg.AssetKey("fleet_health")
EVERY_ORG_FINE = "every_org_fine"


@dg.asset(
    name="fleet_health",
    group_name="health",
    check_specs=[
        dg.AssetCheckSpec(
            EVERY_ORG_FINE,
            asset=FLEET_HEALTH,
            description="Fails while any organization is not fine, naming them.",
        )
    ],
    description="Is every centre fine today? A summary line, an `attention` list (each org "
    "that is not fine or has something to say: its problems and what to do) and a `health` "
    "table of one short line per organization file. An org is fine when every period that is "
    "due (from share_from through the last period ended in its time zone, plus the grace "
    "period) has its published pair, the current destination holds it (or it waits for permission, "
    "said so), no period's latest run failed, and the newest delivery_audit found nothing; a "
    "rejected file is a line that is not fine. Made every hour by fleet_health_schedule; the "
    "same view as `python -m counts_assets.status`. Each change of an org between fine and "
    "not fine is sent to COUNTS_ALERT_URL once.",
)
def fleet_health_asset(
    context: dg.AssetExecutionContext,
    org_registry: OrgRegistry,
    delivery: DeliveryResource,
    alerts: AlertHook,
):
    registry = org_registry.load()
    now = dt.datetime.now(dt.UTC)
    rows = fleet_health(
        context.instance,
        registry,
        now,
        lambda org: delivery.destination(org.remote_dir),
        first_date=dt.date.fromisoformat(org_registry.first_date),
        cache_dir=health_cache(context.instance),
    )
    not_fine = sorted(r.org_id for r in rows if not r.fine)
    changes = _changes(context.instance, not_fine, [r.org_id for r in rows])
    yield dg.MaterializeResult(
        metadata={
            "summary": summary_line(rows),
            "organizations": len(registry.orgs),
            "fine": len(rows) - len(not_fine),
            "not_fine": dg.MetadataValue.json(not_fine),
            "rejected_files": len({e.path for e in registry.errors}),
            "attention": dg.MetadataValue.md(attention_markdown(rows)),
            "health": dg.MetadataValue.md(_markdown(health_table(rows))),
        }
    )
    yield dg.AssetCheckResult(
        check_name=EVERY_ORG_FINE,
        passed=not not_fine,
        severity=dg.AssetCheckSeverity.ERROR,
        description=summary_line(rows),
        metadata={"not_fine": dg.MetadataValue.json(not_fine)},
    )
    # Sent once the view is recorded: an alert hook that is down must not keep the view stale.
    if changes:
        try:
            alerts.send({"at": now.isoformat(timespec="seconds"), "fleet_health": changes})
        except Exception as error:  # noqa: BLE001 - whatever the hook raises, the view stands
            context.log.warning(f"COUNTS_ALERT_URL: the change was not sent ({error!r})")


def _markdown(table: list[tuple[str, ...]]) -> str:
    return markdown_table(pd.DataFrame(table[1:], columns=list(table[0])), limit=1000)


def _changes(instance: dg.DagsterInstance, not_fine: list[str], shown: list[str]) -> dict:
    """Orgs that became not fine or fine again since the previous fleet_health."""
    previous = instance.fetch_materializations(FLEET_HEALTH, limit=1).records
    before = set()
    if previous:
        value = previous[0].asset_materialization.metadata.get("not_fine")
        before = set(value.value) if isinstance(value, dg.JsonMetadataValue) else set()
    now_not_fine = set(not_fine)
    return {
        org_id: "not fine" if org_id in now_not_fine else "fine again"
        for org_id in sorted((now_not_fine - before) | (before - now_not_fine))
        if org_id in now_not_fine or org_id in shown
    }


fleet_health_job = dg.define_asset_job(
    "fleet_health_job",
    selection=dg.AssetSelection.assets(FLEET_HEALTH)
    | dg.AssetSelection.checks(every_file_accepted),
)
fleet_health_schedule = dg.ScheduleDefinition(
    name="fleet_health_schedule",
    job=fleet_health_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Makes fleet_health again every hour.",
)
