"""Which records are exported (§3)."""

from __future__ import annotations

from counts_assets.core.rules.inclusion import select_included, with_call_dates
from counts_tests.factories import answers_frame, make_org, records_frame, targets

NOON = "2026-10-15T17:00:00Z"


def _included(rows, answers=(), org=None, periods=None, monthly=False):
    org = org or make_org()
    orgs = {org.id: org}
    records, unreadable = with_call_dates(records_frame(rows), orgs)
    chosen = targets(periods or [("2026-10-15", "2026-10-15", "2026-10-15")])
    got = select_included(records, answers_frame(list(answers)), orgs, chosen, monthly)
    return sorted(got["call_report_num"]), unreadable


def test_status_deletion_and_form_rules():
    rows = [
        {"call_report_num": "ok", "started_at": NOON},
        {"call_report_num": "draft", "started_at": NOON, "status": "draft"},
        {"call_report_num": "Finalized", "started_at": NOON, "status": "Finalized"},
        {"call_report_num": "deleted", "started_at": NOON, "deleted": "true"},
        {"call_report_num": "deleted1", "started_at": NOON, "deleted": 1},
        {"call_report_num": "not-deleted", "started_at": NOON, "deleted": "F"},
        {"call_report_num": "other-form", "started_at": NOON, "contact_form": "Crisis"},
        {"call_report_num": "form-case", "started_at": NOON, "contact_form": "211 contact"},
        {"call_report_num": "other-org", "started_at": NOON, "org_id": "someone"},
    ]
    assert _included(rows)[0] == ["not-deleted", "ok"]


def test_any_of_filter_matches_question_and_answer_after_strip_and_casefold():
    org = make_org(
        interaction_filter={
            "any_of": [
                {"question": "Line Called", "answers": ["2-1-1", "211 Text"]},
                {"question": "Is 211", "answers": ["Yes"]},
            ]
        }
    )
    rows = [{"call_report_num": n, "started_at": NOON} for n in "abcdefg"]
    answers = [
        ("a", "Line Called", "2-1-1"),
        ("b", "  line called ", " 211 TEXT "),
        ("c", "Line Called", "Crisis"),
        ("d", "Is 211", "yes"),
        ("e", "Line Called", None),
        ("f", "Another", "2-1-1"),
        ("g", "Line Called", "Crisis"),
        ("g", "Line Called", "2-1-1"),
    ]
    assert _included(rows, answers, org)[0] == ["a", "b", "d", "g"]


def test_all_211_filter_takes_every_record_on_the_forms():
    rows = [{"call_report_num": "a", "started_at": NOON}]
    assert _included(rows)[0] == ["a"]


def test_call_date_window_and_share_from():
    org = make_org(share_from="2026-10-10")
    rows = [
        {"call_report_num": "before", "started_at": "2026-10-09T17:00:00Z"},
        {"call_report_num": "first", "started_at": "2026-10-10T05:00:00Z"},  # 00:00 CDT
        {"call_report_num": "late", "started_at": "2026-11-01T04:59:59Z"},  # 23:59:59 CDT 31st
        {"call_report_num": "next-month", "started_at": "2026-11-01T05:00:00Z"},
    ]
    got, _ = _included(
        rows, org=org, periods=[("2026-10", "2026-10-10", "2026-10-31")], monthly=True
    )
    assert got == ["first", "late"]


def test_unreadable_values_are_left_out_and_reported():
    rows = [
        {"call_report_num": "ok", "started_at": NOON},
        {"call_report_num": "bad-time", "started_at": "15/10/2026 12:00"},
        {"call_report_num": "no-time", "started_at": None},
        {"call_report_num": "bad-deleted", "started_at": NOON, "deleted": "maybe"},
        {"call_report_num": None, "started_at": NOON},
    ]
    got, unreadable = _included(rows)
    assert got == ["ok"]
    assert sorted(
        map(tuple, unreadable[["call_report_num", "column"]].values.tolist()), key=str
    ) == sorted(
        [
            ("bad-time", "started_at"),
            ("no-time", "started_at"),
            ("bad-deleted", "deleted"),
            (None, "call_report_num"),
        ],
        key=str,
    )
