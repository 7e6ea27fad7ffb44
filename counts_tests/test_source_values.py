"""Source values as read (§2), as pure functions: control characters, undecodable values,
unusable record numbers, and numbers repeated within a period's read window."""

from __future__ import annotations

import pandas as pd

from counts_assets.core.rules.inclusion import repeated_numbers
from counts_assets.core.source.tables import SourceTables
from counts_assets.core.source.values import clean_source
from counts_tests.factories import answers_frame, records_frame, targets

EMPTY = SourceTables.empty()


def tables(records, answers=()) -> SourceTables:
    return SourceTables(
        records=records_frame(records),
        answers=answers_frame(list(answers)) if answers else EMPTY.answers,
        needs=EMPTY.needs,
        referrals=EMPTY.referrals,
    )


def test_null_empty_and_undecodable_numbers_are_counted_not_named():
    read = tables(
        [
            {"call_report_num": None, "started_at": "2026-10-15 12:00:00"},
            {"call_report_num": " \t", "started_at": "2026-10-15 12:00:00"},
            {"call_report_num": "9\udcff", "started_at": "2026-10-15 12:00:00"},
            {"call_report_num": "ok", "started_at": "2026-10-15 12:00:00"},
        ]
    )
    cleaned, left_out, _ = clean_source(read)
    assert cleaned.records["call_report_num"].tolist() == ["ok"]
    assert left_out["call_report_num"].isna().all()
    assert sorted(left_out["column"]) == [
        "call_report_num (empty)",
        "call_report_num (empty)",
        "call_report_num (not readable text)",
    ]


def test_an_undecodable_answer_leaves_its_record_out_by_number_only():
    read = tables(
        [
            {"call_report_num": "1", "started_at": "2026-10-15 12:00:00"},
            {"call_report_num": "2", "started_at": "2026-10-15 12:00:00"},
        ],
        [("1", "Gender", "John Doe \udcff"), ("2", "Gender", "F")],
    )
    cleaned, left_out, _ = clean_source(read)
    assert cleaned.records["call_report_num"].tolist() == ["2"]
    assert cleaned.answers["call_report_num"].tolist() == ["2"]
    assert left_out.values.tolist() == [["testorg", "1", "answer (not readable text)"]]
    assert "John" not in repr(left_out)


def test_control_characters_are_removed_before_matching_and_counted():
    read = tables(
        [{"call_report_num": "1\x00", "started_at": "2026-10-15 12:00:00"}],
        [("1", "Gen\x07der", "F\x1b"), ("1", "Notes", "tab\tand\nnewline stay")],
    )
    cleaned, left_out, control = clean_source(read)
    assert left_out.empty
    assert cleaned.records["call_report_num"].tolist() == ["1"]
    assert cleaned.answers[["question", "answer"]].values.tolist() == [
        ["Gender", "F"],
        ["Notes", "tab\tand\nnewline stay"],
    ]
    assert control.values.tolist() == [["testorg", 3]]


def test_a_number_repeated_within_a_period_window_leaves_both_out_there_only():
    records = records_frame(
        [
            {"call_report_num": "7", "started_at": "2026-10-15 12:00:00"},
            {"call_report_num": "7", "started_at": "2026-10-16 09:00:00"},
            {"call_report_num": "8", "started_at": "2026-10-01 12:00:00"},
            {"call_report_num": "8", "started_at": "2026-10-25 12:00:00"},
        ]
    )
    days = [(d, d, d) for d in ("2026-10-01", "2026-10-15", "2026-10-16", "2026-10-25")]
    ranged = repeated_numbers(records, targets(days))
    # 7 is repeated in the windows of the 15th and the 16th (two days either side), and in
    # nobody else's; 8's two records are 24 days apart: never in one window.
    assert ranged[["period", "call_report_num"]].values.tolist() == [
        ["2026-10-15", "7"],
        ["2026-10-16", "7"],
    ]
    one_by_one = pd.concat([repeated_numbers(records, targets([d])) for d in days])
    assert one_by_one.values.tolist() == ranged.values.tolist()
    month = repeated_numbers(records, targets([("2026-10", "2026-10-01", "2026-10-31")]))
    assert sorted(month["call_report_num"]) == ["7", "8"]
