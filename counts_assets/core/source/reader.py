"""Reads the contact-record store through SQLAlchemy, one organization at a time, for a whole
range of Call Dates.

Every query is served by the indexes listed in the README: records by (org_id, started_at),
the rows attached to them by (org_id, call_report_num). Only the contract's columns are read,
and only the answers to the questions the organization uses."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from counts_assets.core.orgs.models import Organization, normalize_text
from counts_assets.core.rules.window import DATE_SHAPED_GLOB, read_window
from counts_assets.core.source.tables import (
    ANSWER_COLUMNS,
    NEED_COLUMNS,
    RECORD_COLUMNS,
    REFERRAL_COLUMNS,
    SourceTables,
)
from counts_assets.core.source.values import (
    as_read_text,
    is_undecodable,
    without_control_characters,
)

# Bytes that are not UTF-8 come back as lone surrogates instead of failing the whole read, so
# the record holding them can be left out alone (see values.is_undecodable).
_LENIENT_TEXT = functools.partial(str, encoding="utf-8", errors="surrogateescape")


class SourceSchemaError(RuntimeError):
    """The store lacks a table or a contract column."""


class SourceMissingError(RuntimeError):
    """COUNTS_SOURCE_URL names a SQLite file that does not exist."""


def source_engine(url: str) -> sa.Engine:
    """An engine that only reads the store. A SQLite file is opened read-only and must exist:
    opening a missing path would otherwise create an empty store there."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url)
    database = parsed.database or ""
    path = Path(database.removeprefix("file:").split("?", 1)[0])
    if not database or database == ":memory:" or not path.is_file():
        raise SourceMissingError(
            f"the contact-record store {path.resolve() if database else url} does not exist: "
            "check COUNTS_SOURCE_URL (nothing was created)"
        )
    engine = sa.create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")
    lenient_text(engine)
    return engine


