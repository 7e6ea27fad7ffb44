"""Golden files: a hand-built store and the files the contract says it must give, byte for byte;
from SQLite (text timestamps and flags) and from a real PostgreSQL server (timestamptz and
boolean columns)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from counts_assets.core.files.periods import plan_targets
from counts_assets.core.orgs.registry import load_registry
from counts_assets.defs.exports.resources import SourceReader
from counts_tests.factories import publish_run
from counts_tests.golden_store import GOLDEN_DIR, build_golden_store, write_org_files
from counts_tests.store import sqlite_url


@pytest.fixture(params=["sqlite", "postgresql"])
def golden(tmp_path, request):
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(f"golden_{uuid.uuid4().hex[:12]}")
    else:
        url = sqlite_url(tmp_path)
    build_golden_store(url)
    registry = load_registry(write_org_files(tmp_path / "orgs"), dt.date(2025, 1, 1))
    assert registry.errors == []
    return SourceReader(url=url), {"testorg": registry.orgs["testorg"]}, tmp_path / "exports"


def _export(golden, starts: list[dt.date], monthly: bool):
    reader, orgs, export_dir = golden
    targets, skipped = plan_targets([("testorg", s) for s in starts], orgs, monthly)
    first = min(t.first_day for t in targets)
    last = max(t.last_day for t in targets)
    outcome = publish_run(reader.read(orgs["testorg"], first, last), orgs, targets, export_dir)
    return outcome, skipped, export_dir


@pytest.mark.parametrize(
    ("monthly", "starts", "names"),
    [
        (False, [dt.date(2026, 3, 8)], ["daily_2026-03-08"]),
        (
            False,
            [dt.date(2026, 3, 8), dt.date(2026, 3, 10)],
            ["daily_2026-03-08", "daily_2026-03-10"],
        ),
        (True, [dt.date(2026, 3, 1)], ["monthly_2026-03"]),
    ],
)
def test_files_match_the_hand_written_golden_files(golden, monthly, starts, names):
    outcome, _, export_dir = _export(golden, starts, monthly)
    assert outcome.failed == {}
    cadence = "monthly" if monthly else "daily"
    for name in names:
        for kind in ("summary", "needs"):
            file_name = f"testorg_{name}_{kind}.csv"
            made = (export_dir / "testorg" / cadence / file_name).read_bytes()
            assert made == (GOLDEN_DIR / file_name).read_bytes(), file_name


def test_findings_name_records_and_codes(golden):
    outcome, _, _ = _export(golden, [dt.date(2026, 3, 1)], monthly=True)
    findings = outcome.findings
    assert findings.unreadable[["call_report_num", "column"]].values.tolist() == [
        ["1008", "started_at (not a readable time; it names no date)"]
    ]
    left_out = findings.invalid_needs.sort_values("taxonomy_code", na_position="last")
    assert left_out[["call_report_num", "taxonomy_code"]].values.tolist() == [
        ["1002", "BD1800"],
        ["1002", None],
    ]
    assert findings.invalid_zips["count"].tolist() == [1]  # "6060"
    assert findings.unmapped[["slot", "answer", "count"]].values.tolist() == [
        ["source", "Carrier pigeon", 1]
    ]


def test_a_day_before_share_from_makes_no_file(golden):
    reader, orgs, export_dir = golden
    targets, skipped = plan_targets([("testorg", dt.date(2026, 3, 6))], orgs, monthly=False)
    assert targets == []
    assert skipped == {
        ("testorg", "2026-03-06"): "no file: 2026-03-06 is before testorg's share_from 2026-03-07"
    }


def test_a_month_containing_share_from_covers_the_days_from_it(golden):
    _, orgs, _ = golden
    targets, _ = plan_targets([("testorg", dt.date(2026, 3, 1))], orgs, monthly=True)
    assert [(t.period, t.first_day, t.last_day) for t in targets] == [
        ("2026-03", dt.date(2026, 3, 7), dt.date(2026, 3, 31))
    ]
