"""started_at as CRMs really write it (§2): whatever the text, a record is included on its Call
Date or reported by the run of the date it names (every run, when it names none); never
silently gone. Read through the real reader, so the index-served reads are part of the test:
text that sorts outside the day's YYYY-MM-DD bounds must still be read."""

from __future__ import annotations

import datetime as dt
import tempfile
import uuid
import zoneinfo
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from counts_assets.core.exports.build import build_export_frames
from counts_assets.core.files.periods import Target, targets_frame
from counts_assets.core.source.reader import SourceStore, source_engine
from counts_tests.factories import make_org
from counts_tests.store import record, sqlite_url, write_store

ZONES = ["America/Chicago", "Pacific/Honolulu", "Pacific/Kiritimati", "Asia/Kolkata", "UTC"]


@st.composite
def written_started_at(draw) -> tuple[str, dt.date, bool]:
    """(text, date to look in, whether the contract reads it): an instant written in one of the
    forms CRM exports produce: separators, orders, widths, time forms, fractions, offsets."""
    instant = draw(
        st.datetimes(min_value=dt.datetime(2025, 3, 1), max_value=dt.datetime(2026, 11, 1))
    ).replace(microsecond=draw(st.sampled_from([0, 500000, 123456])), tzinfo=dt.UTC)
    offset_minutes = draw(st.sampled_from([None, 0, 330, -300, -600, 840, 59]))
    offset_form = draw(st.sampled_from(["Z", "+HH:MM", "+HHMM", "+HH"]))
    wall = instant.astimezone(dt.timezone(dt.timedelta(minutes=offset_minutes or 0)))
    order = draw(st.sampled_from(["ymd", "dmy", "mdy"]))
    separator = draw(st.sampled_from(["-", "/", ".", " ", ""]))
    padded = draw(st.booleans()) or separator == ""
    long_year = draw(st.booleans()) or order == "ymd"
    year = f"{wall.year:04d}" if long_year else f"{wall.year % 100:02d}"
    month, day = (f"{v:02d}" if padded else str(v) for v in (wall.month, wall.day))
    parts = {"ymd": (year, month, day), "dmy": (day, month, year), "mdy": (month, day, year)}
    date_text = separator.join(parts[order])
    time_form = draw(st.sampled_from(["%H:%M:%S", "%H:%M", "%H%M%S"]))
    fraction = draw(st.sampled_from(["", ".5", ".123456", ".1234567"]))
    time_text = wall.strftime(time_form) + (fraction if time_form == "%H:%M:%S" else "")
    between = draw(st.sampled_from([" ", "T", "t", ""]))
    if offset_minutes is None:
        offset_text = ""
    elif offset_minutes == 0 and offset_form == "Z":
        offset_text = "Z"
    else:
        sign = "-" if offset_minutes < 0 else "+"
        hours, minutes = divmod(abs(offset_minutes), 60)
        offset_text = {
            "Z": f"{sign}{hours:02d}:{minutes:02d}",
            "+HH:MM": f"{sign}{hours:02d}:{minutes:02d}",
            "+HHMM": f"{sign}{hours:02d}{minutes:02d}",
            "+HH": f"{sign}{hours:02d}",
        }[offset_form]
    blanks = draw(st.sampled_from(["", " ", "\t"]))
    text = f"{blanks}{date_text}{between}{time_text}{offset_text}{blanks}"
    readable = (
        order == "ymd"
        and separator == "-"
        and padded
        and between in (" ", "T")
        and time_form == "%H:%M:%S"
        and fraction != ".1234567"
        and offset_form not in ("+HHMM", "+HH")
    )
    # Readable: the Call Date is decided in the org's zone, later. Unreadable: the date written.
    return text, wall.date(), readable


def _store_with(values: list[str], url: str) -> SourceStore:
    write_store(url, [record(f"r{n}", text) for n, text in enumerate(values)])
    return SourceStore(source_engine(url))


def _read_and_built(store: SourceStore, org, day: dt.date):
    """The day's frames and findings, as a daily run for that day makes them."""
    target = Target(org.id, day.isoformat(), day, day)
    return build_export_frames(
        store.read(org, day, day), {org.id: org}, targets_frame([target]), monthly=False
    )


