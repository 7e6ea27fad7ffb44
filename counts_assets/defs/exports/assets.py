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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa

from counts_assets.core.exports.run import RunOutcome, build_run, publish_pairs
from counts_assets.core.files.periods import (
    Target,
    period_start,
    plan_targets,
    split_open_periods,
)
from counts_assets.core.orgs.models import Organization
from counts_assets.core.source.reader import SourceMissingError, SourceSchemaError
from counts_assets.defs.exports.checks import check_results, check_specs, log_findings
from counts_assets.defs.exports.failures import failure_may_pass, named_failures, retry_rule
from counts_assets.defs.exports.records import (
    STATUS_NOT_ENDED,
    STATUS_NOT_MADE,
    STATUS_SKIPPED,
    findings_counts,
    pair_record,
    reconciliations,
    records_per_partition,
    without_file_records,
)
from counts_assets.defs.exports.resources import SourceReader
from counts_assets.defs.shared.cadence import DAILY, MONTHLY, Cadence
from counts_assets.defs.shared.dagster_internals import record_together
from counts_assets.defs.shared.partitions import (
    partition_key,
    split_key,
)
from counts_assets.defs.shared.resources import ExportFiles, OrgRegistry


class ExportScope(dg.Config):
    """Which orgs of the run's partition range to make. A run covers a contiguous range of the
    `orgs` partitions; the schedules name the orgs due inside it, so one run serves every org
    that came due at a tick. Empty: every org of the range."""

    orgs: list[str] = []


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
    checks = check_specs(cadence)

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
    @named_failures
    def make_pairs(
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
        yield from record_together(context, without_file_records(cadence.summary, without_file))
        # Organization by organization: memory holds one org's range, never the whole run's.
        org_outcomes, published = [], []
        for org_id, org_targets in _by_org(targets):
            org_outcome = _export(context, source, registry.orgs[org_id], org_targets)
            counts = findings_counts(org_outcome.findings)
            # Read before publishing: nothing that may fail stands between a publish and its
            # record but the record itself.
            extras = reconciliations(context, export_files, org_outcome) if cadence.monthly else {}
            # Each batch is recorded as soon as it is published, while its locks hold; closed
            # explicitly so an error here releases the locks at once.
            with contextlib.closing(
                publish_pairs(org_outcome, export_files.store(f"run {context.run_id}"))
            ) as batches:
                for published_pairs in batches:
                    records = []
                    for result in published_pairs:
                        key = (result.target.org_id, result.target.period)
                        record, facts = pair_record(cadence, result, counts, extras.get(key, {}))
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
            yield from records_per_partition(
                context, cadence, published, without_file, upstream=not range_first
            )
        context.log.info(
            f"{len(targets)} file pairs planned, {len(skipped)} periods before share_from, "
            f"{len(still_open)} not yet ended, "
            f"{sum(1 for f in outcome.files.values() if f.published)} pairs published"
        )
        log_findings(context, outcome)
        yield from check_results(cadence, outcome, outcome.failed)

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

    return make_pairs


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
        may_pass = failure_may_pass(exc)
        what = (
            "it could not be reached, was busy or dropped the connection"
            if may_pass
            else "it answered with an error"
        )
        raise dg.Failure(
            f"{org.id}: reading the contact-record store for Call Dates {first}..{last} failed, "
            f"{what} ({type(exc).__name__}); {retry_rule(may_pass)}",
            allow_retries=may_pass,
        ) from exc
    context.log.info(f"{org.id}: read {len(tables.records)} records for Call Dates {first}..{last}")
    return build_run(tables, {org.id: org}, targets)


daily_exports = build_export_asset(DAILY)
monthly_exports = build_export_asset(MONTHLY)
