"""The one Definitions object of the platform: `counts_assets.definitions:defs`."""

import os
import warnings

import dagster as dg

from counts_assets import settings
from counts_assets.assets.audit import delivery_audit, delivery_audit_job, delivery_audit_schedule
from counts_assets.assets.delivery import LEDGER_SPECS, delivery_job, redelivery_job
from counts_assets.assets.exports import daily_exports, monthly_exports
from counts_assets.assets.health import (
    every_file_accepted,
    fleet_health_asset,
    fleet_health_job,
    fleet_health_schedule,
)
from counts_assets.automation.alerts import AlertHook, run_failure_alert_sensor
from counts_assets.automation.schedules import (
    daily_export_schedule,
    monthly_reconciliation_schedule,
)
from counts_assets.delivery.resource import DeliveryResource
from counts_assets.jobs import daily_export_job, monthly_reconciliation_job
from counts_assets.resources import ExportFiles, OrgRegistry
from counts_assets.sensors.delivery import delivery_sensor
from counts_assets.sensors.org_registry import (
    ORGANIZATION_FILES,
    ORGANIZATION_PERMISSION,
    org_registry_sensor,
)
from counts_assets.source.reader import SourceReader

# A ranged run's records of the three assets recorded for its whole range reach the event log
# in batches of this size (one transaction each) instead of one write per partition. Set here,
# where every process that executes a run loads the code, whatever started it.
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")

# Dagster itself passes `owners` when it binds resources to a sensor's jobs; we set none. Without
# this filter every process that loads the code prints a beta warning about it.
warnings.filterwarnings(
    "ignore",
    message="Parameter `owners` of initializer `SensorDefinition.__init__`",
    category=dg.BetaWarning,
)


def _env(name: str, default: str | None) -> str | dg.EnvVar | None:
    """The env var itself when set (the UI then shows where the value comes from)."""
    return dg.EnvVar(name) if name in os.environ else default


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "org_registry": OrgRegistry(
            orgs_dir=_env("COUNTS_ORGS_DIR", settings.DEFAULT_ORGS_DIR),
            first_date=settings.first_date().isoformat(),
        ),
        "source": SourceReader(url=_env("COUNTS_SOURCE_URL", settings.DEFAULT_SOURCE_URL)),
        "export_files": ExportFiles(
            export_dir=_env("COUNTS_EXPORT_DIR", settings.DEFAULT_EXPORT_DIR),
            lock_wait_seconds=settings.lock_wait_seconds(),
        ),
        "delivery": DeliveryResource(
            url=_env("COUNTS_DELIVERY_URL", settings.DEFAULT_DELIVERY_URL),
            key_file=_env("COUNTS_SFTP_KEY_FILE", None),
            known_hosts=_env("COUNTS_SFTP_KNOWN_HOSTS", None),
            attempts=settings.delivery_attempts(),
            retry_minutes=settings.delivery_retry_minutes(),
            audit_days=settings.audit_days(),
            audit_repair=settings.audit_repair(),
        ),
        "alerts": AlertHook(url=_env("COUNTS_ALERT_URL", None)),
    }


def build_defs(resources: dict[str, dg.ConfigurableResource]) -> dg.Definitions:
    """The platform with the given resources (tests point them at temporary folders)."""
    return dg.Definitions(
        assets=[
            daily_exports,
            monthly_exports,
            *LEDGER_SPECS,
            ORGANIZATION_FILES,
            ORGANIZATION_PERMISSION,
            fleet_health_asset,
            delivery_audit,
        ],
        asset_checks=[every_file_accepted],
        jobs=[
            daily_export_job,
            monthly_reconciliation_job,
            delivery_job,
            redelivery_job,
            delivery_audit_job,
            fleet_health_job,
        ],
        schedules=[
            daily_export_schedule,
            monthly_reconciliation_schedule,
            delivery_audit_schedule,
            fleet_health_schedule,
        ],
        sensors=[org_registry_sensor, delivery_sensor, run_failure_alert_sensor],
        resources=resources,
        # Every export run is one step (the multi-asset): running it in the run's own process
        # saves a second process start and code load per run, a third of a short backfill run.
        executor=dg.in_process_executor,
    )


defs = build_defs(default_resources())
