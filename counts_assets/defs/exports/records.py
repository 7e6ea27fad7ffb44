"""What each partition of an export records: the summary file's materialization is the pair's
record, with everything about the pair (both paths and SHA-256s, rows, counts, findings, and
for a month its reconciliation against the daily files); the other three assets record a few
facts of it, or the reason no file was made."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import dagster as dg
import pandas as pd

from counts_assets.core.exports.build import Findings
from counts_assets.core.exports.reconciliation import diff_for_month
from counts_assets.core.exports.run import FileOutcome, RunOutcome
from counts_assets.core.text import shown
from counts_assets.defs.shared.cadence import Cadence
from counts_assets.defs.shared.dagster_internals import record_together
from counts_assets.defs.shared.metadata import markdown_table
from counts_assets.defs.shared.partitions import partition_key
from counts_assets.defs.shared.resources import ExportFiles

# The status of a materialization that made no file: before share_from (final), or a period
# that had not yet ended (made again once it has).
STATUS_SKIPPED = "skipped"
STATUS_NOT_ENDED = "not_ended"
# A partition of an org without a valid organization file when the run came (removed, or its
# file rejected): nothing made, and requested again once the org is back.
STATUS_NOT_MADE = "not_made"


def reconciliations(
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


class PairFacts(NamedTuple):
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


def pair_record(
    cadence: Cadence, result: FileOutcome, counts: dict, extra: dict
) -> tuple[dg.AssetMaterialization, PairFacts]:
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
    facts = PairFacts(
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


def records_per_partition(
    context: dg.AssetExecutionContext,
    cadence: Cadence,
    published: list[PairFacts],
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
        yield from record_together(context, records + without_file_records(asset_key, without_file))


def without_file_records(
    asset_key: dg.AssetKey, without_file: list[tuple[str, str, str]]
) -> list[dg.AssetMaterialization]:
    return [
        dg.AssetMaterialization(
            asset_key=asset_key, partition=partition, metadata={"status": status, "reason": reason}
        )
        for partition, status, reason in without_file
    ]


def file_metadata(outcome: FileOutcome, kind: str) -> dict[str, Any]:
    published = {p.kind: p for p in outcome.published}[kind]
    meta: dict[str, Any] = {
        "status": "published",
        "path": dg.MetadataValue.path(str(published.path.resolve())),
        "sha256": published.sha256,
        "size_bytes": published.size,
        "rows_written": published.rows,
        "included_records": outcome.included_records,
        "total_calls": outcome.included_records,
        "total_services": outcome.total_services,
        "total_needs": outcome.total_needs,
        "first_call_date": outcome.target.first_day.isoformat(),
        "last_call_date": outcome.target.last_day.isoformat(),
    }
    if kind == "summary":
        meta["needs_sha256"] = {p.kind: p for p in outcome.published}["needs"].sha256
        preview = outcome.rows["summary"].drop(columns=["org_id", "period"])
        preview["Report Version"] = preview["Report Version"].map(shown)  # a source value
        meta["preview"] = dg.MetadataValue.md(markdown_table(preview, limit=10))
    return meta


def findings_counts(findings: Findings) -> dict[tuple[str, str], dict[str, int]]:
    """Per-file counts of the data-quality findings, computed once for the whole run."""
    key = ["org_id", "period"]
    columns = {
        "needs_left_out": findings.invalid_needs.groupby(key).size(),
        "invalid_zip_codes": findings.invalid_zips.groupby(key)["count"].sum(),
        "unmapped_answers": findings.unmapped.groupby(key)["count"].sum(),
    }
    present = {name: counts for name, counts in columns.items() if not counts.empty}
    if not present:
        return {}
    table = pd.DataFrame(present).reindex(columns=list(columns)).fillna(0).astype("int64")
    return {tuple(k): row for k, row in zip(table.index, table.to_dict("records"), strict=True)}
