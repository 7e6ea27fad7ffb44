"""The operator's view of the fleet: is every centre fine today? A summary line, what needs
attention (each org's problems and what to do), then one line per organization file: fine or
not, the newest daily and monthly pair made and the newest daily pair its destination holds, the
data-quality findings of its last 7 Call Dates, what the newest delivery audit verified, and
its permission. An org is fine when every period that is due (from share_from through the last
ended one, plus the grace period) has its published pair, the current destination holds it (or it
waits for permission, said so), no period's latest run failed and the audit found nothing. A
rejected organization file is a line that is not fine. Shown by the `fleet_health` asset and
printed by `python -m counts_assets.status`."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from counts_assets.core import settings
from counts_assets.core.delivery.plan import DELIVERED, REDELIVERED, UNCHANGED, LedgerEntry
from counts_assets.core.files.periods import period_bounds, period_label
from counts_assets.core.health import (
    SETTLE,
    PeriodState,
    Verdict,
    due_periods,
    judge,
    spans,
)
from counts_assets.core.orgs.models import Organization
from counts_assets.core.orgs.registry import Registry
from counts_assets.core.pairs.store import PairVersion
from counts_assets.defs.delivery.jobs import delivery_job
from counts_assets.defs.delivery.ledger import (
    AUDIT_KEY,
    ledger_entries,
    ledger_key,
)
from counts_assets.defs.exports.jobs import (
    EXPORT_JOBS,
)
from counts_assets.defs.health.alerts import failure_reasons
from counts_assets.defs.shared.cadence import DAILY, MONTHLY, Cadence
from counts_assets.defs.shared.records import latest_ids, metadata_of, newest_facts
from counts_assets.defs.shared.runs import (
    EXPORT_MAX_RUNTIME,
    IN_FLIGHT,
    MAX_RUNTIME_TAG,
    export_runs,
    partitions_of,
    run_org,
    step_failures,
)

# The ledger entries that say the destination holds the pair's version.
HELD = (DELIVERED, REDELIVERED, UNCHANGED)
EXPORT_RUN_BOUND = dt.timedelta(seconds=int(EXPORT_MAX_RUNTIME[MAX_RUNTIME_TAG])) + SETTLE

# The per-file counts of data-quality findings in a pair's record.
FINDINGS = {
    "needs_left_out": "needs left out",
    "invalid_zip_codes": "zips sent empty",
    "unmapped_answers": "answers unmapped",
}


@dataclass
class OrgHealth:
    org_id: str  # the org's id, or a rejected file's name
    fine: bool
    daily_through: str = "-"  # the newest daily pair made
    monthly_through: str = "-"
    held_through: str = "-"  # the newest pair the current destination holds
    problem: str = ""  # every problem, first the first gap
    to_do: str = ""
    findings: str = "none"
    verified: str = "not yet"  # what the newest delivery_audit found at the org's destination
    permission: str = "-"


# The facts of a record health needs, as plain lists (they are cached as JSON by storage id);
# the cache's name changes with their layout.
FACTS_VERSION = 2


@dataclass(frozen=True)
class _Publish:
    at: dt.datetime
    version: tuple | None  # (summary, needs) SHA-256 of the pair; None: no file
    findings: dict[str, int]

    @classmethod
    def of(cls, facts: list) -> _Publish:
        at, summary, needs, *counts = facts
        version = (summary, needs) if summary else None
        return cls(
            dt.datetime.fromtimestamp(at, dt.UTC), version, dict(zip(FINDINGS, counts, strict=True))
        )


def _publish_facts(record: dg.EventLogRecord) -> list:
    meta = metadata_of(record)
    return [record.timestamp, meta.get("sha256"), meta.get("needs_sha256")] + [
        int(meta.get(name) or 0) for name in FINDINGS
    ]


def _holds(entry: LedgerEntry | None, publish: _Publish | None, destination: str) -> bool:
    """The destination holds the published pair's version (an older record may lack the needs
    file's SHA-256: the summary's then decides)."""
    if entry is None or entry.version is None or publish is None or publish.version is None:
        return False
    summary, needs = publish.version
    return (
        entry.status in HELD
        and entry.destination == destination
        and entry.version.summary_sha256 == summary
        and needs in (None, entry.version.needs_sha256)
    )


def _entry_facts(record: dg.EventLogRecord) -> list:
    meta = metadata_of(record)
    return [
        record.storage_id,
        meta.get("status", DELIVERED),
        meta.get("summary_sha256"),
        meta.get("needs_sha256"),
        meta.get("target", ""),
    ]


def _facts(
    instance: dg.DagsterInstance, key: dg.AssetKey, facts, cache_dir: Path | None
) -> dict[str, list]:
    name = f"facts-v{FACTS_VERSION}-{key.to_python_identifier()}.json"
    return newest_facts(instance, key, facts, cache_dir / name if cache_dir else None)


def _ledger(
    instance: dg.DagsterInstance, cadence: Cadence, cache_dir: Path | None
) -> dict[str, LedgerEntry]:
    """The newest ledger entry of every partition."""
    return {
        partition: LedgerEntry(
            storage_id,
            status,
            PairVersion(summary, needs) if summary and needs else None,
            destination,
        )
        for partition, (storage_id, status, summary, needs, destination) in _facts(
            instance, ledger_key(cadence), _entry_facts, cache_dir
        ).items()
    }


def _failed_partitions(
    instance: dg.DagsterInstance, cadence: Cadence, job_name: str, publishes: dict
) -> dict[str, str]:
    """Partitions whose latest run failed, with that run's id: a failure counts until a later
    run records the partition (the failed run's own records count: a range run that made one
    org and failed on another fails only the partitions it did not record)."""
    failed: dict[str, tuple[float, str]] = {}
    for record in export_runs(instance, job_name, cadence.summary, [dg.DagsterRunStatus.FAILURE]):
        started = record.start_time or record.create_timestamp.timestamp()
        for partition in partitions_of(record.dagster_run, cadence.partitions_def, instance):
            made = publishes.get(partition)
            if made is not None and made.at.timestamp() >= started:
                continue
            if partition not in failed or failed[partition][0] < started:
                failed[partition] = (started, record.dagster_run.run_id)
    return {partition: run_id for partition, (_, run_id) in failed.items()}


def _delivery_failures(
    instance: dg.DagsterInstance, now: dt.datetime
) -> dict[str, tuple[dt.datetime, str]]:
    """Per org, its newest failed delivery run of the last 7 days not followed by a successful
    one: (when, run id). Delivery is retried every few minutes while pairs wait, so an older
    failure with pairs still waiting has newer ones."""
    newest: dict[str, tuple[dt.datetime, str]] = {}
    for record in instance.get_run_records(
        dg.RunsFilter(
            job_name=delivery_job.name,
            statuses=[dg.DagsterRunStatus.FAILURE],
            created_after=now - dt.timedelta(days=7),
        )
    ):
        org_id = run_org(record.dagster_run) or ""
        if org_id and (org_id not in newest or newest[org_id][0] < record.create_timestamp):
            newest[org_id] = (record.create_timestamp, record.dagster_run.run_id)
    if not newest:
        return newest
    # A run launched by hand may carry no org tag: its org is read from its config.
    for record in instance.get_run_records(
        dg.RunsFilter(
            job_name=delivery_job.name,
            statuses=[dg.DagsterRunStatus.SUCCESS],
            created_after=min(at for at, _ in newest.values()),
        )
    ):
        org_id = run_org(record.dagster_run)
        if org_id in newest and record.create_timestamp > newest[org_id][0]:
            del newest[org_id]
    return newest


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
            else "nothing to check",
            int(found["findings"]),
        )
        for org_id, found in by_org.items()
    }


def _permission_label(org: Organization, now: dt.datetime) -> str:
    """The permission in a few words: its letter when in force, else why nothing is sent (the
    rows that wait say so in full)."""
    letter = org.permission
    if letter is None:
        return "none"
    if not org.delivery_blocked(now):
        return letter.document
    today = now.astimezone(org.zone).date()
    return (
        f"from {letter.signed_on}" if today < letter.signed_on else f"revoked {letter.revoked_on}"
    )


def _reason(text: str, org_id: str, limit: int = 240) -> str:
    """The line of a run's failure that names the org (else its first line), its middle
    elided when long: paths and the reason at its end both stay readable."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = next((x for x in lines if x.startswith(f"{org_id} ")), lines[0] if lines else "")
    line = line or "no reason recorded"
    return line if len(line) <= limit else line[: limit // 2 - 1] + " … " + line[-limit // 2 :]


def fleet_health(
    instance: dg.DagsterInstance,
    registry: Registry,
    now: dt.datetime,
    destination: Callable[[Organization], str],
    grace: dt.timedelta | None = None,
    first_date: dt.date | None = None,
    cache_dir: Path | None = None,
) -> list[OrgHealth]:
    """One row per organization file, in id order, then the rejected files. `destination(org)` is
    where the org's pairs go now (the delivery target's endpoint and its remote_dir);
    `cache_dir` keeps the facts of the records already read (see `health_cache`)."""
    grace = dt.timedelta(minutes=settings.current().grace_minutes) if grace is None else grace
    first_date = first_date or settings.current().first_date
    orgs = registry.orgs
    publishes = {
        c.name: {
            partition: _Publish.of(facts)
            for partition, facts in _facts(instance, c.summary, _publish_facts, cache_dir).items()
        }
        for c in (DAILY, MONTHLY)
    }
    ledgers = {c.name: _ledger(instance, c, cache_dir) for c in (DAILY, MONTHLY)}
    failed = {
        c.name: _failed_partitions(instance, c, job.name, publishes[c.name])
        for c, job in EXPORT_JOBS
    }
    # A run queued or running for longer than its longest runtime plus SETTLE is stuck: what
    # it covers shows as missing again, not as being made.
    recent = now - EXPORT_RUN_BOUND
    busy = {
        c.name: set().union(
            *(
                partitions_of(r.dagster_run, c.partitions_def, instance)
                for r in export_runs(instance, job.name, c.summary, IN_FLIGHT, recent)
            )
        )
        for c, job in EXPORT_JOBS
    }
    destinations = {org_id: destination(org) for org_id, org in orgs.items()}
    states: dict[str, dict[bool, dict[dt.date, PeriodState]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    newest: dict[str, dict[str, str]] = defaultdict(lambda: defaultdict(str))
    early: dict[str, dict[bool, list[dt.date]]] = defaultdict(lambda: defaultdict(list))
    findings: dict[str, Counter] = defaultdict(Counter)
    week = {
        org_id: {now.astimezone(org.zone).date() - dt.timedelta(days=n) for n in range(1, 8)}
        for org_id, org in orgs.items()
    }
    for cadence in (DAILY, MONTHLY):
        monthly = cadence.monthly
        made, ledger = publishes[cadence.name], ledgers[cadence.name]
        partitions = set(made) | set(failed[cadence.name]) | busy[cadence.name] | set(ledger)
        for partition in partitions:
            period, _, org_id = partition.partition("|")
            org = orgs.get(org_id)
            if org is None:
                continue
            start = dt.date.fromisoformat(period)
            publish, entry = made.get(partition), ledger.get(partition)
            has_file = publish is not None and publish.version is not None
            held = _holds(entry, publish, destinations[org_id])
            states[org_id][monthly][start] = PeriodState(
                made_at=publish.at if has_file else None,
                held=held,
                failed=partition in failed[cadence.name],
                in_flight=partition in busy[cadence.name],
            )
            label = period_label(start, monthly)
            if has_file:
                newest[org_id][f"{cadence.name} made"] = max(
                    newest[org_id][f"{cadence.name} made"], label
                )
            if held and not monthly:
                newest[org_id]["held"] = max(newest[org_id]["held"], label)
            if (
                entry is not None
                and entry.status in HELD
                and period_bounds(start, monthly)[1] < org.share_from
            ):
                early[org_id][monthly].append(start)
            if has_file and not monthly and start in week[org_id]:
                findings[org_id].update(publish.findings)
    stale = _months_older_than_their_days(publishes, orgs)
    audit = audited(instance)
    deliveries = _delivery_failures(instance, now)
    reasons = _FailureReasons(instance)
    rows = []
    for org_id, org in sorted(orgs.items()):
        due = {m: due_periods(org, now, grace, first_date, m) for m in (False, True)}
        verdict = judge(org, states[org_id], due, now, grace)
        verified, divergent = audit.get(org_id, ("not yet", 0))
        if divergent:
            verdict.fine = False
            verdict.problems.append(f"the audit found {divergent} pairs not as delivered")
            verdict.to_do.append("see delivery_audit; re-deliver them (redelivery_job)")
        _explain_failures(reasons, verdict, org_id, failed, deliveries)
        if stale.get(org_id):
            months = ", ".join(stale[org_id])
            verdict.notes.append(
                f"monthly {months} made before some of its daily pairs: its reconciliation "
                "diff is out of date"
            )
            verdict.to_do.append(f"make {months} of {org_id} again")
        for monthly, periods in early[org_id].items():
            verdict.notes.append(
                f"{len(periods)} pairs delivered before share_from {org.share_from} "
                f"({spans(periods, monthly)}): 211 Counts still holds them"
            )
        rows.append(
            OrgHealth(
                org_id,
                verdict.fine,
                newest[org_id]["daily made"] or "-",
                newest[org_id]["monthly made"] or "-",
                newest[org_id]["held"] or "-",
                "; ".join(verdict.problems + verdict.notes) or "-",
                "; ".join(dict.fromkeys(verdict.to_do)) or "-",
                ", ".join(f"{FINDINGS[k]} {n}" for k, n in findings[org_id].items() if n) or "none",
                verified,
                _permission_label(org, now),
            )
        )
    by_file: dict[str, list[str]] = defaultdict(list)
    for error in registry.errors:
        by_file[error.path].append(f"{error.field}: {error.reason}")
    for path, reasons in sorted(by_file.items()):
        rows.append(
            OrgHealth(
                Path(path).name,
                False,
                problem="organization file rejected: " + "; ".join(reasons),
                to_do="fix the file; nothing of it is made or delivered meanwhile",
            )
        )
    return rows


class _FailureReasons:
    """Each failed run's reasons, read from its log once however many orgs it failed for."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self.read: dict[str, str] = {}

    def __call__(self, run_id: str) -> str:
        if run_id not in self.read:
            run = self.instance.get_run_by_id(run_id)
            self.read[run_id] = failure_reasons(step_failures(self.instance, run)) if run else ""
        return self.read[run_id]


def _explain_failures(
    reasons: _FailureReasons,
    verdict: Verdict,
    org_id: str,
    failed: dict[str, dict[str, str]],
    deliveries: dict[str, tuple[dt.datetime, str]],
) -> None:
    """The reason of the newest failed export run of the org's failing periods, and of its
    failed delivery run while pairs are not at the destination."""
    runs = {
        run_id
        for by_partition in failed.values()
        for p, run_id in by_partition.items()
        if p.endswith(f"|{org_id}")
    }
    if runs:
        instance = reasons.instance
        newest = max(runs, key=lambda r: instance.get_run_record_by_id(r).create_timestamp)
        verdict.problems.append(f"run {newest[:8]}: {_reason(reasons(newest), org_id)}")
    if org_id in deliveries and any(
        p.startswith("not at the destination") for p in verdict.problems
    ):
        at, run_id = deliveries[org_id]
        verdict.problems.append(
            f"delivery failing since {at:%Y-%m-%d %H:%M} UTC (run {run_id[:8]}: "
            f"{_reason(reasons(run_id), org_id)})"
        )


def _months_older_than_their_days(
    publishes: dict[str, dict[str, _Publish]], orgs: dict[str, Organization]
) -> dict[str, list[str]]:
    """Per org, the months whose pair was made before one of its daily pairs: the monthly
    schedule makes them again inside its look-back; older ones wait for an operator."""
    newest_day: dict[str, dt.datetime] = {}
    for partition, publish in publishes[DAILY.name].items():
        if publish.version is not None:
            month = f"{partition[:7]}-01{partition[10:]}"
            newest_day[month] = max(newest_day.get(month, publish.at), publish.at)
    stale: dict[str, list[str]] = defaultdict(list)
    for partition, publish in sorted(publishes[MONTHLY.name].items()):
        org_id = partition.split("|")[1]
        day = newest_day.get(partition)
        if org_id in orgs and publish.version is not None and day and day > publish.at:
            stale[org_id].append(partition[:7])
    return stale


def delivered_before_share_from(instance: dg.DagsterInstance, org: Organization) -> list[str]:
    """The org's pairs its destination holds, by the ledger, for periods now wholly before its
    share_from (share_from moved later after they were delivered)."""
    labels = []
    for cadence in (DAILY, MONTHLY):
        early = [
            partition
            for partition in latest_ids(instance, ledger_key(cadence))
            if partition.endswith(f"|{org.id}")
            and period_bounds(dt.date.fromisoformat(partition[:10]), cadence.monthly)[1]
            < org.share_from
        ]
        labels += sorted(
            period_label(dt.date.fromisoformat(partition[:10]), cadence.monthly)
            for partition, entry in ledger_entries(instance, cadence, early).items()
            if entry.status in HELD
        )
    return labels


HEADER = (
    "org",
    "fine",
    "daily made",
    "monthly made",
    "at the destination",
    "findings (7 Call Dates)",
    "audit",
    "permission",
)
ATTENTION_HEADER = ("org", "fine", "problem", "to do")


def health_table(rows: list[OrgHealth]) -> list[tuple[str, ...]]:
    """One short line per organization file, as the CLI and the UI show them (150 orgs stay
    150 lines): the rows that are not fine first."""
    return [HEADER] + [
        (
            r.org_id,
            "yes" if r.fine else "NO",
            r.daily_through,
            r.monthly_through,
            r.held_through,
            r.findings,
            r.verified,
            r.permission,
        )
        for r in sorted(rows, key=lambda r: r.fine)
    ]


def attention_table(rows: list[OrgHealth]) -> list[tuple[str, ...]]:
    """The rows with something to say: each problem and what to do, and the notes of orgs that
    are fine (pairs waiting for permission, pairs delivered before share_from)."""
    return [ATTENTION_HEADER] + [
        (r.org_id, "yes" if r.fine else "NO", r.problem, r.to_do)
        for r in sorted(rows, key=lambda r: r.fine)
        if not r.fine or r.problem != "-"
    ]


def attention_markdown(rows: list[OrgHealth]) -> str:
    """The attention table as a list, which wraps in the UI's metadata panel where a wide table
    is cut at its right edge."""
    items = [
        f"- **{r.org_id}** {'fine' if r.fine else 'NO'}: {r.problem}"
        + (f". *To do:* {r.to_do}" if r.to_do != "-" else "")
        for r in sorted(rows, key=lambda r: r.fine)
        if not r.fine or r.problem != "-"
    ]
    return "\n".join(items) or "nothing: every organization is fine"


def summary_line(rows: list[OrgHealth]) -> str:
    """`147 fine, 3 not: a, b, c` (the attention table says why)."""
    not_fine = [r.org_id for r in rows if not r.fine]
    if not not_fine:
        return f"{len(rows)} fine"
    more = f" and {len(not_fine) - 20} more" if len(not_fine) > 20 else ""
    return (
        f"{len(rows) - len(not_fine)} fine, {len(not_fine)} not: {', '.join(not_fine[:20])}{more}"
    )


def text_table(table: list[tuple[str, ...]]) -> list[str]:
    """The table as aligned lines for a terminal (the last column, the longest, not padded)."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    return [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in table
    ]


def report(rows: list[OrgHealth]) -> list[str]:
    """The terminal's view: the summary line, what needs attention, then a line per org."""
    attention = attention_table(rows)
    lines = [summary_line(rows), ""]
    if len(attention) > 1:
        lines += text_table(attention) + [""]
    return lines + text_table(health_table(rows))


def health_cache(instance: dg.DagsterInstance) -> Path:
    """Where the facts of records already read are kept: with the instance they come from."""
    return Path(instance.root_directory) / "counts_health"