def lenient_text(engine: sa.Engine) -> None:
    """SQLite hands text back as stored: undecodable bytes become lone surrogates."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.text_factory = _LENIENT_TEXT


TABLE_COLUMNS = {
    "contact_records": RECORD_COLUMNS,
    "contact_answers": ANSWER_COLUMNS,
    "contact_needs": NEED_COLUMNS,
    "contact_referrals": ["org_id", "call_report_num", "resource_id"],
}

# What the README asks a deployer to create; the query-plan test creates exactly these.
RECOMMENDED_INDEXES = {
    "records_by_start": "contact_records (org_id, started_at)",
    "answers_by_record": "contact_answers (org_id, call_report_num, question)",
    "needs_by_record": "contact_needs (org_id, call_report_num)",
    "referrals_by_record": "contact_referrals (org_id, call_report_num)",
}


def _table(name: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in TABLE_COLUMNS[name]))


def check_source_schema(engine: sa.Engine) -> bool:
    """Fails with the table and column a deployer must create. Returns whether `started_at` is
    a native timestamp column (SQLite keeps any timestamp as text)."""
    inspector = sa.inspect(engine)
    present = set(inspector.get_table_names()) | set(inspector.get_view_names())
    problems = []
    native = False
    for table, columns in TABLE_COLUMNS.items():
        if table not in present:
            problems.append(f"table or view {table} is missing")
            continue
        have = {c["name"]: c["type"] for c in inspector.get_columns(table)}
        problems += [f"{table}.{c} is missing" for c in columns if c not in have]
        if table == "contact_records" and "started_at" in have:
            native = engine.dialect.name != "sqlite" and isinstance(have["started_at"], sa.DateTime)
    if problems:
        raise SourceSchemaError(
            "the contact-record store does not follow the source contract: " + "; ".join(problems)
        )
    return native


def _date_shaped(started: sa.ColumnElement, dialect: str) -> sa.ColumnElement[bool]:
    """Text that starts with a date written YYYY-MM-DD."""
    if dialect == "sqlite":
        return started.op("GLOB")(DATE_SHAPED_GLOB)
    digit = list("0123456789")
    return sa.and_(
        *(sa.func.substr(started, i, 1).in_(digit) for i in (1, 2, 3, 4, 6, 7, 9, 10)),
        *(sa.func.substr(started, i, 1) == "-" for i in (5, 8)),
    )


def _read_with_every_range(started: sa.ColumnElement, dialect: str) -> sa.ColumnElement[bool]:
    """NULL, and every value that is not text starting with YYYY-MM-DD (a SQLite cell may hold
    a number or bytes whatever the column's type)."""
    if dialect == "sqlite":
        return sa.or_(sa.func.typeof(started) != "text", sa.not_(_date_shaped(started, dialect)))
    return sa.or_(started.is_(None), sa.not_(_date_shaped(started, dialect)))


def _windows(
    records: sa.TableClause,
    org_id: str,
    first: dt.date,
    last: dt.date,
    native: bool,
    dialect: str,
) -> list[sa.ColumnElement[bool]]:
    """One condition per index range, queried on their own (UNION ALL: an OR of them would make
    SQLite read every record of the org), and disjoint, so no record is read twice. Text
    timestamps: the window's dates written YYYY-MM-DD, plus the org's values in any other form
    (read with every range so that none is silently gone: they are few, and the scan of the
    org's part of the index that finds them reads the index only)."""
    low, high = read_window(first, last)
    started = records.c.started_at
    if native:
        low_bound = dt.datetime.combine(dt.date.fromisoformat(low), dt.time(), dt.UTC)
        high_bound = dt.datetime.combine(dt.date.fromisoformat(high), dt.time(), dt.UTC)
        ranges = [sa.and_(started >= low_bound, started < high_bound), started.is_(None)]
    else:
        ranges = [
            sa.and_(started >= low, started < high, _date_shaped(started, dialect)),
            _read_with_every_range(started, dialect),
        ]
    return [sa.and_(records.c.org_id == org_id, condition) for condition in ranges]


@dataclass
class SourceStore:
    """The store behind one engine; the schema is checked once."""

    engine: sa.Engine
    _native: bool | None = None

    def native_timestamps(self) -> bool:
        if self._native is None:
            self._native = check_source_schema(self.engine)
        return self._native

    def read(self, org: Organization, first: dt.date, last: dt.date) -> SourceTables:
        """Everything one organization's files of Call Dates first..last need."""
        native = self.native_timestamps()
        records = _table("contact_records")
        windows = _windows(records, org.id, first, last, native, self.engine.dialect.name)
        record_rows = sa.union_all(*(sa.select(*records.c).where(w) for w in windows))
        numbers = sa.union_all(*(sa.select(records.c.call_report_num).where(w) for w in windows))

        def attached(table: sa.TableClause) -> sa.ColumnElement[bool]:
            # A semi-join: each attached row once, even when a number is on two records.
            return sa.and_(table.c.org_id == org.id, table.c.call_report_num.in_(numbers))

        answers, needs = _table("contact_answers"), _table("contact_needs")
        referrals = _table("contact_referrals")
        with self.engine.connect() as connection:
            frames = {"records": _frame(connection, record_rows, RECORD_COLUMNS)}
            asked = connection.execute(
                sa.select(answers.c.question).distinct().where(attached(answers))
            ).scalars()
            questions = used_questions(list(asked), org)
            frames["answers"] = _frame(
                connection,
                sa.select(*answers.c).where(attached(answers), answers.c.question.in_(questions)),
                ANSWER_COLUMNS,
            )
            frames["needs"] = _frame(
                connection, sa.select(*needs.c).where(attached(needs)), NEED_COLUMNS
            )
            frames["referrals"] = _frame(
                connection,
                sa.select(
                    referrals.c.org_id,
                    referrals.c.call_report_num,
                    sa.func.count().label("referrals"),
                )
                .where(attached(referrals))
                .group_by(referrals.c.org_id, referrals.c.call_report_num),
                REFERRAL_COLUMNS,
            )
        return SourceTables(**frames)


def used_questions(stored: Sequence[object], org: Organization) -> list[str]:
    """The stored question texts, exactly as stored (bytes too), that name a question the
    organization uses (its interaction filter and demographics), by the contract's matching rule."""
    keys = org.used_question_keys()
    values = pd.Series([q for q in stored if isinstance(q, str | bytes)], dtype=object)
    if values.empty:
        return []
    texts = as_read_text(values.to_frame())[0]
    readable = ~is_undecodable(texts)
    cleaned, _ = without_control_characters(texts[readable])
    return values[readable][cleaned.map(normalize_text).isin(keys)].tolist()


def _frame(connection: sa.Connection, query: sa.Executable, columns: list[str]) -> pd.DataFrame:
    # The driver's plain tuples: building a Row object per row costs as much as the read.
    rows = connection.execute(query).cursor.fetchall()
    return as_read_text(pd.DataFrame(rows, columns=columns, dtype=object))


def read_source(
    engine: sa.Engine, orgs: Collection[Organization], first: dt.date, last: dt.date
) -> SourceTables:
    """The rows of several organizations, read one organization at a time."""
    store = SourceStore(engine)
    return SourceTables.concat([store.read(org, first, last) for org in orgs])
