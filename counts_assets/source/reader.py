"""Reads the contact-record store through SQLAlchemy: one query per table per run, for all the
run's orgs and dates, and only the contract's columns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import PrivateAttr

from counts_assets.source.tables import (
    ANSWER_COLUMNS,
    NEED_COLUMNS,
    RECORD_COLUMNS,
    REFERRAL_COLUMNS,
    SourceTables,
)

# started_at may be text with an offset, so the SQL filter is a generous bound on the date
# prefix; the exact Call Date is decided in pandas in the org's time zone.
MARGIN = dt.timedelta(days=2)


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
    return sa.create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")


def _record_window(
    records: sa.TableClause, org_ids: Sequence[str], first: dt.date, last: dt.date
) -> sa.ColumnElement[bool]:
    """Records of the orgs whose started_at may fall in [first, last] anywhere on Earth, plus
    those whose started_at is unreadable, so that they are reported."""
    prefix = sa.func.substr(sa.func.trim(sa.cast(records.c.started_at, sa.String)), 1, 10)
    return sa.and_(
        records.c.org_id.in_(list(org_ids)),
        sa.or_(
            records.c.started_at.is_(None),
            prefix.between((first - MARGIN).isoformat(), (last + MARGIN).isoformat()),
            sa.not_(prefix.like("____-__-__")),
        ),
    )


def _table(name: str, columns: Sequence[str]) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in columns))


def check_source_schema(engine: sa.Engine) -> None:
    """Fails with the table and column a deployer must create."""
    inspector = sa.inspect(engine)
    tables = {
        "contact_records": RECORD_COLUMNS,
        "contact_answers": ANSWER_COLUMNS,
        "contact_needs": NEED_COLUMNS,
        "contact_referrals": ["org_id", "call_report_num", "resource_id"],
    }
    present = set(inspector.get_table_names()) | set(inspector.get_view_names())
    problems = []
    for table, columns in tables.items():
        if table not in present:
            problems.append(f"table or view {table} is missing")
            continue
        have = {c["name"] for c in inspector.get_columns(table)}
        problems += [f"{table}.{c} is missing" for c in columns if c not in have]
    if problems:
        raise SourceSchemaError(
            "the contact-record store does not follow the source contract: " + "; ".join(problems)
        )


def read_source(
    engine: sa.Engine, org_ids: Sequence[str], first: dt.date, last: dt.date
) -> SourceTables:
    """All rows a run needs for Call Dates first..last of the given orgs, in four queries."""
    if not org_ids:
        return SourceTables.empty()
    check_source_schema(engine)
    records = _table("contact_records", RECORD_COLUMNS)
    owner = records.alias("owner")

    def attached(table: sa.TableClause) -> sa.ColumnElement[bool]:
        """Rows of records that the records query returns (a semi-join: no duplicates)."""
        return sa.exists().where(
            owner.c.org_id == table.c.org_id,
            owner.c.call_report_num == table.c.call_report_num,
            _record_window(owner, org_ids, first, last),
        )

    answers = _table("contact_answers", ANSWER_COLUMNS)
    needs = _table("contact_needs", NEED_COLUMNS)
    referrals = _table("contact_referrals", ["org_id", "call_report_num", "resource_id"])
    queries = {
        "records": (
            sa.select(*records.c).where(_record_window(records, org_ids, first, last)),
            RECORD_COLUMNS,
        ),
        "answers": (sa.select(*answers.c).where(attached(answers)), ANSWER_COLUMNS),
        "needs": (sa.select(*needs.c).where(attached(needs)), NEED_COLUMNS),
        "referrals": (
            sa.select(
                referrals.c.org_id,
                referrals.c.call_report_num,
                sa.func.count().label("referrals"),
            )
            .where(attached(referrals))
            .group_by(referrals.c.org_id, referrals.c.call_report_num),
            REFERRAL_COLUMNS,
        ),
    }
    frames = {}
    with engine.connect() as connection:
        for name, (query, columns) in queries.items():
            rows = connection.execute(query).all()
            frames[name] = pd.DataFrame([tuple(row) for row in rows], columns=columns, dtype=object)
    return SourceTables(**frames)


class SourceReader(dg.ConfigurableResource):
    """The contact-record store (`COUNTS_SOURCE_URL`)."""

    url: str
    _engine: sa.Engine | None = PrivateAttr(default=None)

    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = source_engine(self.url)
        return self._engine

    def read(self, org_ids: Sequence[str], first: dt.date, last: dt.date) -> SourceTables:
        return read_source(self.engine(), org_ids, first, last)
