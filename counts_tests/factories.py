"""Small builders for organizations and source frames in unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from counts_assets.core.exports.run import RunOutcome, build_run, publish_pairs
from counts_assets.core.files.periods import Target
from counts_assets.core.orgs.models import Organization
from counts_assets.core.pairs.store import PairStore
from counts_assets.core.source.tables import ANSWER_COLUMNS, RECORD_COLUMNS, SourceTables


def make_org(**overrides: Any) -> Organization:
    base: dict[str, Any] = {
        "id": "testorg",
        "name": "Test",
        "timezone": "America/Chicago",
        "share_from": "2026-01-01",
        "contact_forms": ["211 Contact"],
        "interaction_filter": {"all_211": True},
    }
    return Organization.model_validate(base | overrides)


def records_frame(rows: list[dict]) -> pd.DataFrame:
    defaults = {
        "org_id": "testorg",
        "contact_form": "211 Contact",
        "report_version": "v1",
        "status": "finalized",
        "deleted": None,
        "postal_code": None,
    }
    return pd.DataFrame([defaults | r for r in rows], columns=RECORD_COLUMNS, dtype=object)


def answers_frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        [("testorg", *r) if len(r) == 3 else r for r in rows], columns=ANSWER_COLUMNS, dtype=object
    )


def targets(periods: list[tuple[str, str, str]], org_id: str = "testorg") -> pd.DataFrame:
    return pd.DataFrame(
        [(org_id, p, first, last) for p, first, last in periods],
        columns=["org_id", "period", "first_day", "last_day"],
        dtype=object,
    )


def publish_run(
    source: SourceTables, orgs: dict[str, Organization], targets: list[Target], export_dir: Path
) -> RunOutcome:
    """Build, validate and publish a run's pairs as an export run does, with nothing recorded."""
    outcome = build_run(source, orgs, targets)
    for _ in publish_pairs(outcome, PairStore(export_dir)):
        pass
    return outcome
