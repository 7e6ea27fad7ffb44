"""`every_file_accepted`: the check of `organization_files`, failing while any organization
file is rejected, naming the file, the field or line and the reason."""

from pathlib import Path

import dagster as dg

from counts_assets.core.orgs.registry import Registry
from counts_assets.defs.organizations.assets import ORGANIZATION_FILES
from counts_assets.defs.shared.resources import OrgRegistry

EVERY_FILE_ACCEPTED = "every_file_accepted"


def files_accepted(registry: Registry) -> dg.AssetCheckEvaluation:
    """Passes when every organization file is accepted; fails naming each rejected file, its
    field or line and the reason (a rejected file's org is neither made nor delivered)."""
    by_file: dict[str, list[str]] = {}
    for error in registry.errors:
        by_file.setdefault(Path(error.path).name, []).append(f"{error.field}: {error.reason}")
    rejected = sorted(by_file)
    return dg.AssetCheckEvaluation(
        asset_key=ORGANIZATION_FILES.key,
        check_name=EVERY_FILE_ACCEPTED,
        passed=not rejected,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(rejected)} organization files rejected: "
            + " | ".join(f"{name}: {'; '.join(by_file[name])}" for name in rejected)
            if rejected
            else f"all {len(registry.orgs)} organization files accepted"
        )[:2000],
        metadata={"rejected": dg.MetadataValue.json(rejected)},
    )


@dg.asset_check(
    asset=ORGANIZATION_FILES.key,
    name=EVERY_FILE_ACCEPTED,
    description="Fails while any organization file is rejected, naming the file, field and "
    "reason. Evaluated by org_registry_sensor at each change of the files, and by "
    "fleet_health_job.",
)
def every_file_accepted(org_registry: OrgRegistry) -> dg.AssetCheckResult:
    result = files_accepted(org_registry.load())
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=result.severity,
        description=result.description,
        metadata=result.metadata,
    )
