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


def file_name(org_id: str, period: str, kind: str) -> str:
    """`<org>_daily_<YYYY-MM-DD>_<kind>.csv`, or monthly with `<YYYY-MM>`: the name published
    and delivered."""
    return f"{org_id}_{_cadence(period)}_{period}_{kind}.csv"


def file_path(export_dir: Path, org_id: str, period: str, kind: str) -> Path:
    """`<dir>/<org>/daily/<org>_daily_<YYYY-MM-DD>_<kind>.csv`, or monthly with `<YYYY-MM>`."""
    return export_dir / org_id / _cadence(period) / file_name(org_id, period, kind)


def _cadence(period: str) -> str:
    return "monthly" if len(period) == 7 else "daily"
