"""`delivery_audit`: proof of delivery. Reads back what each organization's destination holds for
the last `COUNTS_AUDIT_DAYS` days and the last 2 months, and compares it with the ledger and
every version ever published: missing, stale (an older version), mixed (File 1 and File 2 from
different publishes), foreign (bytes never published). Report-only by default, because a
recipient may pick files up and remove them; with `COUNTS_AUDIT_REPAIR=true` each divergent pair
gets a ledger entry saying so (`diverged`), which makes it pending again."""

import datetime as dt
import hashlib
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from counts_assets.core.delivery.audit import Found, audit_finding
from counts_assets.core.delivery.plan import DIVERGED, NO_FILE
from counts_assets.core.delivery.targets import DeliveryError
from counts_assets.core.files.layout import file_name
from counts_assets.core.files.periods import period_label, period_starts
from counts_assets.core.orgs.models import Organization
from counts_assets.defs.delivery.ledger import (
    AUDIT_KEY,
    diverged_entry,
    ledger_entries,
    published_pairs,
    version_history,
)
from counts_assets.defs.delivery.resources import SFTP_POOL, DeliveryResource
from counts_assets.defs.shared.cadence import DAILY, MONTHLY, Cadence
from counts_assets.defs.shared.metadata import markdown_table
from counts_assets.defs.shared.partitions import partition_key
from counts_assets.defs.shared.resources import ExportFiles, OrgRegistry
from counts_assets.defs.shared.runs import DELIVERY_WORK

CHECK_AUDIT = "recipient_holds_what_was_delivered"


@dataclass(frozen=True)
class AuditedPair:
    org_id: str
    cadence: Cadence
    period: str
    partition: str


def audit_window(org: Organization, now: dt.datetime, days: int) -> list[AuditedPair]:
    """The org's last `days` Call Dates and last 2 months that have ended in its zone."""
    today = now.astimezone(org.zone).date()
    first_day = max(org.share_from, today - dt.timedelta(days=days))
    this_month = today.replace(day=1)
    first_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    first_month = (first_month - dt.timedelta(days=1)).replace(day=1)
    pairs = []
    for cadence, first, last in (
        (DAILY, first_day, today - dt.timedelta(days=1)),
        (MONTHLY, max(first_month, org.share_from.replace(day=1)), this_month),
    ):
        for start in period_starts(first, last, cadence.monthly) if first <= last else []:
            if cadence.monthly and start == this_month:
                continue  # not ended yet
            pairs.append(
                AuditedPair(
                    org.id,
                    cadence,
                    period_label(start, cadence.monthly),
                    str(partition_key(cadence.monthly, org.id, start)),
                )
            )
    return pairs


def _sha256(content: bytes | None) -> str | None:
    return None if content is None else hashlib.sha256(content).hexdigest()


@dg.asset(
    key=AUDIT_KEY,
    group_name="delivery",
    pool=SFTP_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_AUDIT,
            asset=AUDIT_KEY,
            description="Every pair the ledger says was delivered is at its destination as "
            "delivered: nothing missing, stale, mixed or foreign. A warning, per organization.",
        )
    ],
    description="Proof of delivery: reads back what each organization's destination holds for the "
    "last COUNTS_AUDIT_DAYS days and the last 2 months and compares it with the ledger and "
    "every published version (missing, stale, mixed, foreign). Report-only unless "
    "COUNTS_AUDIT_REPAIR=true, which makes each divergent pair pending again. Made every day "
    "by delivery_audit_schedule, and on demand.",
)
def delivery_audit(
    context: dg.AssetExecutionContext,
    delivery: DeliveryResource,
    org_registry: OrgRegistry,
    export_files: ExportFiles,
):
    now = dt.datetime.now(dt.UTC)
    orgs = org_registry.load().orgs
    rows, findings, repaired, skipped = [], [], [], []
    store = export_files.store(f"run {context.run_id} (delivery_audit)")
    with delivery.target().connect() as connection:
        for org_id, org in sorted(orgs.items()):
            destination = delivery.destination(org.remote_dir)
            window = audit_window(org, now, delivery.audit_days)
            try:
                # A delivery run of the org would change the destination while it is read.
                with store.delivering(org_id, wait=False):
                    row, found = _audit_org(context, connection, org, destination, window)
                    if delivery.audit_repair:
                        repaired += _mark_diverged(context, store, destination, found, now)
            except BlockingIOError:
                skipped.append(org_id)
                continue
            rows.append(row)
            findings += found
    table = pd.DataFrame(
        rows,
        columns=[
            "org_id",
            "pairs_checked",
            "as_delivered",
            "not_yet_delivered",
            "missing",
            "stale",
            "mixed",
            "foreign",
            "verified_through",
        ],
    )
    listed = pd.DataFrame(
        [(p.org_id, p.cadence.name, p.period, finding) for p, finding, _, _ in findings],
        columns=["org_id", "cadence", "period", "finding"],
    )
    context.log.info(
        f"{len(rows)} organizations audited, {len(findings)} findings"
        + (f"; {len(repaired)} pairs made pending again" if repaired else "")
        + (f"; not audited while a delivery run held them: {', '.join(skipped)}" if skipped else "")
    )
    yield dg.MaterializeResult(
        metadata={
            "audited_at": now.isoformat(timespec="seconds"),
            "destination": delivery.target().describe(),
            "organizations": len(rows),
            "findings": len(findings),
            "per_organization": dg.MetadataValue.md(markdown_table(table, limit=1000)),
            "divergent_pairs": dg.MetadataValue.md(markdown_table(listed, limit=200)),
            "repaired": repaired,
            "not_audited": skipped,
            # For the health view: per org, the newest day verified and what was found.
            "by_org": {
                row[0]: {"verified_through": row[8], "findings": sum(row[4:8])} for row in rows
            },
        }
    )
    yield dg.AssetCheckResult(
        check_name=CHECK_AUDIT,
        passed=not findings,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "findings": len(findings),
            "divergent_pairs": dg.MetadataValue.md(markdown_table(listed, limit=200)),
        },
    )


