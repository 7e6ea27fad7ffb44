"""The export assets: raw contacts -> mapped demographics -> summary file + needs file, daily
(`date` x `org`) and monthly (`month` x `org`).

One multi-asset per cadence, because the four steps share one read of the store and the pair is
published together or not at all. Intermediate frames are not persisted: they hold answers
from the CRM, which have no business being copied into Dagster's storage.

What each partition records: the summary file's materialization is the pair's record, with
everything about the pair (both paths and SHA-256s, rows, counts, findings). Pairs are
published in batches of up to 100, each pair under its lock, and a batch's records are written
together as soon as it is published, before the locks are released. A run over its whole range
with every org registered records raw contacts and mapped demographics for the range when it
starts, and the needs file for the range at its end when every pair ended well (published, or
no file by rule). Otherwise those get a record per partition at the end (one batch per asset),
and a needs file only where one was published, so a file never looks made when it was not."""

import contextlib
import datetime as dt
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from counts_assets.assets.metadata import file_metadata, findings_counts, markdown_table
from counts_assets.event_log import record_together
from counts_assets.exports.periods import (
    Target,
    period_start,
    plan_targets,
    split_open_periods,
)
from counts_assets.exports.reconciliation import diff_for_month
from counts_assets.exports.run import FileOutcome, RunOutcome, build_run, publish_pairs
from counts_assets.orgs.models import Organization
from counts_assets.pairs.store import disk_failure
from counts_assets.partitions import (
    daily_partitions,
    monthly_partitions,
    partition_key,
    split_key,
)
from counts_assets.resources import ExportFiles, OrgRegistry
from counts_assets.source.reader import SourceMissingError, SourceReader, SourceSchemaError


class ExportScope(dg.Config):
    """Which orgs of the run's partition range to make. A run covers a contiguous range of the
    `orgs` partitions; the schedules name the orgs due inside it, so one run serves every org
    that came due at a tick. Empty: every org of the range."""

    orgs: list[str] = []


class Cadence:
    def __init__(self, name: str, partitions_def: dg.MultiPartitionsDefinition) -> None:
        self.name = name
        self.monthly = name == "monthly"
        self.partitions_def = partitions_def
        self.raw = dg.AssetKey(f"{name}_raw_contacts")
        self.mapped = dg.AssetKey(f"{name}_mapped_demographics")
        self.summary = dg.AssetKey(f"{name}_summary_file")
        self.needs = dg.AssetKey(f"{name}_needs_file")


DAILY = Cadence("daily", daily_partitions)
MONTHLY = Cadence("monthly", monthly_partitions)

# The status of a materialization that made no file: before share_from (final), or a period
# that had not yet ended (made again once it has).
STATUS_SKIPPED = "skipped"
STATUS_NOT_ENDED = "not_ended"
# A partition of an org without a valid organization file when the run came (removed, or its
# file rejected): nothing made, and requested again once the org is back.
STATUS_NOT_MADE = "not_made"

CHECK_UNREADABLE = "source_values_readable"
CHECK_UNMAPPED = "demographic_answers_mapped"
CHECK_NEEDS = "taxonomy_codes_valid"
CHECK_ZIPS = "zip_codes_valid"
CHECK_SCHEMA = "files_pass_schema"
CHECK_INTACT = "published_bytes_intact"
CHECK_CLEAN = "source_values_clean"
NO_NUMBER = "(no usable number)"


def _warning(cadence_key: dg.AssetKey, name: str, frame: pd.DataFrame, what: str):
    return dg.AssetCheckResult(
        asset_key=cadence_key,
        check_name=name,
        passed=frame.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"findings": len(frame), what: dg.MetadataValue.md(markdown_table(frame))},
    )


