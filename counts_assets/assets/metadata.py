"""What a data manager reads in the UI. Counts, codes, record numbers, file facts: never names,
phone numbers, notes or other free text from the store."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd

from counts_assets.exports.build import Findings
from counts_assets.exports.run import FileOutcome
from counts_assets.rules.text import shown

MAX_LISTED = 50


def markdown_table(frame: pd.DataFrame, limit: int = MAX_LISTED) -> str:
    if frame.empty:
        return "_none_"
    shown = frame.head(limit).astype(object).map(lambda v: "" if pd.isna(v) else str(v))
    lines = [
        "| " + " | ".join(shown.columns) + " |",
        "|" + "---|" * len(shown.columns),
        *("| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in shown.values),
    ]
    if len(frame) > limit:
        lines.append(f"\n_{len(frame) - limit} more rows not shown_")
    return "\n".join(lines)


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
