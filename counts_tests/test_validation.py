"""The pandera gate (§4 "Validation"): failures name the file, rule and rows; a failing pair is
not published and the previous pair stays."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from counts_assets.core.exports.run import build_run, publish_pairs
from counts_assets.core.files.layout import NEEDS_HEADER, SUMMARY_HEADER
from counts_assets.core.files.periods import Target
from counts_assets.core.pairs.store import PairStore
from counts_assets.core.source.tables import SourceTables
from counts_assets.core.validation.gate import (
    _plain_rows,
    _read_file,
    _read_with_pandas,
    validate_run,
)
from counts_tests.factories import make_org, publish_run, records_frame, targets

WINDOW = targets(
    [("2026-10-15", "2026-10-15", "2026-10-15"), ("2026-10-16", "2026-10-16", "2026-10-16")]
)


def _summary(rows):
    return pd.DataFrame(
        [("testorg", r[0], *r) for r in rows],
        columns=["org_id", "period", *SUMMARY_HEADER],
        dtype=object,
    )


def _needs(rows):
    return pd.DataFrame(
        [("testorg", r[0], *r) for r in rows],
        columns=["org_id", "period", *NEEDS_HEADER],
        dtype=object,
    )


def _need(day="2026-10-15", zip_code="", code="", count="0", unmet="", crn="1"):
    return (day, zip_code, code, count, unmet, "", "", "", "", "", "", crn)


def test_valid_pair_passes():
    report = validate_run(
        _summary([("2026-10-15", "2", "0", "v1")]),
        _needs([_need(crn="1"), _need(crn="2", code="BD", count="3", unmet="True")]),
        WINDOW,
    )
    assert report.failures == {}


def test_each_rule_is_named_with_its_rows():
    summary = _summary(
        [
            ("2026-10-15", "1", "0", "v1"),
            ("2026-10-15", "0", "-1", "v2"),
            ("2026-10-16", "1.0", "0", "v1"),
        ]
    )
    needs = _needs(
        [
            _need(crn="1"),
            _need(crn="1"),  # duplicate (record, code, unmet)
            _need(crn="2", code="BD", count="0", unmet="True"),  # count 0 with a code
            _need(crn="3", code="", count="2", unmet="False"),  # count without code
            _need(crn="4", code="bd-1800", count="1", unmet="False"),  # not normalised
            _need(crn="5", zip_code="6060"),
            _need(day="2026-10-16", crn="6", code="BD", count="1", unmet="Yes"),
        ]
    )
    report = validate_run(summary, needs, WINDOW)
    day15 = "\n".join(report.failures[("testorg", "2026-10-15")])
    day16 = "\n".join(report.failures[("testorg", "2026-10-16")])
    assert "summary file fails [Total Calls: str_matches" in day15 and "data rows 2" in day15
    assert "[Total Services: str_matches" in day15
    assert (
        "needs file fails [Count is 0 exactly when Taxonomy Code is empty] at data rows 3, 4"
        in day15
    )
    assert "[Need Was Unmet is empty exactly when Taxonomy Code is empty] at data rows 4" in day15
    assert "[Taxonomy Code: str_matches" in day15 and "data rows 5" in day15
    assert "[Zip Code: str_matches" in day15 and "data rows 6" in day15
    assert (
        "[rows must be unique on Call Report Num, Taxonomy Code, Need Was Unmet] at data rows 1, 2"
        in day15
    )
    assert "[Total Calls: str_matches" in day16 and "data rows 1" in day16
    assert "[Need Was Unmet: isin" in day16


def test_call_date_outside_the_period_fails():
    report = validate_run(
        _summary([("2026-10-15", "1", "0", "")]).assign(period="2026-10-16"),
        _needs([_need()]).assign(period="2026-10-16"),
        WINDOW,
    )
    lines = "\n".join(report.failures[("testorg", "2026-10-16")])
    assert "Call Date inside the period and not before share_from" in lines


def test_pair_records_must_match_total_calls():
    report = validate_run(
        _summary([("2026-10-15", "3", "0", "")]),
        _needs([_need(crn="1"), _need(crn="2")]),
        WINDOW,
    )
    assert report.failures[("testorg", "2026-10-15")] == [
        "summary/needs pair fails [File 2 records per Call Date equal File 1 Total Calls] "
        "at Call Dates 2026-10-15"
    ]


def test_failed_pair_is_not_published_and_the_previous_pair_stays(tmp_path):
    # The source can no longer produce an invalid file (bad records are left out before), so
    # the failure is the gate's verdict on one pair, set as validate_run sets it.
    org = make_org()
    folder = tmp_path / "testorg" / "daily"
    folder.mkdir(parents=True)
    for kind in ("summary", "needs"):
        (folder / f"testorg_daily_2026-10-15_{kind}.csv").write_text(f"previous {kind}\n")
    day = dt.date(2026, 10, 15)
    empty = SourceTables.empty()
    source = SourceTables(
        records=records_frame(
            [
                {"call_report_num": "bad", "started_at": "2026-10-15T17:00:00Z"},
                {"call_report_num": "ok", "started_at": "2026-10-16T17:00:00Z"},
            ]
        ),
        answers=empty.answers,
        needs=empty.needs,
        referrals=empty.referrals,
    )
    targets = [
        Target("testorg", "2026-10-15", day, day),
        Target("testorg", "2026-10-16", day.replace(day=16), day.replace(day=16)),
    ]
    outcome = build_run(source, {org.id: org}, targets)
    outcome.files[("testorg", "2026-10-15")].failures.append("needs file fails [a rule]")
    published = [
        r.target.period for batch in publish_pairs(outcome, PairStore(tmp_path)) for r in batch
    ]
    assert published == ["2026-10-16"]
    assert list(outcome.failed) == [("testorg", "2026-10-15")]
    for kind in ("summary", "needs"):
        assert (folder / f"testorg_daily_2026-10-15_{kind}.csv").read_text() == f"previous {kind}\n"
    assert (
        (folder / "testorg_daily_2026-10-16_summary.csv")
        .read_text()
        .endswith("2026-10-16,1,0,v1\n")
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "testorg_daily_2026-10-15_needs.csv",
        "testorg_daily_2026-10-15_summary.csv",
        "testorg_daily_2026-10-16_needs.csv",
        "testorg_daily_2026-10-16_summary.csv",
    ]


def test_duplicate_record_numbers_are_left_out_and_reported(tmp_path):
    org = make_org()
    day = dt.date(2026, 10, 15)
    empty = SourceTables.empty()
    source = SourceTables(
        records=records_frame(
            [
                {"call_report_num": "42", "started_at": "2026-10-15T17:00:00Z"},
                {"call_report_num": "42", "started_at": "2026-10-15T18:00:00Z"},
                {"call_report_num": "43", "started_at": "2026-10-15T18:00:00Z"},
            ]
        ),
        answers=empty.answers,
        needs=empty.needs,
        referrals=empty.referrals,
    )
    outcome = publish_run(
        source, {org.id: org}, [Target("testorg", "2026-10-15", day, day)], tmp_path
    )
    assert outcome.failed == {}
    assert outcome.findings.duplicates.values.tolist() == [["testorg", "2026-10-15", "42", 2]]
    needs = (tmp_path / "testorg/daily/testorg_daily_2026-10-15_needs.csv").read_text()
    assert needs.splitlines()[1:] == ["2026-10-15,,,0,,,,,,,,43"]


def _read_by_pandas(content: bytes, header: list[str]) -> list[list] | str:
    """What the delivery gate read every file with before plain files were split directly."""
    if content.startswith(b"\xef\xbb\xbf"):
        return "the file starts with a byte-order mark"
    if not content.endswith(b"\n"):
        return "the last row is not ended by \\n"
    return _read_with_pandas(content, header)


def _same(a: list[list] | str, b: list[list] | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b, strict=True)):
        return False
    cells = ((u, v) for x, y in zip(a, b, strict=True) for u, v in zip(x, y, strict=True))
    return all(u == v or (pd.isna(u) and pd.isna(v)) for u, v in cells)


PLAIN_TEXT = st.text(alphabet=st.sampled_from(list("ab 1é#-NAul.")), max_size=6)
FIELD_TEXT = st.one_of(
    PLAIN_TEXT, PLAIN_TEXT, st.text(alphabet=st.sampled_from(list('a 1é",\r\n\x00')), max_size=4)
)
PLAIN_ROW = st.lists(PLAIN_TEXT, min_size=len(SUMMARY_HEADER), max_size=len(SUMMARY_HEADER))
ANY_ROW = st.lists(FIELD_TEXT, min_size=0, max_size=len(SUMMARY_HEADER) + 1)


@settings(max_examples=400, deadline=None)
@given(
    rows=st.lists(st.one_of(PLAIN_ROW, PLAIN_ROW, PLAIN_ROW, ANY_ROW), max_size=5),
    header_changed=st.sampled_from([False, False, False, True]),
    tail=st.sampled_from([b"\n", b"\n", b"\n", b"", b"\n\n", b"\r\n", b"\xff\n"]),
)
def test_the_gate_reads_every_file_as_the_csv_reader_does(rows, header_changed, tail):
    """A plain file is split directly, anything else goes to pandas' reader: for files quoted,
    ragged, blank, with CR, NUL, invalid UTF-8 or a changed header, the gate's rows (or its
    reason) are what pandas' reader gives."""
    header = ",".join(SUMMARY_HEADER[:-1] + ["x"] if header_changed else SUMMARY_HEADER)
    content = "\n".join([header, *(",".join(row) for row in rows)]).encode() + tail
    assert _same(_read_file(content, SUMMARY_HEADER), _read_by_pandas(content, SUMMARY_HEADER))


