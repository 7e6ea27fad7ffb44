"""Hostile and messy values in the store (§2): each bad value leaves its record out or is
cleaned, reported by org and record number without the value; the other records and orgs are
unaffected, byte for byte; and a canary planted in a bad value never reaches the files, the
outbox or the Dagster instance (beyond the 40 characters a report may show)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from counts_assets.defs.delivery.sensors import delivery_sensor
from counts_tests.golden_store import GOLDEN_DIR
from counts_tests.platform import platform_on

CANARY = "CANARY-VALUE-John-Doe-555-0142"
DAY = "2026-03-08"
RECORD = (
    "INSERT INTO contact_records (org_id, call_report_num, contact_form, report_version, "
    "started_at, status, postal_code) VALUES ('testorg', {num}, '211 Contact', 'v2', "
    "'2026-03-08 15:00:00', 'finalized', {postal})"
)
ANSWER = "INSERT INTO contact_answers VALUES ('testorg', {num}, {question}, {answer})"


def text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def raw(prefix: str, suffix: bytes) -> str:
    """A TEXT value whose bytes are not UTF-8."""
    return f"CAST(x'{(prefix.encode() + suffix).hex()}' AS TEXT)"


def included_record(num: str, *answers: tuple[str, str], postal: str = "NULL") -> list[str]:
    rows = [RECORD.format(num=num, postal=postal)]
    rows.append(ANSWER.format(num=num, question=text("Line Called"), answer=text("2-1-1")))
    rows += [ANSWER.format(num=num, question=q, answer=a) for q, a in answers]
    return rows


# Text that sorts after every YYYY-MM-DD bound of the day's read, or between them: such a
# record was once never read, so neither exported nor reported.
ODD_STARTED_AT = {
    "9101": "08/03/2026 15:00:00",
    "9102": "2026/03/08 15:00:00",
    "9103": "2026.03.08 15:00:00",
    "9104": "20260308T150000Z",
    "9105": "2026-3-8 15:00:00",
}

# case -> (statements, findings expected in the check metadata, testorg files as golden)
CASES = {
    "empty record numbers": (
        included_record("''") + included_record("'   '"),
        {"source_values_readable": ["(no usable number)", "call_report_num (empty)"]},
        True,
    ),
    "invalid UTF-8 in a used answer": (
        included_record("'9001'", (text("Gender"), raw(CANARY, b" \xff\xfe"))),
        {"source_values_readable": ["9001", "answer (not readable text)"]},
        True,
    ),
    "invalid UTF-8 in an unused question": (
        [ANSWER.format(num="'1002'", question=text("Caller Notes"), answer=raw(CANARY, b"\xff"))],
        {},
        True,
    ),
    "invalid UTF-8 in a record value": (
        included_record("'9003'", postal=raw(CANARY, b"\xc3")),
        {"source_values_readable": ["9003", "postal_code (not readable text)"]},
        True,
    ),
    "invalid UTF-8 in a record number": (
        included_record(raw("9004", b"\xff")),
        {"source_values_readable": ["(no usable number)", "call_report_num (not readable"]},
        True,
    ),
    "a 1 MB answer": (
        [
            ANSWER.format(
                num="'1002'",
                question=text("Caller Age"),
                answer=text("A" * 45 + CANARY + "x" * 1_000_000),
            )
        ],
        {"demographic_answers_mapped": ["A" * 40 + "…"]},
        True,
    ),
    "NUL and control characters": (
        [
            ANSWER.format(
                num="'1002'", question=text("How Reached"), answer="'Pho' || char(0) || 'ne'"
            ),
            ANSWER.format(num="'1002'", question="'Gen' || char(7) || 'der'", answer="'Female'"),
        ],
        {"source_values_clean": ["values with control characters (removed)", "| 2 |"]},
        True,
    ),
    "formula-like values": (
        included_record("'+9002'", (text("Gender"), text('=HYPERLINK("x")'))),
        {
            "source_values_clean": [
                "starting with = + - @ in Gender",
                "starting with = + - @ in Call",
            ]
        },
        False,
    ),
    "a repeated record number": (
        included_record("'9005'")
        + included_record("'9005'")
        + [RECORD.format(num="'1002'", postal="NULL").replace("2026-03-08 15", "2026-01-02 15")],
        {"source_values_readable": ["9005", "call_report_num on 2 records read for 2026-03-08"]},
        True,
    ),
    "a BLOB answer that is not UTF-8": (
        included_record("'9006'", (text("Gender"), "x'46ff656d616c65'")),
        {"source_values_readable": ["9006", "answer (not readable text)"]},
        True,
    ),
    "a BLOB report version that is not UTF-8": (
        included_record("'9007'")
        + ["UPDATE contact_records SET report_version = x'00ff76' WHERE call_report_num = '9007'"],
        {
            "source_values_readable": ["9007", "report_version (not readable text)"],
            "source_values_clean": ["values with control characters (removed)"],  # the NUL
        },
        True,
    ),
    "started_at written in other forms": (
        [
            statement
            for num, written in ODD_STARTED_AT.items()
            for statement in included_record(f"'{num}'")
            + [
                f"UPDATE contact_records SET started_at = '{written}' "
                f"WHERE call_report_num = '{num}'"
            ]
        ],
        {
            "source_values_readable": [
                f"| testorg | {num} | started_at (not a readable time; it names 2026-03-08) |"
                for num in ODD_STARTED_AT
            ]
        },
        True,
    ),
}


# What the untouched golden store reports for testorg (record 1008's started_at is garbage).
BASELINE_FINDINGS = {"source_values_readable": 1, "source_values_clean": 0}


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.glob("*.csv")}


@pytest.fixture(scope="module")
def clean_otherorg(tmp_path_factory) -> dict[str, bytes]:
    """otherorg's files from an untouched store."""
    with platform_on(tmp_path_factory.mktemp("clean")) as platform:
        assert platform.run("daily_export_job", f"{DAY}|otherorg").success
        return files_of(platform.export_dir / "otherorg" / "daily")


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_value_leaves_its_record_out_and_nothing_else(tmp_path, case, clean_otherorg):
    statements, expected, testorg_as_golden = CASES[case]
    with platform_on(tmp_path) as platform:
        database = platform.source_url.removeprefix("sqlite:///")
        with sqlite3.connect(database) as connection:
            for statement in statements:
                connection.execute(statement)

        results = [
            platform.run("daily_export_job", f"{DAY}|{org}") for org in ("testorg", "otherorg")
        ]
        assert all(r.success for r in results)
        made = files_of(platform.export_dir / "testorg" / "daily")
        if testorg_as_golden:
            golden = {p.name: p.read_bytes() for p in GOLDEN_DIR.glob(f"testorg_daily_{DAY}_*")}
            assert made == golden
        assert files_of(platform.export_dir / "otherorg" / "daily") == clean_otherorg

        checks = {e.check_name: e for e in results[0].get_asset_check_evaluations()}
        for name, fragments in expected.items():
            assert checks[name].passed is False
            shown = "\n".join(str(v.value) for v in checks[name].metadata.values())
            for fragment in fragments:
                assert fragment in shown, (name, shown)
        for name in set(BASELINE_FINDINGS) - set(expected):
            assert checks[name].metadata["findings"].value == BASELINE_FINDINGS[name], name

        context = dg.build_sensor_context(instance=platform.instance, resources=platform.resources)
        for request in delivery_sensor(context).run_requests:
            assert platform.execute(request).success
        outbox = platform.export_dir.parent / "outbox"
        assert list(outbox.rglob(f"testorg_daily_{DAY}_needs.csv"))

    leaked = [
        p
        for root in (platform.export_dir, outbox, platform.home)
        for p in root.rglob("*")
        if p.is_file() and CANARY.encode() in p.read_bytes()
    ]
    assert leaked == []


