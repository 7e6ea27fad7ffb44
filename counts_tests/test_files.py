"""Building the two files (§4): grouping, no-need rows, sorting, CSV formatting."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from counts_assets.core.files.csv_format import csv_lines, header_line
from counts_assets.core.files.periods import Target
from counts_assets.core.source.tables import NEED_COLUMNS, REFERRAL_COLUMNS, SourceTables
from counts_tests.factories import answers_frame, make_org, publish_run, records_frame

DAY = dt.date(2026, 10, 15)


def _run(tmp_path, rows, needs=(), referrals=(), answers=(), org=None):
    org = org or make_org()
    source = SourceTables(
        records=records_frame(rows),
        answers=answers_frame(list(answers)),
        needs=pd.DataFrame([("testorg", *n) for n in needs], columns=NEED_COLUMNS, dtype=object),
        referrals=pd.DataFrame(
            [("testorg", *r) for r in referrals], columns=REFERRAL_COLUMNS, dtype=object
        ),
    )
    outcome = publish_run(source, {org.id: org}, [Target(org.id, "2026-10-15", DAY, DAY)], tmp_path)
    assert outcome.failed == {}
    folder = tmp_path / "testorg" / "daily"
    return (
        (folder / "testorg_daily_2026-10-15_summary.csv").read_text(encoding="utf-8"),
        (folder / "testorg_daily_2026-10-15_needs.csv").read_text(encoding="utf-8"),
    )


def _rows(text: str) -> list[str]:
    return text.splitlines()[1:]


def test_header_only_files_when_nothing_is_included(tmp_path):
    summary, needs = _run(tmp_path, [])
    assert summary == "Call Date,Total Calls,Total Services,Report Version\n"
    assert needs == (
        "Call Date,Zip Code,Taxonomy Code,Count,Need Was Unmet,Age,Gender,Ethnicity,"
        "Children In Household,Income Level,Source,Call Report Num\n"
    )


def test_needs_grouped_by_code_and_unmet_and_counted(tmp_path):
    rows = [{"call_report_num": "7", "started_at": "2026-10-15T17:00:00Z"}]
    needs = [
        ("7", "BD-1800.2000", None),
        ("7", " bd-1800.2000", "0"),
        ("7", "BD-1800.2000", "1"),
        ("7", "BH-1800.8500", "false"),
        ("7", "X1", "1"),
    ]
    _, text = _run(tmp_path, rows, needs)
    assert _rows(text) == [
        "2026-10-15,,BD-1800.2000,2,False,,,,,,,7",
        "2026-10-15,,BD-1800.2000,1,True,,,,,,,7",
        "2026-10-15,,BH-1800.8500,1,False,,,,,,,7",
    ]


def test_record_without_valid_need_has_one_empty_row(tmp_path):
    rows = [{"call_report_num": "8", "started_at": "2026-10-15T17:00:00Z", "postal_code": "0123"}]
    _, text = _run(tmp_path, rows, needs=[("8", None, "1"), ("8", "BAD", "0")])
    assert _rows(text) == ["2026-10-15,,,0,,,,,,,,8"]


def test_summary_counts_calls_and_referral_rows_per_version(tmp_path):
    rows = [
        {"call_report_num": "1", "started_at": "2026-10-15T17:00:00Z", "report_version": "v2"},
        {"call_report_num": "2", "started_at": "2026-10-15T18:00:00Z", "report_version": "v10"},
        {"call_report_num": "3", "started_at": "2026-10-15T19:00:00Z", "report_version": "v2"},
        {"call_report_num": "4", "started_at": "2026-10-15T19:00:00Z", "report_version": None},
        {"call_report_num": "5", "started_at": "2026-10-15T19:00:00Z", "report_version": ""},
    ]
    referrals = [("1", 2), ("3", 1), ("4", 1)]
    summary, _ = _run(tmp_path, rows, referrals=referrals)
    assert _rows(summary) == ["2026-10-15,2,1,", "2026-10-15,1,0,v10", "2026-10-15,2,3,v2"]


def test_rows_sorted_in_plain_string_order(tmp_path):
    rows = [
        {"call_report_num": n, "started_at": "2026-10-15T17:00:00Z"}
        for n in ["9", "10", "b", "B", "A-2", "a"]
    ]
    needs = [("9", "BD", "1"), ("9", "BD", "0"), ("9", "B", None)]
    _, text = _run(tmp_path, rows, needs)
    assert [line.split(",")[-1] for line in _rows(text)] == [
        "10",
        "9",
        "9",
        "9",
        "A-2",
        "B",
        "a",
        "b",
    ]
    assert [line.split(",")[2:5] for line in _rows(text)][1:4] == [
        ["B", "1", "False"],
        ["BD", "1", "False"],
        ["BD", "1", "True"],
    ]


def test_leading_zero_zip_kept_and_text_cells_quoted_only_when_needed(tmp_path):
    org = make_org(demographics={"gender": {"question": "Gender"}, "source": {"question": "Src"}})
    rows = [
        {
            "call_report_num": "1",
            "started_at": "2026-10-15T17:00:00Z",
            "postal_code": "02134-0001",
            "report_version": 'v "2", final',
        }
    ]
    answers = [("1", "Gender", 'He said "no"'), ("1", "Src", "a,b"), ("1", "Src", "line\nbreak")]
    summary, text = _run(tmp_path, rows, answers=answers, org=org)
    assert _rows(summary) == ['2026-10-15,1,0,"v ""2"", final"']
    assert text.split("\n", 1)[1] == (
        '2026-10-15,02134,,0,,,"He said ""no""",,,,"a,b;line\nbreak",1\n'
    )


def test_csv_quoting_rules():
    frame = pd.DataFrame({"a": ["plain", "com,ma", 'qu"ote', "cr\r", "", " spaced "]})
    assert csv_lines(frame, ["a"]).tolist() == [
        "plain\n",
        '"com,ma"\n',
        '"qu""ote"\n',
        '"cr\r"\n',
        "\n",
        " spaced \n",
    ]
    assert header_line(["Call Date", "Total Calls"]) == "Call Date,Total Calls\n"


def test_files_are_utf8_without_bom(tmp_path):
    org = make_org(demographics={"gender": {"question": "Gender"}})
    rows = [{"call_report_num": "1", "started_at": "2026-10-15T17:00:00Z"}]
    _run(tmp_path, rows, answers=[("1", "Gender", "Mujer ñ")], org=org)
    data = (tmp_path / "testorg/daily/testorg_daily_2026-10-15_needs.csv").read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    assert "Mujer ñ".encode() in data
