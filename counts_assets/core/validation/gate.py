"""Validates every file of a run at once and says which (org, period) pairs may be published."""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd
import pandera.errors

from counts_assets.core.files.layout import FILE_KEY, NEEDS_HEADER, SUMMARY_HEADER
from counts_assets.core.validation.schemas import FilePairSchema, NeedsFileSchema, SummaryFileSchema

MAX_ROWS_NAMED = 10


@dataclass
class ValidationReport:
    """Failures by file pair: (org_id, period) -> readable lines naming the rule and the rows."""

    failures: dict[tuple[str, str], list[str]] = field(default_factory=dict)


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
                unit = "Call Dates" if by_date else "data rows"
                where = f"{unit} {shown}" if named else "whole file"
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


@dataclass(frozen=True)
class PairOnDisk:
    """A published pair as read for sending, with the Call Dates its files may cover."""

    org_id: str
    period: str
    first_day: str
    last_day: str
    summary: bytes
    needs: bytes


# A file at least this long goes to pandas' reader whatever it holds: the reader works through
# a file in chunks (256 KiB), and a row starting with blanks at a chunk's start keeps fewer of
# them. Daily files are far smaller.
PLAIN_FILE_LIMIT = 64 * 1024


def _plain_rows(content: bytes, header: list[str]) -> list[list[str]] | None:
    """The data rows of a plain file: shorter than PLAIN_FILE_LIMIT, no quote, CR or NUL byte,
    valid UTF-8, the header exactly as expected and every row complete. Such a file is split
    here as pandas' reader splits it; None for any other file (the reader decides)."""
    if len(content) >= PLAIN_FILE_LIMIT or any(b in content for b in (b'"', b"\r", b"\x00")):
        return None
    try:
        lines = content.decode("utf-8").split("\n")[:-1]  # the file ends with \n
    except UnicodeDecodeError:
        return None
    if not lines or lines[0] != ",".join(header):
        return None
    rows = [line.split(",") for line in lines[1:]]
    if any(len(row) != len(header) for row in rows):
        return None  # a blank, short or long row
    return rows


def _read_file(content: bytes, header: list[str]) -> list[list] | str:
    """The file's data rows as text, or why it cannot be checked at all. A plain file (the
    usual one) is split directly, any other read by pandas' CSV reader: the same rows either
    way (a property test compares them)."""
    if content.startswith(b"\xef\xbb\xbf"):
        return "the file starts with a byte-order mark"
    if not content.endswith(b"\n"):
        return "the last row is not ended by \\n"
    rows = _plain_rows(content, header)
    return rows if rows is not None else _read_with_pandas(content, header)


def _read_with_pandas(content: bytes, header: list[str]) -> list[list] | str:
    """pandas' CSV reader's rows of a file, or why it cannot be checked."""
    try:
        frame = pd.read_csv(
            io.BytesIO(content),
            dtype=str,
            keep_default_na=False,
            encoding="utf-8",
            lineterminator="\n",
        )
    except (ValueError, UnicodeDecodeError):
        return "the file cannot be read as UTF-8 CSV"
    if list(frame.columns) != header:
        return f"the header is not exactly {','.join(header)}"
    return frame.astype(object).to_numpy().tolist()


def validate_published_pairs(pairs: list[PairOnDisk]) -> dict[tuple[str, str], list[str]]:
    """The delivery gate: every pair as read from disk through the schemas it was built with,
    the cross-file rule included, in one validation per schema. Returns failures by
    (org_id, period); a pair that is absent passed."""
    failures: dict[tuple[str, str], list[str]] = {}
    rows: dict[str, list[list]] = {"summary": [], "needs": []}
    windows = []
    for pair in pairs:
        key = (pair.org_id, pair.period)
        read = {
            "summary": _read_file(pair.summary, SUMMARY_HEADER),
            "needs": _read_file(pair.needs, NEEDS_HEADER),
        }
        unreadable = [f"{kind} file: {r}" for kind, r in read.items() if isinstance(r, str)]
        if unreadable:
            failures[key] = unreadable
            continue
        for kind, file_rows in read.items():
            rows[kind] += [[pair.org_id, pair.period, *row] for row in file_rows]
        windows.append((pair.org_id, pair.period, pair.first_day, pair.last_day))
    if not windows:
        return failures
    summary = pd.DataFrame(rows["summary"], columns=[*FILE_KEY, *SUMMARY_HEADER], dtype=object)
    needs = pd.DataFrame(rows["needs"], columns=[*FILE_KEY, *NEEDS_HEADER], dtype=object)
    targets = pd.DataFrame(windows, columns=[*FILE_KEY, "first_day", "last_day"], dtype=object)
    report = validate_run(summary, needs, targets)
    failures.update(report.failures)
    return failures
