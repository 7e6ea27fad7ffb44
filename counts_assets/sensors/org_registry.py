"""`org_registry_sensor`: keeps the dynamic partition set `orgs` in step with the YAML files."""

import hashlib

import dagster as dg

from counts_assets.partitions import ORGS_PARTITION_SET, orgs_partitions
from counts_assets.resources import OrgRegistry


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
    seen = hashlib.sha256("\n".join(map(str, registry.errors)).encode()).hexdigest()[:16]
    if seen != context.cursor:
        for error in registry.errors:
            context.log.error(f"organization file rejected: {error}")
    context.update_cursor(seen)
    known = set(context.instance.get_dynamic_partitions(ORGS_PARTITION_SET))
    to_add, removed = registry_changes(known, list(registry.orgs))
    if removed:
        context.log.info(f"no longer in the registry (history kept): {', '.join(removed)}")
    if not to_add:
        return dg.SkipReason(
            f"{len(registry.orgs)} organizations registered, {len(registry.errors)} file errors"
        )
    context.log.info(f"adding organizations: {', '.join(to_add)}")
    return dg.SensorResult(dynamic_partitions_requests=[orgs_partitions.build_add_request(to_add)])
