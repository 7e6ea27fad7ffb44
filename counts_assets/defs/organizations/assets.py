"""What the UI shows of the organization files: `organization_files` (which organizations are
registered, which files are rejected and why) and `organization_permission` (each org's letter,
its history the audit trail of the sharing permission). Both are observed by
`org_registry_sensor`."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pandas as pd

from counts_assets.core.orgs.registry import Registry
from counts_assets.defs.shared.metadata import markdown_table
from counts_assets.defs.shared.partitions import orgs_partitions

ORGANIZATION_FILES = dg.AssetSpec(
    "organization_files",
    group_name="organizations",
    description="The organization files in COUNTS_ORGS_DIR, as the registry reads them. Each "
    "change is observed by org_registry_sensor: which organizations are registered and which "
    "files are rejected, with the field or line and the reason.",
)


ORGANIZATION_PERMISSION = dg.AssetSpec(
    "organization_permission",
    group_name="organizations",
    partitions_def=orgs_partitions,
    description="Each organization's signed permission letter, as its file states it. Every "
    "change of the `permission` block (a letter added, replaced, revoked or removed) is an "
    "observation of the org's partition: its history is the audit trail of which letter "
    "allowed sharing, from when, and when it was revoked. Nothing is delivered without a "
    "letter in force.",
)


def registry_observation(registry: Registry, now: dt.datetime) -> dg.AssetObservation:
    """What the UI shows of the registry: counts, each organization with its permission, and
    every rejected file."""
    orgs = pd.DataFrame(
        [
            (org.id, org.name, org.permission_summary(now))
            for _, org in sorted(registry.orgs.items())
        ],
        columns=["org", "name", "permission"],
    )
    rejected = pd.DataFrame(
        [(Path(e.path).name, e.field, e.reason) for e in registry.errors],
        columns=["file", "field or line", "reason"],
    )
    return dg.AssetObservation(
        asset_key=ORGANIZATION_FILES.key,
        metadata={
            "registered": len(registry.orgs),
            "rejected": len(registry.errors),
            "organizations": dg.MetadataValue.md(markdown_table(orgs, limit=500)),
            "rejected_files": dg.MetadataValue.md(markdown_table(rejected, limit=200)),
        },
    )


def permission_record(letter) -> dict:
    """The permission block as recorded in the audit trail (None: no block)."""
    if letter is None:
        return {}
    return {
        "document": letter.document,
        "signed_on": letter.signed_on.isoformat(),
        "prior_years": letter.prior_years,
        "revoked_on": letter.revoked_on.isoformat() if letter.revoked_on else None,
    }


def permission_changes(
    registry: Registry, recorded: dict[str, dict], now: dt.datetime
) -> list[dg.AssetObservation]:
    """One observation per org whose permission block differs from the one last recorded."""
    observations = []
    for org_id, org in sorted(registry.orgs.items()):
        current = permission_record(org.permission)
        if org_id in recorded and recorded[org_id] == current:
            continue
        change = "first seen" if org_id not in recorded else "changed"
        if not current:
            change = "no letter" if org_id not in recorded else "letter removed"
        observations.append(
            dg.AssetObservation(
                asset_key=ORGANIZATION_PERMISSION.key,
                partition=org_id,
                metadata={
                    "change": change,
                    "status": org.permission_summary(now),
                    "document": current.get("document") or "-",
                    "signed_on": current.get("signed_on") or "-",
                    "prior_years": bool(current.get("prior_years")),
                    "revoked_on": current.get("revoked_on") or "-",
                    "previous": json.dumps(recorded.get(org_id)) if org_id in recorded else "-",
                },
            )
        )
    return observations
