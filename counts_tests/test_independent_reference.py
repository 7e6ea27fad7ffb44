"""The independent reference (benchmarks/independent_reference.py, pandas + DuckDB, written from
the file rules alone) and the platform's own Dagster-free build (benchmarks/exports.py's
`reference`) make the same daily files, byte for byte, from one store: the demo generator's
orgs and days plus hand-made rows for the rules the generator does not reach."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from benchmarks.exports import FIRST, org_files, reference
from benchmarks.independent_reference import make_daily_files
from counts_assets.demo.store import generate_store

DAYS = 20
LAST = FIRST + dt.timedelta(days=DAYS - 1)
GATEWAY, EMPIRE, ALOHA = "org000", "org001", "org002"  # the demo shapes, cycled by org_files
NOON = "2025-01-10T18:00:00Z"  # noon in Chicago on 2025-01-10
BAD = b"\xff\xfe"  # not UTF-8: stored as TEXT, it cannot be decoded


class EdgeRows:
    """Rows for the four tables. A value may be bytes (stored as TEXT that is not UTF-8) or a
    number, as a CRM's loosely typed columns may hold."""

    def __init__(self) -> None:
        self.records: list[tuple] = []
        self.answers: list[tuple] = []
        self.needs: list[tuple] = []
        self.referrals: list[tuple] = []

    def record(
        self,
        crn: object,
        started: object = NOON,
        *,
        org: str = GATEWAY,
        form: object = "211 Contact",
        version: object = "v3",
        status: object = "finalized",
        deleted: object = None,
        postal: object = "63101",
        answers: tuple = (),
        needs: tuple = (),
        referrals: int = 0,
    ) -> None:
        self.records.append((org, crn, form, version, started, status, deleted, postal))
        self.answers += [(org, crn, q, a) for q, a in answers]
        self.needs += [(org, crn, code, unmet) for code, unmet in needs]
        self.referrals += [(org, crn, f"R{n}") for n in range(referrals)]

    def insert(self, store: Path) -> None:
        with sqlite3.connect(store) as db:
            # Bytes become TEXT holding invalid UTF-8, not a BLOB.
            cast = "CASE WHEN typeof(?1) = 'blob' THEN CAST(?1 AS TEXT) ELSE ?1 END"
            db.executemany(
                "INSERT INTO contact_records (org_id, call_report_num, contact_form,"
                " report_version, started_at, status, deleted, postal_code) VALUES "
                f"(?, ?, ?, ?, ?, ?, ?, {cast.replace('?1', '?8')})",
                self.records,
            )
            db.executemany(
                "INSERT INTO contact_answers (org_id, call_report_num, question, answer)"
                f" VALUES (?, ?, ?, {cast.replace('?1', '?4')})",
                self.answers,
            )
            db.executemany(
                "INSERT INTO contact_needs (org_id, call_report_num, taxonomy_code, unmet)"
                f" VALUES (?, ?, {cast.replace('?1', '?3')}, ?)",
                self.needs,
            )
            db.executemany(
                "INSERT INTO contact_referrals (org_id, call_report_num, resource_id)"
                " VALUES (?, ?, ?)",
                self.referrals,
            )


