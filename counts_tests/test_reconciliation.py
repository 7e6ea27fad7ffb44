"""The reconciliation diff: daily files made for a month versus the monthly restatement."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from counts_assets.core.exports.reconciliation import reconciliation_diff
from counts_assets.core.files.layout import NEEDS_HEADER, SUMMARY_HEADER
from counts_tests.platform import platform_on


def _summary(rows):
    return pd.DataFrame(rows, columns=SUMMARY_HEADER, dtype=object)


def _needs(rows):
    return pd.DataFrame(
        [(d, z, c, n, u, "", "", "", "", "", "", crn) for d, z, c, n, u, crn in rows],
        columns=NEEDS_HEADER,
        dtype=object,
    )


def test_diff_counts_late_removed_and_changed_records_per_call_date():
    daily_summary = _summary([("2026-10-01", "2", "1", "v1"), ("2026-10-02", "1", "0", "v1")])
    daily_needs = _needs(
        [
            ("2026-10-01", "", "BD", "1", "False", "a"),
            ("2026-10-01", "", "", "0", "", "b"),
            ("2026-10-02", "", "BH", "2", "True", "c"),
        ]
    )
    monthly_summary = _summary([("2026-10-01", "2", "3", "v1"), ("2026-10-02", "1", "0", "v1")])
    monthly_needs = _needs(
        [
            ("2026-10-01", "", "BD", "1", "False", "a"),  # unchanged
            ("2026-10-01", "", "LN", "1", "False", "d"),  # added late; b removed
            ("2026-10-02", "12345", "BH", "2", "True", "c"),  # changed (zip)
        ]
    )
    diff = reconciliation_diff(daily_summary, daily_needs, monthly_summary, monthly_needs)
    assert diff.values.tolist() == [
        ["2026-10-01", 2, 2, 1, 3, 1, 2, 1, 1, 0],
        ["2026-10-02", 1, 1, 0, 0, 2, 2, 0, 0, 1],
    ]


def test_diff_with_no_daily_files():
    diff = reconciliation_diff(
        _summary([]),
        _needs([]),
        _summary([("2026-10-01", "1", "0", "")]),
        _needs([("2026-10-01", "", "", "0", "", "a")]),
    )
    assert diff.values.tolist() == [["2026-10-01", 0, 1, 0, 0, 0, 0, 1, 0, 0]]


@pytest.fixture
def platform(tmp_path):
    with platform_on(tmp_path) as platform:
        yield platform


def march_record(platform) -> dict:
    """The metadata of testorg's newest March summary record."""
    record = platform.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("monthly_summary_file"),
            asset_partitions=["2026-03-01|testorg"],
        ),
        limit=1,
    ).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_monthly_materialization_reports_the_diff(platform):
    assert platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-31|testorg").success
    engine = sa.create_engine(platform.source_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE contact_records SET status = 'finalized' WHERE call_report_num = '1003'"
        )
        connection.exec_driver_sql(
            "UPDATE contact_records SET deleted = '1' WHERE call_report_num = '999'"
        )
        connection.exec_driver_sql(
            "UPDATE contact_records SET postal_code = '60601' WHERE call_report_num = '10010'"
        )
    assert platform.run("monthly_reconciliation_job", "2026-03-01|testorg").success
    meta = march_record(platform)
    assert meta["records_added_late"] == 1
    assert meta["records_removed"] == 1
    assert meta["records_changed"] == 1
    assert meta["calls_restated"] == 0
    assert meta["days_without_daily_file"] == 0
    table = meta["reconciliation"]
    assert "| Call Date | daily calls | monthly calls |" in table
    assert "| 2026-03-08 | 3 | 3 | 3 | 4 | 6 | 7 | 1 | 1 | 1 |" in table


def test_an_unreadable_daily_file_leaves_out_the_diff_never_the_monthly_pair(platform):
    """The diff is information for the data manager; the monthly restatement is what 211 Counts
    needs. A daily file edited into something unreadable (here: a folder at its path) costs the
    month its diff, named in the record and the log, and nothing else."""
    assert platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-31|testorg").success
    daily = platform.export_dir / "testorg" / "daily" / "testorg_daily_2026-03-09_summary.csv"
    daily.unlink()
    daily.mkdir()
    result = platform.run("monthly_reconciliation_job", "2026-03-01|testorg")
    assert result.success
    meta = march_record(platform)
    assert meta["status"] == "published"
    assert meta["reconciliation"] == (
        "not available: a daily file of the month cannot be read (IsADirectoryError)"
    )
    monthly = platform.export_dir / "testorg" / "monthly"
    assert sorted(p.name for p in monthly.iterdir()) == [
        "testorg_monthly_2026-03_needs.csv",
        "testorg_monthly_2026-03_summary.csv",
    ]
    assert not list((platform.export_dir / ".pairs").rglob("*.journal"))
