"""The delivery domain: the ledger of what each destination holds, the runs that send pairs,
the sensor that requests them, and the audit that reads the delivered copies back."""

import dagster as dg

from counts_assets.defs.delivery.assets import LEDGER_SPECS
from counts_assets.defs.delivery.audit import (
    delivery_audit,
    delivery_audit_job,
    delivery_audit_schedule,
)
from counts_assets.defs.delivery.jobs import delivery_job, redelivery_job
from counts_assets.defs.delivery.recovery import journal_recovery_job
from counts_assets.defs.delivery.sensors import delivery_sensor

defs = dg.Definitions(
    assets=[*LEDGER_SPECS, delivery_audit],
    jobs=[delivery_job, redelivery_job, journal_recovery_job, delivery_audit_job],
    schedules=[delivery_audit_schedule],
    sensors=[delivery_sensor],
)