def test_a_formula_like_value_is_sent_as_data(tmp_path):
    statements, _, _ = CASES["formula-like values"]
    with platform_on(tmp_path) as platform:
        with sqlite3.connect(platform.source_url.removeprefix("sqlite:///")) as connection:
            for statement in statements:
                connection.execute(statement)
        assert platform.run("daily_export_job", f"{DAY}|testorg").success
        needs = platform.export_dir / "testorg" / "daily" / f"testorg_daily_{DAY}_needs.csv"
        assert '"=HYPERLINK(""x"")"' in needs.read_text()


def test_bytes_that_are_utf8_text_are_written_as_that_text(tmp_path):
    """A BLOB record number and answer holding UTF-8 are read as their text, never as a Python
    bytes literal (b'...')."""
    blob = "x'" + b"ODD-BLOB".hex() + "'"
    statements = included_record(blob, (text("Gender"), "x'" + b"Female".hex() + "'"))
    with platform_on(tmp_path) as platform:
        with sqlite3.connect(platform.source_url.removeprefix("sqlite:///")) as connection:
            for statement in statements:
                connection.execute(statement)
        assert platform.run("daily_export_job", f"{DAY}|testorg").success
        needs = platform.export_dir / "testorg" / "daily" / f"testorg_daily_{DAY}_needs.csv"
        rows = [line for line in needs.read_text().splitlines() if "ODD-BLOB" in line]
        assert rows and all(line.endswith(",ODD-BLOB") for line in rows)
        assert "b'" not in needs.read_text()
