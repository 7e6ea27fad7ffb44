"""The health domain: the operator's view of the fleet (`fleet_health`) and the alerts."""

import dagster as dg

from counts_assets.defs.health.alerts import run_failure_alert_sensor
from counts_assets.defs.health.assets import (
    fleet_health_asset,
    fleet_health_job,
    fleet_health_schedule,
)

defs = dg.Definitions(
    assets=[fleet_health_asset],
    jobs=[fleet_health_job],
    schedules=[fleet_health_schedule],
    sensors=[run_failure_alert_sensor],
)