def edge_rows() -> EdgeRows:
    rows = EdgeRows()
    record = rows.record
    # started_at forms: offsets, fractions, white space, a leap second, unreadable values.
    record("E-OFFSET", "2025-01-10T23:30:00+05:30", needs=[("BD-1800", None)], referrals=2)
    record("E-OFFSET-LATE", "2025-01-11T01:30:00-04:00")  # 23:30 in Chicago on the 10th
    record("E-LOCAL-MIDNIGHT", "2025-01-11T06:00:00Z")  # 00:00 in Chicago on the 11th
    record("E-BEFORE-MIDNIGHT", "2025-01-11 05:59:59")
    record("E-SPACES", "\t2025-01-10 18:00:00.123456\u00a0")
    record("E-LEAP-SECOND", "2025-01-11T05:59:60Z")  # 23:59:60 is the next minute's start
    record("E-FRACTION-7", "2025-01-10T18:00:00.1234567")
    record("E-OFFSET-NO-COLON", "2025-01-10T18:00:00+0530")
    record("E-NO-SECONDS", "2025-01-10T18:00")
    record("E-FEB-30", "2025-02-30T18:00:00")
    record("E-GARBAGE", "garbage")
    record("E-NULL-TIME", None)
    # Which records: forms, status, deleted, control characters, empty numbers.
    record("E-OTHER-FORM", form="Crisis Contact")
    record("E-FORM-CASE", form="211 contact")
    record("E-DRAFT", status="draft")
    record("E-STATUS-CASE", status="Finalized")
    record("E-DELETED", deleted="T")
    record("E-DELETED-INT", deleted=1)
    record("E-NOT-DELETED", deleted=" false ")
    record("E-NOT-DELETED-INT", deleted=0)
    record("E-DELETED-ODD", deleted="yes")
    record("E-CON\x01TROL", status="final\x07ized", version="v\x003", form="211\x00 Contact")
    record("")
    record("   ")
    # Report versions: NULL and empty are one row; quoting; stored as an integer.
    record("E-VERSION-NULL", version=None)
    record("E-VERSION-EMPTY", version="")
    record("E-VERSION-COMMA", version="a,b")
    record("E-VERSION-QUOTE", version='say "hi"')
    record("E-VERSION-CR", version="x\ry")
    record("E-VERSION-ACCENT", version="é")
    record("E-VERSION-INT", version=3)
    # Needs: normalisation, validity, grouping by (code, unmet), unmet spellings.
    codes = [" bd-1800.2000 ", "BD1800", "BH-1800.8500 * YB-8000", "BH-1800.8500*YB-8000", "B"]
    codes += ["RP-1400.8000-020.15", "BD-1800.2000-620.15.1", "B * D * E", "", None, "LN-5000"]
    unmets = ["1", None, "true", "F", " 0 ", "t", "TRUE", "False", "f", "0", "maybe"]
    record("E-CODES", needs=list(zip(codes, unmets, strict=True)))
    record("E-CODES-INVALID-ONLY", needs=[("BD1800", "1"), (None, None)])
    # Zip codes.
    for n, postal in enumerate(["12345-6789", "123456789", " 01234 ", "１２３４５", "1234", "N/A"]):
        record(f"E-ZIP-{n}", postal=postal)
    record("E-ZIP-NULL", postal=None)
    # Demographics: mapped and passed through, several answers, case and white space.
    record(
        "E-MULTI",
        answers=[
            ("Caller Age", "Under 18"),
            ("Caller Age", "60 and over"),
            ("caller age ", "under 18 "),
            ("Caller Age", "Refused"),
            ("Caller Age", "not in the map"),
            ("Gender", " Female"),
            ("GENDER", "female"),
            ("Gender", "Male"),
            ("Gender", "   "),
            ("Gender", None),
            ("Gender", 'a,b "q"'),
            ("Gen\x00der", "x\x00y"),
            ("Children in Household", "yes"),
            ("Children in Household", "YES"),
            ("How did you reach us", "Web search"),
            ("How did you reach us", "Chat"),
            ("Caller Notes", "private"),
        ],
    )
    record("E-ANSWER-INT", answers=[("Gender", 5)])
    # Undecodable values: in the record row, a used answer or a need's code leave the record
    # out; in an answer the org does not use, nothing.
    record("E-UTF8-POSTAL", postal=BAD)
    record("E-UTF8-ANSWER", answers=[("Gender", BAD)])
    record("E-UTF8-UNUSED", answers=[("Caller Notes", BAD)])
    record("E-UTF8-CODE", needs=[(BAD, "1")])
    # Repeated numbers: all copies read for a Call Date (written date within two days of it)
    # are left out; a copy far enough away leaves the other alone.
    record("E-DUP-SAME-DAY")
    record("E-DUP-SAME-DAY", "2025-01-10T20:00:00Z")
    record("E-DUP-NEAR")
    record("E-DUP-NEAR", "2025-01-12T18:00:00Z")
    record("E-DUP-EDGE")
    record("E-DUP-EDGE", "2025-01-13T00:00:00Z")  # kept on the 10th, not on the 12th
    record("E-DUP-FAR")
    record("E-DUP-FAR", "2025-01-15T18:00:00Z")
    record("E-DUP-BEFORE-RANGE", "2025-01-01T18:00:00Z")
    record("E-DUP-BEFORE-RANGE", "2024-12-31T20:00:00Z")
    record("E-DUP-DRAFT")
    record("E-DUP-DRAFT", status="draft")
    record("E-DUP-OTHER-FORM")
    record("E-DUP-OTHER-FORM", form="Crisis Contact")
    record("E-DUP-UNREADABLE")
    record("E-DUP-UNREADABLE", "garbage")
    record("E-DUP-OTHER-ORG")
    record("E-DUP-OTHER-ORG", org=ALOHA, form="AUW 211 Call Form")
    record("E-DUP-CONTROL")
    record("E-DUP-\x00CONTROL")
    record("E-DUP-TRAILING")
    record("E-DUP-TRAILING ")  # a different number
    # The interaction filter (Line Called: 2-1-1 or 211 Text), with a mapped demographic.
    line = "Line Called"
    record("E-LINE-SPACES", org=EMPIRE, answers=[(line, " 2-1-1 ")], needs=[("BD-1800", "1")])
    record("E-LINE-CASE", org=EMPIRE, answers=[("line called", "211 TEXT")])
    record("E-LINE-OTHER", org=EMPIRE, answers=[(line, "Mental Health Line")])
    record("E-LINE-ANY", org=EMPIRE, answers=[(line, "Mental Health Line"), (line, "2-1-1")])
    record("E-LINE-NULL", org=EMPIRE, answers=[(line, None)])
    record("E-LINE-NONE", org=EMPIRE)
    record(
        "E-LINE-INCOME",
        org=EMPIRE,
        form="211 Text Contact",
        version=None,
        answers=[
            (line, "2-1-1"),
            ("Household Income", "under $25,000"),
            ("Household Income", "Don't know"),
            ("Age Range", "55+"),
            ("Age Range", "18-24"),
        ],
    )
    # Honolulu: 05:00 UTC on the 11th is the 10th there.
    aloha = {"org": ALOHA, "form": "AUW 211 Call Form", "version": "3", "postal": "96813"}
    record("E-HNL", "2025-01-11T05:00:00Z", referrals=2, **aloha)
    methods = [("Contact Method", "Chat, web"), ("Contact Method", "Phone"), ("gender", "Kāne")]
    record("E-HNL-MULTI", "2025-01-11T05:00:00Z", answers=methods, **aloha)
    record("E-HNL-LAST", "2025-01-21T09:59:59Z", **aloha)  # 23:59:59 on the last day
    record("E-HNL-AFTER", "2025-01-21T10:00:00Z", **aloha)
    # Around share_from of the org that starts later (org005, on the 5th).
    for day in range(2, 8):
        record(f"E-SHARE-{day}", f"2025-01-0{day}T22:00:00Z", **(aloha | {"org": "org005"}))
    return rows