def _check_results(cadence: Cadence, outcome: RunOutcome, failed: dict) -> Iterator:
    findings = outcome.findings
    unreadable = pd.concat(
        [
            findings.unreadable.assign(
                call_report_num=findings.unreadable["call_report_num"].fillna(NO_NUMBER)
            ),
            findings.duplicates.assign(
                column="call_report_num on "
                + findings.duplicates["rows"].astype(str)
                + " records read for "
                + findings.duplicates["period"].astype(str)
            )[["org_id", "call_report_num", "column"]],
        ],
        ignore_index=True,
    )
    yield _warning(cadence.raw, CHECK_UNREADABLE, unreadable, "records_left_out")
    clean = pd.concat(
        [
            findings.control_characters.assign(finding="values with control characters (removed)"),
            findings.formula_like.assign(
                finding="values starting with = + - @ in " + findings.formula_like["column"]
            ),
        ],
        ignore_index=True,
    ).reindex(columns=["org_id", "period", "finding", "values"])
    yield _warning(cadence.raw, CHECK_CLEAN, clean, "values")
    yield _warning(cadence.mapped, CHECK_UNMAPPED, findings.unmapped, "unmapped_answers")
    yield _warning(cadence.needs, CHECK_NEEDS, findings.invalid_needs, "needs_left_out")
    yield _warning(cadence.needs, CHECK_ZIPS, findings.invalid_zips, "invalid_zips_per_file")
    failures = pd.DataFrame(
        [(org, period, line) for (org, period), lines in failed.items() for line in lines],
        columns=["org_id", "period", "failure"],
    )
    published = sum(1 for f in outcome.files.values() if f.published)
    yield dg.AssetCheckResult(
        asset_key=cadence.summary,
        check_name=CHECK_INTACT,
        passed=True,
        metadata={"pairs_published": published},
    )
    yield dg.AssetCheckResult(
        asset_key=cadence.summary,
        check_name=CHECK_SCHEMA,
        passed=failures.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "failed_files": len(failures),
            "failures": dg.MetadataValue.md(markdown_table(failures)),
        },
    )


def _listed(items: list[str], total: int) -> str:
    """The first items of a long list, and how many more there are."""
    return ", ".join(items) + (f" and {total - len(items)} more" if total > len(items) else "")


def _log_findings(context: dg.AssetExecutionContext, outcome: RunOutcome) -> None:
    findings = outcome.findings
    if not findings.unreadable.empty:
        context.log.warning(
            f"{len(findings.unreadable)} records left out, unreadable values: "
            + _listed(
                [
                    f"{r.org_id}/{r.call_report_num or NO_NUMBER} ({r.column})"
                    for r in findings.unreadable.head(20).itertuples()
                ],
                len(findings.unreadable),
            )
        )
    if not findings.invalid_needs.empty:
        context.log.warning(
            f"{len(findings.invalid_needs)} needs left out: "
            + _listed(
                [
                    f"{r.org_id}/{r.call_report_num} code "
                    + (f'"{r.taxonomy_code}"' if isinstance(r.taxonomy_code, str) else "(empty)")
                    + f" ({r.reason})"
                    for r in findings.invalid_needs.head(20).itertuples()
                ],
                len(findings.invalid_needs),
            )
        )
    if not findings.unmapped.empty:
        totals = findings.unmapped.groupby(["org_id", "slot", "answer"])["count"].sum()
        context.log.warning(
            "answers sent empty, not in the value map: "
            + _listed(
                [f'{o}/{s} "{a}" x{n}' for (o, s, a), n in totals.head(20).items()], len(totals)
            )
        )
    if not findings.invalid_zips.empty:
        context.log.warning(
            f"{int(findings.invalid_zips['count'].sum())} included records have a zip code that "
            "is not NNNNN, NNNNN-NNNN or NNNNNNNNN (sent empty)"
        )


