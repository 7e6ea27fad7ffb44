"""Builds small hand-made contact-record stores for tests, with personal-data columns beside
the contract's."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa

from counts_assets.core.source.tables import RECORD_COLUMNS
from counts_assets.demo.store import SCHEMA

RECORD_FIELDS = [*RECORD_COLUMNS, "caller_name", "caller_phone", "specialist_notes"]


def record(
    crn: str,
    started_at: str | None,
    *,
    org: str = "testorg",
    form: str = "211 Contact",
    version: str | None = "v2",
    status: str = "finalized",
    deleted: object = None,
    postal: str | None = None,
    name: str = "CANARY-NAME-7731",
) -> dict:
    return {
        "org_id": org,
        "call_report_num": crn,
        "contact_form": form,
        "report_version": version,
        "started_at": started_at,
        "status": status,
        "deleted": deleted,
        "postal_code": postal,
        "caller_name": name,
        "caller_phone": "CANARY-PHONE-555-0199",
        "specialist_notes": "CANARY-NOTE-lives-at-12-Elm",
    }


# On PostgreSQL the store has the native types a CRM there would use.
NATIVE_TYPES = {
    "started_at TEXT": "started_at TIMESTAMPTZ",
    "deleted TEXT": "deleted BOOLEAN",
    "unmet TEXT": "unmet BOOLEAN",
}


def schema_for(engine: sa.Engine) -> str:
    if engine.dialect.name != "postgresql":
        return SCHEMA
    schema = SCHEMA
    for text, native in NATIVE_TYPES.items():
        schema = schema.replace(text, native)
    return schema


def write_store(
    url: str,
    records: Iterable[dict],
    answers: Iterable[tuple] = (),
    needs: Iterable[tuple] = (),
    referrals: Iterable[tuple] = (),
) -> sa.Engine:
    """answers: (org, crn, question, answer); needs: (org, crn, code, unmet);
    referrals: (org, crn, resource_id)."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET TIME ZONE 'UTC'")  # a value without offset is UTC
        for statement in schema_for(engine).split(";"):
            if statement.strip():
                connection.exec_driver_sql(statement)
        rows = list(records)
        if rows:
            connection.execute(
                sa.text(
                    f"INSERT INTO contact_records ({', '.join(RECORD_FIELDS)}) VALUES "
                    f"({', '.join(':' + f for f in RECORD_FIELDS)})"
                ),
                rows,
            )
        for table, columns, values in (
            ("contact_answers", ["org_id", "call_report_num", "question", "answer"], answers),
            (
                "contact_needs",
                ["org_id", "call_report_num", "taxonomy_code", "unmet", "need_notes"],
                [(*n, "CANARY-NEED-NOTE") for n in needs],
            ),
            (
                "contact_referrals",
                ["org_id", "call_report_num", "resource_id", "resource_name"],
                [(*r, "CANARY-RESOURCE") for r in referrals],
            ),
        ):
            values = list(values)
            if values:
                connection.execute(
                    sa.text(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                        f"({', '.join(':' + c for c in columns)})"
                    ),
                    [dict(zip(columns, v, strict=True)) for v in values],
                )
    return engine


def sqlite_url(directory: Path, name: str = "store.sqlite") -> str:
    return f"sqlite:///{directory / name}"
