"""Jobs: the daily export and the monthly reconciliation. The delivery job lives with the
delivery ledger (`counts_assets.defs.delivery.assets`)."""

import dagster as dg

from counts_assets.defs.exports.assets import daily_exports, monthly_exports
from counts_assets.defs.shared.cadence import DAILY, MONTHLY
from counts_assets.defs.shared.runs import EXPORT_MAX_RUNTIME, EXPORT_WORK

daily_export_job = dg.define_asset_job(
    "daily_export_job",
    selection=dg.AssetSelection.assets(daily_exports),
    tags=EXPORT_WORK | EXPORT_MAX_RUNTIME,
    description="Raw contacts -> mapped demographics -> both daily files, per date and org.",
)
monthly_reconciliation_job = dg.define_asset_job(
    "monthly_reconciliation_job",
    selection=dg.AssetSelection.assets(monthly_exports),
    tags=EXPORT_WORK | EXPORT_MAX_RUNTIME,
    description="The same for one calendar month: the restatement that catches late changes.",
)

# The job that makes each cadence's pairs (runs launched from the asset pages make them too).
EXPORT_JOBS = ((DAILY, daily_export_job), (MONTHLY, monthly_reconciliation_job))
