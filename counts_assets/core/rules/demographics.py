"""Demographic slots: value maps, pass-through, multi-answers."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from counts_assets.core.orgs.models import SLOTS, Organization, normalize_text
from counts_assets.core.rules.inclusion import RECORD_KEY
from counts_assets.core.text import as_text, matching_form

UNMAPPED_COLUMNS = ["org_id", "period", "slot", "answer", "count"]


def _slot_questions(orgs: Mapping[str, Organization]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            (org.id, slot, normalize_text(spec.question), spec.values is not None)
            for org in orgs.values()
            for slot, spec in org.demographics.items()
        ],
        columns=["org_id", "slot", "question_key", "has_map"],
    )


def _value_maps(orgs: Mapping[str, Organization]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            (org.id, slot, answer_key, sent)
            for org in orgs.values()
            for slot, spec in org.demographics.items()
            for answer_key, sent in (spec.normalized_values() or {}).items()
        ],
        columns=["org_id", "slot", "answer_key", "sent"],
    )


def map_demographics(
    included: pd.DataFrame, answers: pd.DataFrame, orgs: Mapping[str, Organization]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(demographics, unmapped).

    demographics: one row per included record (org_id, call_report_num) with a column per slot;
    a slot is the sent values, empty ones dropped, de-duplicated, sorted in plain string order
    and joined with ';' ("" when none or when the org does not share the slot).
    unmapped: answers with a value map but no entry in it, counted per distinct answer.
    """
    demographics = included[RECORD_KEY].drop_duplicates().reset_index(drop=True)
    for slot in SLOTS:
        demographics[slot] = ""
    questions = _slot_questions(orgs)
    if questions.empty or answers.empty or included.empty:
        return demographics, pd.DataFrame(columns=UNMAPPED_COLUMNS)

    owned = answers.merge(included[[*RECORD_KEY, "period"]], on=RECORD_KEY)
    owned = owned.assign(
        question_key=matching_form(owned["question"]),
        answer=as_text(owned["answer"]).fillna("").map(str.strip),
    )
    owned = owned[owned["answer"] != ""]
    slotted = owned.merge(questions, on=["org_id", "question_key"])
    slotted = slotted.assign(answer_key=slotted["answer"].map(str.casefold))
    slotted = slotted.merge(_value_maps(orgs), on=["org_id", "slot", "answer_key"], how="left")

    unmapped_rows = slotted["has_map"] & slotted["sent"].isna()
    unmapped = (
        slotted[unmapped_rows]
        .groupby(["org_id", "period", "slot", "answer"], sort=True)
        .size()
        .rename("count")
        .reset_index()
    )
    slotted["value"] = slotted["sent"].where(slotted["has_map"], slotted["answer"]).fillna("")
    sent = slotted.loc[slotted["value"] != "", [*RECORD_KEY, "slot", "value"]].drop_duplicates()
    ordered = sent.sort_values("value", kind="stable")
    cell = [*RECORD_KEY, "slot"]
    # Most cells hold one value: only the multi-answer ones go through a join per cell.
    multi = ordered.duplicated(cell, keep=False)
    joined = pd.concat(
        [
            ordered[~multi].set_index(cell)["value"],
            ordered[multi].groupby(cell, sort=False)["value"].agg(";".join),
        ]
    ).unstack("slot")
    demographics = demographics.set_index(RECORD_KEY)
    for slot in joined.columns:
        demographics[slot] = joined[slot].reindex(demographics.index).fillna("")
    return demographics.reset_index(), unmapped[UNMAPPED_COLUMNS]