def make_store(work: Path, days: int, per_day: int, rows: EdgeRows) -> None:
    profiles = org_files(work / "orgs", 6, FIRST)
    org005 = work / "orgs" / "org005.yaml"
    org005.write_text(org005.read_text().replace(f"share_from: {FIRST}", "share_from: 2025-01-05"))
    last = FIRST + dt.timedelta(days=days - 1)
    store = work / "store.sqlite"
    generate_store(sa.create_engine(f"sqlite:///{store}"), FIRST, last, per_day, profiles=profiles)
    rows.insert(store)


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*.csv")}


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The platform's files and the independent reference's, from one store."""
    work = tmp_path_factory.mktemp("independent")
    make_store(work, DAYS, 8, edge_rows())
    reference(work, DAYS)  # the platform's build: <work>/reference/<org>/daily/*.csv
    figures = make_daily_files(work / "store.sqlite", work / "orgs", FIRST, LAST, work / "ours")
    platform, ours = files_of(work / "reference"), files_of(work / "ours")
    assert figures["files"] == len(ours)
    return platform, ours


def test_the_same_files_are_made(both):
    platform, ours = both
    # Six orgs, every day from share_from (org005 starts on the 5th).
    assert len(ours) == 2 * (5 * DAYS + (DAYS - 4))
    assert sorted(ours) == sorted(platform)


def test_every_file_is_byte_identical(both):
    platform, ours = both
    different = sorted(name for name in platform if ours.get(name) != platform[name])
    assert not different, (different[:5], platform[different[0]], ours.get(different[0]))


def test_the_edge_rows_reach_the_files(both):
    """The comparison covers the hand-made rows: some are in, some are out."""
    _, ours = both
    needs = {name: data.decode() for name, data in ours.items() if name.endswith("_needs.csv")}
    day = {n: text for n, text in needs.items() if "org000_daily_2025-01-10" in n}
    text = "".join(day.values())
    for crn in ["E-OFFSET", "E-OFFSET-LATE", "E-SPACES", "E-CONTROL", "E-MULTI", "E-DUP-EDGE"]:
        assert f",{crn}\n" in text, crn
    for crn in ["E-DRAFT", "E-GARBAGE", "E-UTF8-POSTAL", "E-DUP-NEAR", "E-DUP-UNREADABLE"]:
        assert f",{crn}\n" not in text, crn
    assert ',"Female;Male;a,b ""q"";female;xy",' in text
    everything = "".join(needs.values())
    assert "2025-01-11,63101,,0,,,,,,,,E-LEAP-SECOND\n" in everything
    assert [d for d in range(2, 8) if f",E-SHARE-{d}\n" in everything] == [5, 6, 7]


def test_second_61_is_unreadable(tmp_path):
    """ISO 8601 has no second 61 (strptime's %S takes it): both leave the record out."""
    rows = EdgeRows()
    rows.record("E-SECOND-61", "2025-01-10T12:00:61")
    make_store(tmp_path, 11, 1, rows)
    reference(tmp_path, 11)
    last = FIRST + dt.timedelta(days=10)
    make_daily_files(tmp_path / "store.sqlite", tmp_path / "orgs", FIRST, last, tmp_path / "ours")
    assert files_of(tmp_path / "ours") == files_of(tmp_path / "reference")