def _instant(text: str) -> dt.datetime:
    """The instant a contract-readable text names (Python's own reader, not the project's)."""
    value = text.strip()
    value = value[:-1] + "+00:00" if value.endswith("Z") else value
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    forms=st.lists(written_started_at(), min_size=1, max_size=8),
    zone=st.sampled_from(ZONES),
)
def test_every_started_at_is_included_on_its_call_date_or_reported(forms, zone):
    org = make_org(timezone=zone, share_from="2025-01-01")
    with tempfile.TemporaryDirectory() as folder:
        store = _store_with([text for text, _, _ in forms], sqlite_url(Path(folder)))
        for n, (text, written_date, readable) in enumerate(forms):
            if readable:
                call_date = _instant(text).astimezone(zoneinfo.ZoneInfo(zone)).date()
                frames = _read_and_built(store, org, call_date)
                assert f"r{n}" in set(frames.included["call_report_num"]), (text, call_date)
            else:
                frames = _read_and_built(store, org, written_date)
                reported = set(frames.findings.unreadable["call_report_num"])
                assert f"r{n}" in reported, (text, written_date)


def test_numbers_and_bytes_in_started_at_are_read_as_text_or_reported(tmp_path):
    """A SQLite cell holds whatever was put in it: a number (a column or view with numeric
    affinity), bytes (a BLOB). Bytes that are UTF-8 are read as text; the rest is reported."""
    url = sqlite_url(tmp_path)
    write_store(
        url,
        [
            record("blob-iso", None),
            record("blob-bad", None),
            record("number", None),
            record("number-far", None),
        ],
    )
    with sa.create_engine(url).begin() as connection:
        cells = {
            "blob-iso": "x'323032362d30332d30382031353a30303a3030'",  # 2026-03-08 15:00:00
            "blob-bad": "x'323032362d30332d3038ff'",
            "number": "20260308",
            "number-far": "1772982000.5",
        }
        connection.exec_driver_sql("ALTER TABLE contact_records RENAME TO crm_records")
        connection.exec_driver_sql(
            "CREATE VIEW contact_records AS SELECT org_id, call_report_num, contact_form, "
            "report_version, CASE call_report_num "
            + " ".join(f"WHEN '{n}' THEN {cell}" for n, cell in cells.items())
            + " END AS started_at, status, deleted, postal_code FROM crm_records"
        )
    store = SourceStore(source_engine(url))
    org = make_org(share_from="2025-01-01")
    frames = _read_and_built(store, org, dt.date(2026, 3, 8))
    assert frames.included["call_report_num"].tolist() == ["blob-iso"]
    reported = dict(frames.findings.unreadable[["call_report_num", "column"]].values.tolist())
    assert reported == {
        "blob-bad": "started_at (not readable text)",
        "number": "started_at (not a readable time; it names no date)",
        "number-far": "started_at (not a readable time; it names no date)",
    }


def test_a_text_started_at_on_postgresql_is_read_in_every_form(postgres_server):
    """A view or column of text on PostgreSQL: the same reads, in PostgreSQL's SQL."""
    url = postgres_server.create_database(f"forms_{uuid.uuid4().hex[:12]}")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE contact_records (org_id TEXT, call_report_num TEXT, contact_form "
            "TEXT, report_version TEXT, started_at TEXT, status TEXT, deleted TEXT, "
            "postal_code TEXT)"
        )
        for table, columns in [
            ("contact_answers", "question TEXT, answer TEXT"),
            ("contact_needs", "taxonomy_code TEXT, unmet TEXT"),
            ("contact_referrals", "resource_id TEXT"),
        ]:
            connection.exec_driver_sql(
                f"CREATE TABLE {table} (org_id TEXT, call_report_num TEXT, {columns})"
            )
        values = {
            "iso": "2026-03-08 15:00:00",
            "blank-led": " 2026-03-08T15:00:00Z",
            "slashes": "2026/03/08 15:00:00",
            "day-first": "08.03.2026 15:00",
            "words": "yesterday",
            "null": None,
            "next-day": "2026-03-09 15:00:00",
        }
        connection.execute(
            sa.text(
                "INSERT INTO contact_records VALUES ('testorg', :n, '211 Contact', 'v1', :s, "
                "'finalized', NULL, NULL)"
            ),
            [{"n": n, "s": s} for n, s in values.items()],
        )
    org = make_org(share_from="2025-01-01", timezone="UTC")
    frames = _read_and_built(SourceStore(engine), org, dt.date(2026, 3, 8))
    assert sorted(frames.included["call_report_num"]) == ["blank-led", "iso"]
    assert sorted(frames.findings.unreadable["call_report_num"]) == [
        "day-first",
        "null",
        "slashes",
        "words",
    ]
