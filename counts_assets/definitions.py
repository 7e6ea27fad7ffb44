"""The one Definitions object of the platform: `counts_assets.definitions:defs`."""

import os
import warnings

import dagster as dg

from counts_assets.core import settings
from counts_assets.defs.delivery import definitions as delivery
from counts_assets.defs.delivery.resources import DeliveryResource
from counts_assets.defs.exports import definitions as exports
from counts_assets.defs.exports.resources import SourceReader
from counts_assets.defs.health import definitions as health
from counts_assets.defs.health.alerts import AlertHook
from counts_assets.defs.organizations import definitions as organizations
from counts_assets.defs.shared.resources import ExportFiles, OrgRegistry

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
    """The platform with the given resources (tests point them at temporary folders): every
    domain's definitions, merged."""
    return dg.Definitions.merge(
        organizations.defs,
        exports.defs,
        delivery.defs,
        health.defs,
        dg.Definitions(
            resources=resources,
            # Every export run is one step (the multi-asset): running it in the run's own
            # process saves a second process start and code load per run, a third of a short
            # backfill run.
            executor=dg.in_process_executor,
        ),
    )


defs = build_defs(default_resources())