def build_export_asset(cadence: Cadence) -> dg.AssetsDefinition:
    group = "daily_exports" if not cadence.monthly else "monthly_reconciliation"
    specs = [
        dg.AssetSpec(
            cadence.raw,
            skippable=True,
            description="Contact records of the period as read from the store.",
        ),
        dg.AssetSpec(
            cadence.mapped,
            deps=[cadence.raw],
            skippable=True,
            description="Included records, their six demographic slots mapped as the "
            "organization file says.",
        ),
        dg.AssetSpec(
            cadence.summary,
            deps=[cadence.mapped],
            skippable=True,
            description="File 1: calls and services per Call Date and Report Version "
            "(docs/file-format.md).",
        ),
        dg.AssetSpec(
            cadence.needs,
            deps=[cadence.mapped],
            skippable=True,
            description="File 2: needs and demographics per record (docs/file-format.md).",
        ),
    ]
    checks = [
        dg.AssetCheckSpec(
            CHECK_UNREADABLE,
            asset=cadence.raw,
            description="Records left out, by organization and record number: an unreadable "
            "started_at or deleted, a value that is not readable text, no record number, or a "
            "number on two records of one period. A warning (docs/file-format.md).",
        ),
        dg.AssetCheckSpec(
            CHECK_CLEAN,
            asset=cadence.raw,
            description="Values read with control characters (removed before use), and values "
            "sent that start with = + - or @, which a spreadsheet would take for a formula "
            "(sent as they are): a finding for the organization's form, not an error.",
        ),
        dg.AssetCheckSpec(
            CHECK_UNMAPPED,
            asset=cadence.mapped,
            description="Answers to a question with a value map that the map does not cover: "
            "sent empty, counted per organization, period and distinct answer (cut to 40 "
            "characters). A warning.",
        ),
        dg.AssetCheckSpec(
            CHECK_NEEDS,
            asset=cadence.needs,
            description="Needs left out for a missing or invalid taxonomy code, or an "
            "unreadable unmet flag, by record number and code. A warning.",
        ),
        dg.AssetCheckSpec(
            CHECK_ZIPS,
            asset=cadence.needs,
            description="Zip codes that are not NNNNN, NNNNN-NNNN or NNNNNNNNN (sent empty), "
            "counted per file. A warning.",
        ),
        dg.AssetCheckSpec(
            CHECK_SCHEMA,
            asset=cadence.summary,
            blocking=True,
            description="The pandera gate every pair passes before it is published (header, "
            "Call Date window, counts, codes, zips, uniqueness, records per Call Date equal "
            "Total Calls). An error: a failing pair is not published and the previous one "
            "stays (docs/file-format.md).",
        ),
        dg.AssetCheckSpec(
            CHECK_INTACT,
            asset=cadence.summary,
            description="The pair on disk is the pair published: checked by every delivery run "
            "before sending; a failure names the path and the expected and found SHA-256.",
        ),
    ]

    @dg.multi_asset(
        name=f"{cadence.name}_exports",
        specs=specs,
        check_specs=checks,
        partitions_def=cadence.partitions_def,
        can_subset=False,
        group_name=group,
        backfill_policy=dg.BackfillPolicy.single_run(),
        # Only what may pass is retried (a full disk, an I/O error, a store that could not be
        # reached): every other failure raises a Failure that bypasses this policy.
        retry_policy=dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL),
    )
    @_named_failures
    def export_files(
        context: dg.AssetExecutionContext,
        config: ExportScope,
        org_registry: OrgRegistry,
        source: SourceReader,
        export_files: ExportFiles,
    ) -> Iterator[Any]:
        requested = [split_key(cadence.partitions_def, k) for k in context.partition_keys]
        if config.orgs:
            named = set(config.orgs)
            requested = [(org, start) for org, start in requested if org in named]
        registry = org_registry.load()
        known = [(org, start) for org, start in requested if org in registry.orgs]
        unknown = sorted({org for org, _ in requested if org not in registry.orgs})
        # Before share_from first: such a period never has a file, ended or not (a period of a
        # future share_from is not "not ended", a reason that would stop being true).
        planned, skipped = plan_targets(known, registry.orgs, cadence.monthly)
        ended, still_open = split_open_periods(
            [(t.org_id, period_start(t.period)) for t in planned],
            registry.orgs,
            cadence.monthly,
            dt.datetime.now(dt.UTC),
        )
        has_ended = set(ended)
        targets = [t for t in planned if (t.org_id, period_start(t.period)) in has_ended]
        # A run over its whole range, every org registered, records the read and the mapping for
        # the range before any pair (Dagster would show a pair older than its upstream records
        # as unsynced); Dagster writes those records in batches.
        range_first = not unknown and len(requested) == len(context.partition_keys)
        if range_first:
            for asset_key in (cadence.raw, cadence.mapped):
                yield dg.MaterializeResult(
                    asset_key=asset_key,
                    metadata={
                        "recorded_with": "the run's range, read and mapped in one go; each "
                        "partition's own counts are in the "
                        f"{cadence.summary.to_user_string()} record of that partition",
                        "partitions_in_the_run": len(requested),
                    },
                )
        # Periods without a file first: the asset's newest record is then a published pair.
        without_file = [
            (str(partition_key(cadence.monthly, org_id, period_start(period))), status, reason)
            for status, periods in ((STATUS_SKIPPED, skipped), (STATUS_NOT_ENDED, still_open))
            for (org_id, period), reason in periods.items()
        ]
        # An org the run covers but the registry does not hold fails nothing: its partitions
        # are recorded as not made, saying why, and the others are made.
        not_made = {org: _not_registered(org, registry) for org in unknown}
        without_file += [
            (str(partition_key(cadence.monthly, org_id, start)), STATUS_NOT_MADE, not_made[org_id])
            for org_id, start in requested
            if org_id in not_made
        ]
        for reason in not_made.values():
            context.log.warning(reason)
        yield from record_together(context, _without_file_records(cadence.summary, without_file))
        # Organization by organization: memory holds one org's range, never the whole run's.
        org_outcomes, published = [], []
        for org_id, org_targets in _by_org(targets):
            org_outcome = _export(context, source, registry.orgs[org_id], org_targets)
            counts = findings_counts(org_outcome.findings)
            # Read before publishing: nothing that may fail stands between a publish and its
            # record but the record itself.
            extras = _reconciliations(context, export_files, org_outcome) if cadence.monthly else {}
            # Each batch is recorded as soon as it is published, while its locks hold; closed
            # explicitly so an error here releases the locks at once.
            with contextlib.closing(
                publish_pairs(org_outcome, export_files.store(f"run {context.run_id}"))
            ) as batches:
                for published_pairs in batches:
                    records = []
                    for result in published_pairs:
                        key = (result.target.org_id, result.target.period)
                        record, facts = _pair_record(cadence, result, counts, extras.get(key, {}))
                        records.append(record)
                        published.append(facts)
                        result.release()
                    yield from record_together(context, records)
            org_outcomes.append(org_outcome)
        outcome = RunOutcome.combine(org_outcomes)
        if range_first and not outcome.failed:
            yield dg.MaterializeResult(
                asset_key=cadence.needs,
                metadata={
                    "recorded_with": "the run's range: each needs file's path, SHA-256 and "
                    f"counts are in the {cadence.summary.to_user_string()} record of its "
                    "partition",
                    "pairs_published_by_the_run": len(published),
                    "periods_without_file_in_the_run": len(without_file),
                },
            )
        else:  # a needs file is recorded only where it was published (or none was due)
            yield from _records_per_partition(
                context, cadence, published, without_file, upstream=not range_first
            )
        context.log.info(
            f"{len(targets)} file pairs planned, {len(skipped)} periods before share_from, "
            f"{len(still_open)} not yet ended, "
            f"{sum(1 for f in outcome.files.values() if f.published)} pairs published"
        )
        _log_findings(context, outcome)
        yield from _check_results(cadence, outcome, outcome.failed)

        problems = [
            f"{org} {period}: {line}"
            for (org, period), lines in outcome.failed.items()
            for line in lines
        ]
        if problems:
            # Validation, configuration and a path taken by something else fail the same way
            # again; a full disk may pass.
            may_pass = any(f.retryable for f in outcome.files.values())
            raise dg.Failure(
                description="Not published (the previous files stay):\n" + "\n".join(problems),
                metadata={"failed": len(problems)},
                allow_retries=may_pass,
            )

    return export_files


