"""File headers and names."""

from __future__ import annotations

from pathlib import Path

SUMMARY_HEADER = ["Call Date", "Total Calls", "Total Services", "Report Version"]
NEEDS_HEADER = [
    "Call Date",
    "Zip Code",
    "Taxonomy Code",
    "Count",
    "Need Was Unmet",
    "Age",
    "Gender",
    "Ethnicity",
    "Children In Household",
    "Income Level",
    "Source",
    "Call Report Num",
]
# Each built frame carries the file it belongs to in these columns, ahead of the file's own.
FILE_KEY = ["org_id", "period"]


def file_path(export_dir: Path, org_id: str, period: str, kind: str) -> Path:
    """`<dir>/<org>/daily/<org>_daily_<YYYY-MM-DD>_<kind>.csv`, or monthly with `<YYYY-MM>`."""
    cadence = "monthly" if len(period) == 7 else "daily"
    return export_dir / org_id / cadence / f"{org_id}_{cadence}_{period}_{kind}.csv"
