"""The source reader (§2): five index-served queries per organization and range, contract
columns and used questions only, clear errors."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from counts_assets.core.source.reader import (
    RECOMMENDED_INDEXES,
    SourceMissingError,
    SourceSchemaError,
    read_source,
    source_engine,
)
from counts_assets.definitions import build_defs
from counts_assets.defs.exports.resources import SourceReader
from counts_tests.factories import make_org
from counts_tests.golden_store import build_golden_store
from counts_tests.platform import platform_on
from counts_tests.store import record, sqlite_url, write_store

ORG = make_org(
    interaction_filter={"any_of": [{"question": "Line Called", "answers": ["2-1-1"]}]},
    demographics={"gender": {"question": "Gender"}},
)
OCTOBER = (dt.date(2026, 10, 1), dt.date(2026, 10, 31))


@pytest.fixture
def engine(tmp_path):
    records = [
        record("in", "2026-10-15 12:00:00"),
        record("offset", " 2026-10-16T01:00:00+05:00 "),
        record("early", "2026-09-01 12:00:00"),
        record("late", "2026-12-01 12:00:00"),
        record("bad", "15/10/2026"),
        record("null", None),
        record("other", "2026-10-15 12:00:00", org="elsewhere"),
    ]
    answers = [
        ("testorg", "in", "Gender", "F"),
        ("testorg", "in", " line called ", "2-1-1"),
        ("testorg", "in", "Caller Notes", "CANARY-NOTE-lives-at-12-Elm"),
        ("testorg", "early", "Gender", "M"),
        ("elsewhere", "other", "Gender", "X"),
    ]
    needs = [("testorg", "in", "BD", None), ("testorg", "late", "BD", None)]
    referrals = [("testorg", "in", "R1"), ("testorg", "in", "R2"), ("testorg", "early", "R3")]
    return write_store(sqlite_url(tmp_path), records, answers, needs, referrals)


def _data_statements(engine: sa.Engine) -> list[tuple[str, tuple]]:
    statements: list[tuple[str, tuple]] = []
    sa.event.listen(
        engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, parameters, *a: statements.append((statement, parameters)),
    )
    return statements


def test_an_org_range_is_read_in_five_queries_of_contract_columns_and_used_questions(engine):
    statements = _data_statements(engine)
    tables = read_source(engine, [ORG], *OCTOBER)
    data_queries = [
        s
        for s, _ in statements
        if s.lstrip().upper().startswith("SELECT")
        and "sqlite_master" not in s
        and "PRAGMA" not in s.upper()
    ]
    # records, the questions asked, used answers, needs, referral counts
    assert len(data_queries) == 5
    assert not any(
        "caller_name" in s or "notes" in s or "resource_name" in s for s, _ in statements
    )
    assert sorted(tables.records["call_report_num"]) == ["bad", "in", "null", "offset"]
    assert sorted(tables.answers.values.tolist()) == [
        ["testorg", "in", " line called ", "2-1-1"],
        ["testorg", "in", "Gender", "F"],
    ]
    assert "CANARY" not in repr(tables)
    assert tables.needs["call_report_num"].tolist() == ["in"]
    assert tables.referrals.values.tolist() == [["testorg", "in", 2]]
    assert list(tables.records.columns) == [
        "org_id",
        "call_report_num",
        "contact_form",
        "report_version",
        "started_at",
        "status",
        "deleted",
        "postal_code",
    ]


def test_every_read_is_served_by_the_recommended_indexes(tmp_path):
    url = sqlite_url(tmp_path)
    engine = write_store(
        url, [record("in", "2026-10-15 12:00:00")], [("testorg", "in", "Gender", "F")]
    )
    with engine.connect() as connection:
        indexes = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index'"
        ).scalars()
        assert sorted(indexes) == sorted(RECOMMENDED_INDEXES)  # the README's list, no more
    statements = _data_statements(engine)
    read_source(engine, [ORG], *OCTOBER)
    reads = [
        (s, p)
        for s, p in statements
        if s.lstrip().upper().startswith("SELECT") and "FROM contact_" in s
    ]
    assert len(reads) == 5
    with engine.connect() as connection:
        for statement, parameters in reads:
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            steps = [row[-1] for row in plan]
            assert not [s for s in steps if s.startswith("SCAN")], (statement, steps)
            searched = [s for s in steps if s.startswith("SEARCH")]
            assert searched and all("USING" in s and "INDEX" in s for s in searched), steps
            # the records are searched by their time range, not by org alone
            ranged = [s for s in searched if "records_by_start" in s]
            assert any("started_at>" in s for s in ranged), steps


def test_missing_table_or_column_is_named(tmp_path):
    engine = sa.create_engine(sqlite_url(tmp_path))
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE contact_records (org_id TEXT, started_at TEXT)")
        connection.exec_driver_sql(
            "CREATE TABLE contact_answers (org_id TEXT, call_report_num TEXT, question TEXT, "
            "answer TEXT)"
        )
    with pytest.raises(SourceSchemaError) as error:
        read_source(engine, [ORG], dt.date(2026, 10, 1), dt.date(2026, 10, 1))
    message = str(error.value)
    assert "contact_records.call_report_num is missing" in message
    assert "contact_records.postal_code is missing" in message
    assert "table or view contact_needs is missing" in message
    assert "table or view contact_referrals is missing" in message


def test_views_are_accepted(engine):
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE contact_needs RENAME TO crm_needs")
        connection.exec_driver_sql(
            "CREATE VIEW contact_needs AS SELECT org_id, call_report_num, taxonomy_code, unmet "
            "FROM crm_needs"
        )
    tables = read_source(engine, [ORG], *OCTOBER)
    assert tables.needs["call_report_num"].tolist() == ["in"]


def test_a_missing_sqlite_store_is_an_error_naming_the_path_and_nothing_is_created(tmp_path):
    missing = tmp_path / "no" / "store.sqlite"
    with pytest.raises(SourceMissingError, match=str(missing)):
        source_engine(f"sqlite:///{missing}")
    assert not missing.exists() and not missing.parent.exists()


def test_the_store_is_opened_read_only(tmp_path):
    url = sqlite_url(tmp_path)
    build_golden_store(url)
    engine = source_engine(url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM contact_records")).scalar() > 0
        with pytest.raises(sa.exc.OperationalError, match="readonly"):
            connection.execute(sa.text("DELETE FROM contact_records"))


def test_an_export_run_on_a_missing_store_fails_once_naming_it(tmp_path):
    missing = tmp_path / "missing.sqlite"
    with platform_on(tmp_path) as platform:
        platform.resources["source"] = SourceReader(url=f"sqlite:///{missing}")
        job = build_defs(platform.resources).resolve_job_def("daily_export_job")
        result = job.execute_in_process(
            instance=platform.instance, partition_key="2026-03-08|testorg", raise_on_error=False
        )
    assert not result.success and not missing.exists()
    kinds = [e.event_type_value for e in result.all_events]
    assert "STEP_RESTARTED" not in kinds and "STEP_UP_FOR_RETRY" not in kinds  # not retried
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert str(missing) in failure.step_failure_data.user_failure_data.description


def test_an_export_run_on_a_file_that_is_not_a_database_fails_once_saying_so(tmp_path):
    """The store answers with an error that will not pass (SQLite: "file is not a database"):
    retrying it twice would only delay the failure by three minutes."""
    store = tmp_path / "not_a_store.sqlite"
    store.write_text("Call Date,Total Calls\n" * 200)
    with platform_on(tmp_path) as platform:
        platform.resources["source"] = SourceReader(url=f"sqlite:///{store}")
        platform.defs = build_defs(platform.resources)
        events = platform.first_attempt("daily_export_job", "2026-03-08|testorg")
    kinds = [e.event_type_value for e in events]
    assert "STEP_UP_FOR_RETRY" not in kinds and "STEP_FAILURE" in kinds  # not retried
    failure = next(e for e in events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_failure_data.user_failure_data.description == (
        "testorg: reading the contact-record store for Call Dates 2026-03-08..2026-03-08 failed, "
        "it answered with an error (DatabaseError); it would fail the same way: not retried"
    )