def _may_pass(exc: Exception) -> bool:
    """Whether a later try may succeed: after a full disk or an I/O error, or a database that
    could not be reached, was busy or dropped the connection."""
    if isinstance(exc, OSError):
        return disk_failure(exc).may_pass
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)


def _retry_rule(may_pass: bool) -> str:
    return "it may pass: retried" if may_pass else "it would fail the same way: not retried"


def _named_failures(body: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Whatever escapes the export fails it in words, and Dagster retries only what may pass
    (a bug retried twice only delays its report by three minutes). The error's own text is
    left to the stack trace: it may quote a value read from the store."""

    @functools.wraps(body)
    def export(*args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from body(*args, **kwargs)
        except (dg.Failure, dg.RetryRequested):
            raise
        except Exception as exc:
            if isinstance(exc, OSError):
                failure = disk_failure(exc)
                what = f"{failure.path}: {failure.reason}"
            elif isinstance(exc, sa.exc.SQLAlchemyError):
                what = f"a database error ({type(exc).__name__})"
            else:
                what = f"an unexpected error ({type(exc).__name__})"
            may_pass = _may_pass(exc)
            raise dg.Failure(
                description=f"The export stopped: {what}; {_retry_rule(may_pass)}. Pairs "
                "recorded before it stay published.",
                allow_retries=may_pass,
            ) from exc

    return export


def _not_registered(org_id: str, registry) -> str:
    return f"not made: {org_id} has no valid organization file in the registry" + "".join(
        f"; {e}" for e in registry.errors if Path(e.path).stem == org_id
    )


def _by_org(targets: list[Target]) -> Iterator[tuple[str, list[Target]]]:
    by_org: dict[str, list[Target]] = {}
    for target in targets:
        by_org.setdefault(target.org_id, []).append(target)
    yield from by_org.items()


def _export(context, source: SourceReader, org: Organization, targets: list[Target]) -> RunOutcome:
    """One organization's files of the run, built and validated; nothing written yet."""
    first = min(t.first_day for t in targets)
    last = max(t.last_day for t in targets)
    try:
        tables = source.read(org, first, last)
    except (SourceMissingError, SourceSchemaError) as exc:
        # The store's location or shape is configuration: retrying cannot fix it.
        raise dg.Failure(str(exc), allow_retries=False) from exc
    except sa.exc.SQLAlchemyError as exc:
        may_pass = _may_pass(exc)
        what = (
            "it could not be reached, was busy or dropped the connection"
            if may_pass
            else "it answered with an error"
        )
        raise dg.Failure(
            f"{org.id}: reading the contact-record store for Call Dates {first}..{last} failed, "
            f"{what} ({type(exc).__name__}); {_retry_rule(may_pass)}",
            allow_retries=may_pass,
        ) from exc
    context.log.info(f"{org.id}: read {len(tables.records)} records for Call Dates {first}..{last}")
    return build_run(tables, {org.id: org}, targets)


def _reconciliations(
    context: dg.AssetExecutionContext, export_files: ExportFiles, outcome: RunOutcome
) -> dict[tuple[str, str], dict]:
    """Metadata of each monthly summary to publish: the diff against the daily files made for
    the month. A daily file that cannot be read leaves that month's diff out (named in the
    metadata and the log), never the month's pair."""
    out = {}
    for key, result in outcome.files.items():
        if result.failures:
            continue
        target = result.target
        try:
            diff, missing = diff_for_month(
                export_files.root,
                target.org_id,
                target.first_day,
                target.last_day,
                result.rows["summary"],
                result.rows["needs"],
            )
        except (OSError, ValueError, KeyError) as exc:
            # The exception's type only: its text may quote a cell of an edited file.
            reason = (
                f"not available: a daily file of the month cannot be read ({type(exc).__name__})"
            )
            context.log.warning(f"{target.org_id} {target.period}: reconciliation {reason}")
            out[key] = {"reconciliation": reason}
            continue
        out[key] = {
            "reconciliation": dg.MetadataValue.md(markdown_table(diff, limit=31)),
            "records_added_late": int(diff["added late"].sum()),
            "records_removed": int(diff["removed"].sum()),
            "records_changed": int(diff["changed"].sum()),
            "calls_restated": int((diff["monthly calls"] - diff["daily calls"]).sum()),
            "days_without_daily_file": len(missing),
        }
    return out


class _PairFacts(NamedTuple):
    """What the other three assets record of a published pair, kept small: a run holds one
    per pair until its end."""

    partition: str
    included_records: int
    unmapped_answers: int
    needs_left_out: int
    invalid_zip_codes: int
    needs_path: str
    needs_sha256: str
    needs_rows: int


def _pair_record(
    cadence: Cadence, result: FileOutcome, counts: dict, extra: dict
) -> tuple[dg.AssetMaterialization, _PairFacts]:
    """The pair's record (the summary file's materialization: everything about the pair) and
    the facts the other three assets record when a run records them per partition."""
    target = result.target
    found = counts.get(
        (target.org_id, target.period),
        {"needs_left_out": 0, "invalid_zip_codes": 0, "unmapped_answers": 0},
    )
    start = target.first_day.replace(day=1) if cadence.monthly else target.first_day
    partition = str(partition_key(cadence.monthly, target.org_id, start))
    needs = file_metadata(result, "needs")
    metadata = file_metadata(result, "summary") | found | extra
    metadata |= {"needs_path": needs["path"], "needs_rows_written": needs["rows_written"]}
    record = dg.AssetMaterialization(
        asset_key=cadence.summary, partition=partition, metadata=metadata
    )
    facts = _PairFacts(
        partition,
        result.included_records,
        found["unmapped_answers"],
        found["needs_left_out"],
        found["invalid_zip_codes"],
        needs["path"].path,
        needs["sha256"],
        needs["rows_written"],
    )
    return record, facts


def _records_per_partition(
    context: dg.AssetExecutionContext,
    cadence: Cadence,
    published: list[_PairFacts],
    without_file: list[tuple[str, str, str]],
    upstream: bool,
) -> Iterator[dg.DagsterEvent]:
    """The needs file's records, one per partition, and the raw and mapped ones too when they
    were not recorded for the whole range: one batch per asset."""
    pair_metadata = {
        cadence.raw: lambda f: {"included_records": f.included_records},
        cadence.mapped: lambda f: {
            "included_records": f.included_records,
            "unmapped_answers": f.unmapped_answers,
        },
        cadence.needs: lambda f: {
            "status": "published",
            "path": dg.MetadataValue.path(f.needs_path),
            "sha256": f.needs_sha256,
            "rows_written": f.needs_rows,
            "needs_left_out": f.needs_left_out,
            "invalid_zip_codes": f.invalid_zip_codes,
        },
    }
    for asset_key in (cadence.raw, cadence.mapped, cadence.needs) if upstream else (cadence.needs,):
        metadata = pair_metadata[asset_key]
        records = [
            dg.AssetMaterialization(
                asset_key=asset_key, partition=f.partition, metadata=metadata(f)
            )
            for f in published
        ]
        yield from record_together(
            context, records + _without_file_records(asset_key, without_file)
        )


def _without_file_records(
    asset_key: dg.AssetKey, without_file: list[tuple[str, str, str]]
) -> list[dg.AssetMaterialization]:
    return [
        dg.AssetMaterialization(
            asset_key=asset_key, partition=partition, metadata={"status": status, "reason": reason}
        )
        for partition, status, reason in without_file
    ]


daily_exports = build_export_asset(DAILY)
monthly_exports = build_export_asset(MONTHLY)
