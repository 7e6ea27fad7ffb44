"""The one Definitions object of the platform: `counts_assets.definitions:defs`."""

from __future__ import annotations

import os

import dagster as dg

from counts_assets import settings
from counts_assets.assets.exports import DAILY, MONTHLY, daily_exports, monthly_exports
from counts_assets.resources import ExportFiles, OrgRegistry
from counts_assets.sensors.org_registry import org_registry_sensor
from counts_assets.source.reader import SourceReader


def _env(name: str, default: str) -> str | dg.EnvVar:
    """The env var itself when set (the UI then shows where the value comes from)."""
    return dg.EnvVar(name) if name in os.environ else default


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


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "org_registry": OrgRegistry(
            orgs_dir=_env("COUNTS_ORGS_DIR", settings.DEFAULT_ORGS_DIR),
            first_date=settings.first_date().isoformat(),
        ),
        "source": SourceReader(url=_env("COUNTS_SOURCE_URL", settings.DEFAULT_SOURCE_URL)),
        "export_files": ExportFiles(
            export_dir=_env("COUNTS_EXPORT_DIR", settings.DEFAULT_EXPORT_DIR)
        ),
    }


def build_defs(resources: dict[str, dg.ConfigurableResource]) -> dg.Definitions:
    """The platform with the given resources (tests point them at temporary folders)."""
    return dg.Definitions(
        assets=[daily_exports, monthly_exports],
        jobs=[daily_export_job, monthly_reconciliation_job],
        sensors=[org_registry_sensor],
        resources=resources,
    )


defs = build_defs(default_resources())
