"""Validates every file of a run at once and says which (org, period) pairs may be published."""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd
import pandera.errors

from counts_assets.exports.layout import FILE_KEY, NEEDS_HEADER, SUMMARY_HEADER
from counts_assets.validation.schemas import FilePairSchema, NeedsFileSchema, SummaryFileSchema

MAX_ROWS_NAMED = 10


@dataclass
class ValidationReport:
    """Failures by file pair: (org_id, period) -> readable lines naming the rule and the rows."""

    failures: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def passed(self, org_id: str, period: str) -> bool:
        return (org_id, period) not in self.failures


def _windowed(frame: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    window = targets[[*FILE_KEY, "first_day", "last_day"]]
    merged = frame.merge(window, on=FILE_KEY, how="left")
    ordered = [*FILE_KEY, "first_day", "last_day", *frame.columns.drop(FILE_KEY)]
    return merged[ordered].astype(object)


def _pair_counts(summary: pd.DataFrame, needs: pd.DataFrame) -> pd.DataFrame:
    keys = [*FILE_KEY, "Call Date"]
    calls = summary.assign(total=pd.to_numeric(summary["Total Calls"], errors="coerce"))
    calls = calls.groupby(keys)["total"].sum().rename("total_calls")
    records = needs.groupby(keys)["Call Report Num"].nunique().rename("distinct_records")
    pairs = pd.concat([calls, records], axis=1).fillna(0).astype("int64").reset_index()
    return pairs.astype({c: object for c in keys})


def _collect(
    schema: type, frame: pd.DataFrame, file_label: str, failures: dict, by_date: bool = False
) -> None:
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        by_file: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for case in cases.itertuples(index=False):
            rule = _rule_name(schema, case)
            if pd.isna(case.index):
                for key in frame[FILE_KEY].drop_duplicates().itertuples(index=False):
                    by_file[tuple(key)][rule].append(None)
                continue
            key = tuple(frame.loc[case.index, FILE_KEY])
            by_file[key][rule].append(int(case.index))
        for key, rules in by_file.items():
            lines = failures.setdefault(key, [])
            for rule, rows in rules.items():
                indexes = sorted({r for r in rows if r is not None})
                if by_date:
                    named = [frame.loc[r, "Call Date"] for r in indexes[:MAX_ROWS_NAMED]]
                else:
                    named = [_file_row(frame, key, r) for r in indexes[:MAX_ROWS_NAMED]]
                more = len(indexes) - len(named)
                shown = ", ".join(map(str, named)) + (f" (+{more} more)" if more else "")
                place = "Call Dates" if by_date else "data rows"
                where = f"{place} {shown}" if named else "whole file"
                lines.append(f"{file_label} fails [{rule}] at {where}")


def _rule_name(schema: type, case) -> str:
    if case.check == "multiple_fields_uniqueness":
        columns = [c for c in schema.Config.unique if c not in FILE_KEY]
        return "rows must be unique on " + ", ".join(columns)
    if case.schema_context == "DataFrameSchema" or not case.column:
        return str(case.check)  # a row-wise rule: one case per cell, named once
    return f"{case.column}: {case.check}"


def _file_row(frame: pd.DataFrame, key: tuple[str, str], index: int) -> int:
    """1-based data row number inside the file the failing row belongs to (header excluded)."""
    in_file = (frame["org_id"] == key[0]) & (frame["period"] == key[1])
    return int(in_file.loc[:index].sum())


def validate_run(
    summary: pd.DataFrame, needs: pd.DataFrame, targets: pd.DataFrame
) -> ValidationReport:
    """One pandera validation per schema for all files of the run."""
    report = ValidationReport()
    summary_frame = _windowed(summary, targets)
    needs_frame = _windowed(needs, targets)
    _collect(SummaryFileSchema, summary_frame, "summary file", report.failures)
    _collect(NeedsFileSchema, needs_frame, "needs file", report.failures)
    _collect(
        FilePairSchema,
        _pair_counts(summary, needs),
        "summary/needs pair",
        report.failures,
        by_date=True,
    )
    return report


def validate_published_file(
    content: bytes, kind: str, org_id: str, period: str, first_day: str, last_day: str
) -> list[str]:
    """The delivery gate: the file as it is on disk, through the same schema it was built
    with. Returns the failures (empty when the file may be delivered)."""
    header = SUMMARY_HEADER if kind == "summary" else NEEDS_HEADER
    if content.startswith(b"\xef\xbb\xbf"):
        return ["the file starts with a byte-order mark"]
    if not content.endswith(b"\n"):
        return ["the last row is not ended by \\n"]
    try:
        frame = pd.read_csv(
            io.BytesIO(content),
            dtype=str,
            keep_default_na=False,
            encoding="utf-8",
            lineterminator="\n",
        )
    except (ValueError, UnicodeDecodeError) as exc:
        return [f"the file cannot be read as UTF-8 CSV: {exc}"]
    if list(frame.columns) != header:
        return [f"the header is not exactly {','.join(header)}"]
    frame = frame.astype(object).assign(org_id=org_id, period=period)
    window = pd.DataFrame(
        [(org_id, period, first_day, last_day)], columns=[*FILE_KEY, "first_day", "last_day"]
    )
    failures: dict = {}
    schema = SummaryFileSchema if kind == "summary" else NeedsFileSchema
    _collect(schema, _windowed(frame[[*FILE_KEY, *header]], window), f"{kind} file", failures)
    return failures.get((org_id, period), [])
