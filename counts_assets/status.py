"""`python -m counts_assets.status`: is every centre fine today? One line per organization:
whether it may share, the newest daily and monthly pair made, the newest delivered, how many
pairs are pending, its failed delivery and export runs of the last 7 days, and the data-quality
findings in its files of the last 7 Call Dates; then every rejected organization file. Reads
the Dagster instance in $DAGSTER_HOME; changes nothing."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass

import dagster as dg

from counts_assets import settings
from counts_assets.assets.delivery import delivery_job
from counts_assets.assets.exports import DAILY, MONTHLY
from counts_assets.automation.runs import partitions_of
from counts_assets.delivery.ledger import AUDIT_KEY
from counts_assets.exports.periods import period_bounds
from counts_assets.jobs import daily_export_job, monthly_reconciliation_job
from counts_assets.orgs.registry import Registry, load_registry
from counts_assets.partitions import partition_key
from counts_assets.records import latest_records, metadata_of
from counts_assets.sensors.delivery import ORG_TAG, DeliveryState, pending_pairs, storage_ids


@dataclass
class OrgHealth:
    org_id: str
    permission: str
    last_daily: str
    last_monthly: str
    last_delivered: str
    pending: int
    failed_deliveries: int
    failed_exports: int
    findings: str
    verified: str = "-"  # what the newest delivery_audit found at the org's place
    audit_findings: int = 0

    @property
    def fine(self) -> bool:
        allowed = self.permission.startswith("in force")
        failed = self.failed_deliveries or self.failed_exports
        return allowed and not self.pending and not failed and not self.audit_findings


def _newest_by_org(partitions, orgs: dict, monthly: bool) -> dict[str, str]:
    """The newest period per org, leaving out periods before its share_from (recorded, but
    no file)."""
    newest: dict[str, str] = defaultdict(str)
    for partition in partitions:
        period, _, org_id = partition.partition("|")
        org = orgs.get(org_id)
        last_day = period_bounds(dt.date.fromisoformat(period), monthly)[1]
        if org is None or last_day < org.share_from:
            continue
        newest[org_id] = max(newest[org_id], period)
    return newest


# The per-file counts of data-quality findings in a pair's record.
FINDINGS = {
    "needs_left_out": "needs left out",
    "invalid_zip_codes": "zip codes sent empty",
    "unmapped_answers": "answers not in a value map",
}


def recent_findings(instance: dg.DagsterInstance, org_ids: list[str], today: dt.date) -> dict:
    """Per org, the data-quality findings in its daily files of the last 7 Call Dates."""
    keys = [
        str(partition_key(False, org_id, today - dt.timedelta(days=n)))
        for org_id in org_ids
        for n in range(1, 8)
    ]
    totals: dict[str, Counter] = defaultdict(Counter)
    for partition, record in latest_records(instance, DAILY.summary, keys).items():
        metadata = metadata_of(record)
        for name, label in FINDINGS.items():
            totals[partition.split("|")[1]][label] += int(metadata.get(name) or 0)
    return {
        org_id: ", ".join(f"{label}: {n}" for label, n in totals[org_id].items() if n) or "none"
        for org_id in org_ids
    }


def audited(instance: dg.DagsterInstance) -> dict[str, tuple[str, int]]:
    """Per org, from the newest delivery_audit: (what it says, how many divergent pairs)."""
    result = instance.fetch_materializations(AUDIT_KEY, limit=1)
    if not result.records:
        return {}
    by_org = metadata_of(result.records[0]).get("by_org") or {}
    return {
        org_id: (
            f"{found['findings']} divergent pairs"
            if found["findings"]
            else f"through {found['verified_through']}"
            if found["verified_through"] != "-"
            else "nothing delivered to check",
            int(found["findings"]),
        )
        for org_id, found in by_org.items()
    }


def fleet_health(
    instance: dg.DagsterInstance, registry: Registry, now: dt.datetime
) -> list[OrgHealth]:
    ids = storage_ids(instance)
    pending = pending_pairs(ids, DeliveryState(), registry.orgs, now)
    orgs = registry.orgs
    made = {c.name: _newest_by_org(ids[c.name][0], orgs, c.monthly) for c in (DAILY, MONTHLY)}
    delivered = defaultdict(str)
    for c in (DAILY, MONTHLY):
        for org_id, period in _newest_by_org(ids[c.name][1], orgs, c.monthly).items():
            delivered[org_id] = max(delivered[org_id], period)
    findings = recent_findings(instance, sorted(orgs), now.date())
    audit = audited(instance)
    week_ago = now - dt.timedelta(days=7)
    failed: dict[str, int] = defaultdict(int)
    for run in instance.get_runs(
        dg.RunsFilter(
            job_name=delivery_job.name,
            statuses=[dg.DagsterRunStatus.FAILURE],
            created_after=week_ago,
        )
    ):
        failed[run.tags.get(ORG_TAG, "")] += 1
    # An export run that failed counts for every org it was asked to make.
    failed_exports: dict[str, int] = defaultdict(int)
    for cadence, job in ((DAILY, daily_export_job), (MONTHLY, monthly_reconciliation_job)):
        for run in instance.get_runs(
            dg.RunsFilter(
                job_name=job.name, statuses=[dg.DagsterRunStatus.FAILURE], created_after=week_ago
            )
        ):
            for org_id in {
                k.split("|")[1] for k in partitions_of(run, cadence.partitions_def, instance)
            }:
                failed_exports[org_id] += 1
    return [
        OrgHealth(
            org_id,
            org.permission_summary(now),
            made["daily"].get(org_id, "") or "-",
            made["monthly"].get(org_id, "")[:7] or "-",
            delivered.get(org_id, "") or "-",
            len(pending.get(org_id, [])),
            failed[org_id],
            failed_exports[org_id],
            findings[org_id],
            *audit.get(org_id, ("not audited yet", 0)),
        )
        for org_id, org in sorted(registry.orgs.items())
    ]


HEADER = (
    "org",
    "fine",
    "last daily",
    "last monthly",
    "last delivered",
    "pending",
    "failed deliveries (7 days)",
    "failed exports (7 days)",
    "findings (last 7 Call Dates)",
    "verified at the place",
    "permission",
)


def health_table(rows: list[OrgHealth]) -> list[tuple[str, ...]]:
    """The header and one row of text per organization, as the CLI and the UI show them."""
    return [HEADER] + [
        (
            r.org_id,
            "yes" if r.fine else "NO",
            r.last_daily,
            r.last_monthly,
            r.last_delivered,
            str(r.pending),
            str(r.failed_deliveries),
            str(r.failed_exports),
            r.findings,
            r.verified,
            r.permission,
        )
        for r in rows
    ]


def text_table(table: list[tuple[str, ...]]) -> list[str]:
    """The table as aligned lines for a terminal (the last column, the longest, not padded)."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    return [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in table
    ]


def main() -> int:
    registry = load_registry(settings.orgs_dir(), settings.first_date())
    with dg.DagsterInstance.get() as instance:
        rows = fleet_health(instance, registry, dt.datetime.now(dt.UTC))
    for line in text_table(health_table(rows)):
        print(line)
    for error in registry.errors:
        print(f"REJECTED {error}")
    return 0 if all(r.fine for r in rows) and not registry.errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
