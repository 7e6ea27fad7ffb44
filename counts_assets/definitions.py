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
from counts_assets.defs.health.resources import AlertHook
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


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources from the environment. Every COUNTS_ variable is checked first (a wrong
    one fails the code location's load, naming it). A text setting that is set reaches its
    resource as `dg.EnvVar`: the UI shows which variable it comes from, never its value (a URL
    may hold a password). The first date, numbers and true/false settings are values as
    checked, and checked again by the resource's own limits (Dagster's EnvVar is text, or a
    whole number that bypasses them)."""
    env = settings.current()

    def text(name: str, default: str | None) -> str | dg.EnvVar | None:
        return dg.EnvVar(name) if name in os.environ else default

    return {
        "org_registry": OrgRegistry(
            orgs_dir=text("COUNTS_ORGS_DIR", str(env.orgs_dir)),
            first_date=env.first_date.isoformat(),
        ),
        "source": SourceReader(url=text("COUNTS_SOURCE_URL", env.source_url)),
        "export_files": ExportFiles(
            export_dir=text("COUNTS_EXPORT_DIR", str(env.export_dir)),
            lock_wait_seconds=env.lock_wait_seconds,
        ),
        "delivery": DeliveryResource(
            url=text("COUNTS_DELIVERY_URL", env.delivery_url),
            key_file=text("COUNTS_SFTP_KEY_FILE", None),
            known_hosts=text("COUNTS_SFTP_KNOWN_HOSTS", None),
            attempts=env.delivery_attempts,
            retry_minutes=env.delivery_retry_minutes,
            audit_days=env.audit_days,
            audit_repair=env.audit_repair,
        ),
        "alerts": AlertHook(url=text("COUNTS_ALERT_URL", None)),
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
