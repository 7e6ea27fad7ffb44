"""`fleet_health`: is every centre fine today? The per-organization status table of
`python -m counts_assets.status`, as an asset the UI shows, made again every hour."""

import datetime as dt

import dagster as dg
import pandas as pd

from counts_assets.assets.metadata import markdown_table
from counts_assets.resources import OrgRegistry
from counts_assets.status import fleet_health, health_table


@dg.asset(
    name="fleet_health",
    group_name="organizations",
    description="One row per organization: whether it may share (its permission letter), the "
    "newest daily and monthly pair made, the newest pair delivered, how many pairs are "
    "pending, its failed delivery and export runs of the last 7 days, the data-quality "
    "findings in its daily files of the last 7 Call Dates, and what the newest delivery_audit "
    "verified at its place; then the rejected organization files. Made every hour by "
    "fleet_health_schedule; the same table as `python -m counts_assets.status`.",
)
def fleet_health_asset(
    context: dg.AssetExecutionContext, org_registry: OrgRegistry
) -> dg.MaterializeResult:
    registry = org_registry.load()
    rows = fleet_health(context.instance, registry, dt.datetime.now(dt.UTC))
    table = health_table(rows)
    not_fine = [r.org_id for r in rows if not r.fine]
    return dg.MaterializeResult(
        metadata={
            "organizations": len(rows),
            "fine": len(rows) - len(not_fine),
            "not_fine": ", ".join(not_fine) or "none",
            "rejected_files": len(registry.errors),
            "health": dg.MetadataValue.md(
                markdown_table(pd.DataFrame(table[1:], columns=list(table[0])), limit=1000)
            ),
        }
    )


fleet_health_job = dg.define_asset_job("fleet_health_job", selection=[fleet_health_asset])
fleet_health_schedule = dg.ScheduleDefinition(
    name="fleet_health_schedule",
    job=fleet_health_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Makes fleet_health again every hour.",
)