def test_a_plain_file_is_split_directly_into_the_csv_readers_rows():
    header = ",".join(NEEDS_HEADER)
    row = ",".join(["", "NA", "null", " padded ", "#1", "é"] + ["7"] * (len(NEEDS_HEADER) - 6))
    content = f"{header}\n{row}\n{row}\n".encode()
    assert _plain_rows(content, NEEDS_HEADER) is not None
    assert _same(_read_file(content, NEEDS_HEADER), _read_by_pandas(content, NEEDS_HEADER))
    assert _read_file(content, NEEDS_HEADER)[0][:3] == ["", "NA", "null"]


def test_files_the_reader_treats_its_own_way_are_left_to_it():
    """A NUL byte (the reader's C code handles it its own way) and a file past the size where
    the reader's 256 KiB chunks meet (blanks starting a row there are cut) are not split
    directly: the gate reads them as pandas' reader does."""
    header = ",".join(SUMMARY_HEADER).encode()
    nul = header + b"\n2026-10-15,1,1,1\x00\xff\n"
    long = header + b"\n" + b" " * 300_000 + b"2026-10-15,1,1,1\n"
    for content in (nul, long):
        assert _plain_rows(content, SUMMARY_HEADER) is None
        assert _same(_read_file(content, SUMMARY_HEADER), _read_by_pandas(content, SUMMARY_HEADER))
