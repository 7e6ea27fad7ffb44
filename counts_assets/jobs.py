"""Jobs (contract §5): the daily export, the monthly reconciliation, and the delivery jobs the
delivery sensor launches."""

import dagster as dg

from counts_assets.assets.delivery import DELIVERY_ASSETS
from counts_assets.assets.exports import DAILY, MONTHLY, daily_exports, monthly_exports

daily_export_job = dg.define_asset_job(
    "daily_export_job",
    selection=dg.AssetSelection.assets(daily_exports),
    partitions_def=DAILY.partitions_def,
    description="Raw contacts -> mapped demographics -> both daily files, per date and org.",
)
monthly_reconciliation_job = dg.define_asset_job(
    "monthly_reconciliation_job",
    selection=dg.AssetSelection.assets(monthly_exports),
    partitions_def=MONTHLY.partitions_def,
    description="The same for one calendar month: the restatement that catches late changes.",
)
daily_delivery_job = dg.define_asset_job(
    "daily_delivery_job",
    selection=dg.AssetSelection.assets(
        DELIVERY_ASSETS[("daily", "summary")], DELIVERY_ASSETS[("daily", "needs")]
    ),
    partitions_def=DAILY.partitions_def,
    description="Delivers one daily file (launched by delivery_sensor).",
)
monthly_delivery_job = dg.define_asset_job(
    "monthly_delivery_job",
    selection=dg.AssetSelection.assets(
        DELIVERY_ASSETS[("monthly", "summary")], DELIVERY_ASSETS[("monthly", "needs")]
    ),
    partitions_def=MONTHLY.partitions_def,
    description="Delivers one monthly file (launched by delivery_sensor).",
)
