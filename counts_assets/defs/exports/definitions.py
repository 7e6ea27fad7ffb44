"""The exports domain: the daily and monthly files, made by their jobs on their schedules."""

import dagster as dg

from counts_assets.defs.exports.assets import daily_exports, monthly_exports
from counts_assets.defs.exports.jobs import daily_export_job, monthly_reconciliation_job
from counts_assets.defs.exports.schedules import (
    daily_export_schedule,
    monthly_reconciliation_schedule,
)

defs = dg.Definitions(
    assets=[daily_exports, monthly_exports],
    jobs=[daily_export_job, monthly_reconciliation_job],
    schedules=[daily_export_schedule, monthly_reconciliation_schedule],
)
