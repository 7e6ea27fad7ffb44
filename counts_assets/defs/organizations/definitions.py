"""The organizations domain: the registry of organization files, their permission letters, and
the sensor that keeps the `orgs` partitions in step with them."""

import dagster as dg

from counts_assets.defs.organizations.assets import ORGANIZATION_FILES, ORGANIZATION_PERMISSION
from counts_assets.defs.organizations.checks import every_file_accepted
from counts_assets.defs.organizations.sensors import org_registry_sensor

defs = dg.Definitions(
    assets=[ORGANIZATION_FILES, ORGANIZATION_PERMISSION],
    asset_checks=[every_file_accepted],
    sensors=[org_registry_sensor],
)
