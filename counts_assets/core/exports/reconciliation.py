"""The reconciliation diff: per Call Date, what the daily files made for a month said versus
the monthly restatement, and which records were added late, removed or changed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from counts_assets.core.files.layout import NEEDS_HEADER, SUMMARY_HEADER, file_path

DIFF_COLUMNS = [
    "Call Date",
    "daily calls",
    "monthly calls",
    "daily services",
    "monthly services",
    "daily needs",
    "monthly needs",
    "added late",
    "removed",
    "changed",
]


def read_daily_files(
    export_dir: Path, org_id: str, first: dt.date, last: dt.date
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(summary rows, needs rows, days without a daily file) of the daily files on disk."""
    summaries, needs, missing = [], [], []
    day = first
    while day <= last:
        paths = {k: file_path(export_dir, org_id, day.isoformat(), k) for k in ("summary", "needs")}
        if all(p.exists() for p in paths.values()):
            summaries.append(pd.read_csv(paths["summary"], dtype=str, keep_default_na=False))
            needs.append(pd.read_csv(paths["needs"], dtype=str, keep_default_na=False))
        else:
            missing.append(day.isoformat())
        day += dt.timedelta(days=1)
    empty_summary = pd.DataFrame(columns=SUMMARY_HEADER, dtype=object)
    empty_needs = pd.DataFrame(columns=NEEDS_HEADER, dtype=object)
    return (
        pd.concat([empty_summary, *summaries], ignore_index=True).astype(object),
        pd.concat([empty_needs, *needs], ignore_index=True).astype(object),
        missing,
    )


def _totals(summary: pd.DataFrame, needs: pd.DataFrame, label: str) -> pd.DataFrame:
    calls = pd.to_numeric(summary["Total Calls"]).groupby(summary["Call Date"]).sum()
    services = pd.to_numeric(summary["Total Services"]).groupby(summary["Call Date"]).sum()
    need_count = pd.to_numeric(needs["Count"]).groupby(needs["Call Date"]).sum()
    return pd.DataFrame(
        {f"{label} calls": calls, f"{label} services": services, f"{label} needs": need_count}
    )


def _signatures(needs: pd.DataFrame) -> pd.Series:
    """One text per (Call Date, record): all its rows, so any edit shows as a change."""
    if needs.empty:
        index = pd.MultiIndex.from_arrays([[], []], names=["Call Date", "Call Report Num"])
        return pd.Series([], index=index, dtype=object)
    rows = needs.sort_values(list(needs.columns)).astype(str).agg("\x1f".join, axis=1)
    return rows.groupby([needs["Call Date"], needs["Call Report Num"]]).agg("\x1e".join)


def reconciliation_diff(
    daily_summary: pd.DataFrame,
    daily_needs: pd.DataFrame,
    monthly_summary: pd.DataFrame,
    monthly_needs: pd.DataFrame,
) -> pd.DataFrame:
    totals = pd.concat(
        [
            _totals(daily_summary, daily_needs, "daily"),
            _totals(monthly_summary, monthly_needs, "monthly"),
        ],
        axis=1,
    ).fillna(0)
    daily, monthly = _signatures(daily_needs), _signatures(monthly_needs)
    both = pd.concat([daily.rename("daily"), monthly.rename("monthly")], axis=1)
    dates = both.index.get_level_values(0)
    records = pd.DataFrame(
        {
            "added late": (both["daily"].isna() & both["monthly"].notna()).groupby(dates).sum(),
            "removed": (both["daily"].notna() & both["monthly"].isna()).groupby(dates).sum(),
            "changed": (
                both["daily"].notna() & both["monthly"].notna() & (both["daily"] != both["monthly"])
            )
            .groupby(dates)
            .sum(),
        }
    )
    diff = pd.concat([totals, records], axis=1).fillna(0).astype("int64")
    diff.index.name = "Call Date"
    return diff.reset_index().sort_values("Call Date")[DIFF_COLUMNS].reset_index(drop=True)


def diff_for_month(
    export_dir: Path,
    org_id: str,
    first: dt.date,
    last: dt.date,
    monthly_summary: pd.DataFrame,
    monthly_needs: pd.DataFrame,
) -> tuple[pd.DataFrame, list[str]]:
    """The diff of one org's month against its daily files on disk, and the days that have
    no daily file (every record of those days then counts as added late)."""
    daily_summary, daily_needs, missing = read_daily_files(export_dir, org_id, first, last)
    diff = reconciliation_diff(
        daily_summary, daily_needs, monthly_summary[SUMMARY_HEADER], monthly_needs[NEEDS_HEADER]
    )
    return diff, missing