def _mark_diverged(context, store, destination: str, found: list, now: dt.datetime) -> list[str]:
    """A `diverged` ledger entry for each divergent pair, written under the pair's lock and
    only while the entry the audit compared with is still the newest (a delivery since then
    stands): the pair is then pending again."""
    marked = []
    for pair, finding, seen, audited in found:
        with store.locked(pair.org_id, pair.period):
            newest = ledger_entries(context.instance, pair.cadence, [pair.partition])
            if newest.get(pair.partition) != audited:
                continue
            context.log_event(
                diverged_entry(
                    pair.cadence,
                    pair.partition,
                    destination,
                    f"the audit found the pair {finding} at its destination",
                    {
                        "found_summary_sha256": seen.summary_sha256 or "",
                        "found_needs_sha256": seen.needs_sha256 or "",
                        "audited_at": now.isoformat(timespec="seconds"),
                    },
                )
            )
            marked.append(f"{pair.cadence.name}|{pair.partition}")
    return marked


def _audit_org(context, connection, org: Organization, destination: str, window: list[AuditedPair]):
    """(the org's row, its findings): each pair the ledger says is at this destination, read
    back."""
    entries, published = {}, {}
    for cadence in (DAILY, MONTHLY):
        partitions = [p.partition for p in window if p.cadence is cadence]
        entries |= {
            (cadence.name, k): e
            for k, e in ledger_entries(context.instance, cadence, partitions).items()
        }
        published |= {
            (cadence.name, k): p
            for k, p in published_pairs(context.instance, cadence, partitions).items()
        }
    counts = dict.fromkeys(
        ("checked", "as_delivered", "not_yet", "missing", "stale", "mixed", "foreign"), 0
    )
    findings, clean_days = [], []
    for pair in window:
        entry = entries.get((pair.cadence.name, pair.partition))
        if entry is None or entry.destination != destination:
            made = published.get((pair.cadence.name, pair.partition))
            counts["not_yet"] += made is not None and made.version is not None
            continue
        try:
            found = Found(
                *(
                    _sha256(connection.fetch(org.remote_dir, file_name(org.id, pair.period, kind)))
                    for kind in ("summary", "needs")
                )
            )
        except DeliveryError as exc:
            raise dg.Failure(
                f"{org.id}: the audit could not read back {destination}: {exc}"
            ) from exc
        counts["checked"] += 1
        if entry.status == DIVERGED:
            # Found diverged before and not sent since: compared with what should be there.
            history = version_history(context.instance, pair.cadence, pair.partition)
            finding = audit_finding(found, history[0] if history else None, history)
        else:
            expected = None if entry.status == NO_FILE else entry.version
            finding = audit_finding(found, expected, [])
            if finding is not None:
                history = version_history(context.instance, pair.cadence, pair.partition)
                finding = audit_finding(found, expected, history)
        if finding is None:
            counts["as_delivered"] += 1
            if not pair.cadence.monthly:
                clean_days.append(pair.period)
            continue
        counts[finding] += 1
        findings.append((pair, finding, found, entry))
    first_finding = min(
        (p.period for p, _, _, _ in findings if not p.cadence.monthly), default=None
    )
    verified = [d for d in clean_days if first_finding is None or d < first_finding]
    row = (
        org.id,
        counts["checked"],
        counts["as_delivered"],
        counts["not_yet"],
        counts["missing"],
        counts["stale"],
        counts["mixed"],
        counts["foreign"],
        max(verified, default="-"),
    )
    return row, findings


delivery_audit_job = dg.define_asset_job(
    "delivery_audit_job",
    selection=[delivery_audit],
    tags=DELIVERY_WORK,
    description="Reads back what every organization's destination holds (delivery_audit).",
)
delivery_audit_schedule = dg.ScheduleDefinition(
    name="delivery_audit_schedule",
    job=delivery_audit_job,
    cron_schedule="30 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Audits every organization's destination once a day.",
)
