"""`org_registry_sensor`: keeps the dynamic partition set `orgs` in step with the YAML files."""

import hashlib
from pathlib import Path

import dagster as dg
import pandas as pd

from counts_assets.assets.metadata import markdown_table
from counts_assets.orgs.registry import Registry
from counts_assets.partitions import ORGS_PARTITION_SET, orgs_partitions
from counts_assets.resources import OrgRegistry

ORGANIZATION_FILES = dg.AssetSpec(
    "organization_files",
    group_name="organizations",
    description="The organization files in COUNTS_ORGS_DIR, as the registry reads them. Each "
    "change is observed by org_registry_sensor: which organizations are registered and which "
    "files are rejected, with the field or line and the reason.",
)


def registry_observation(registry: Registry) -> dg.AssetObservation:
    """What the UI shows of the registry: counts, the organizations, every rejected file."""
    rejected = pd.DataFrame(
        [(Path(e.path).name, e.field, e.reason) for e in registry.errors],
        columns=["file", "field or line", "reason"],
    )
    return dg.AssetObservation(
        asset_key=ORGANIZATION_FILES.key,
        metadata={
            "registered": len(registry.orgs),
            "rejected": len(registry.errors),
            "organizations": ", ".join(sorted(registry.orgs)) or "none",
            "rejected_files": dg.MetadataValue.md(markdown_table(rejected, limit=200)),
        },
    )


def registry_changes(known: set[str], registered: list[str]) -> tuple[list[str], list[str]]:
    """(to add, removed from the registry). A removed org keeps its partitions and history;
    automation stops because it only ever looks at the registry."""
    return sorted(set(registered) - known), sorted(known - set(registered))


@dg.sensor(
    name="org_registry_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds each organization file's id to the `orgs` partitions; reports bad files.",
)
def org_registry_sensor(
    context: dg.SensorEvaluationContext, org_registry: OrgRegistry
) -> dg.SensorResult | dg.SkipReason:
    registry = org_registry.load()
    # Rejections are logged when they change, not again at every tick; the skip reason of
    # every tick still counts them.
    state = [*map(str, registry.errors), *sorted(registry.orgs)]
    seen = hashlib.sha256("\n".join(state).encode()).hexdigest()[:16]
    observed = []
    if seen != context.cursor:
        for error in registry.errors:
            context.log.error(f"organization file rejected: {error}")
        observed.append(registry_observation(registry))
    context.update_cursor(seen)
    known = set(context.instance.get_dynamic_partitions(ORGS_PARTITION_SET))
    to_add, removed = registry_changes(known, list(registry.orgs))
    if removed:
        context.log.info(f"no longer in the registry (history kept): {', '.join(removed)}")
    if not to_add and not observed:
        return dg.SkipReason(
            f"{len(registry.orgs)} organizations registered, {len(registry.errors)} file errors"
        )
    if to_add:
        context.log.info(f"adding organizations: {', '.join(to_add)}")
    return dg.SensorResult(
        asset_events=observed,
        dynamic_partitions_requests=[orgs_partitions.build_add_request(to_add)] if to_add else [],
    )
