"""Which records are exported."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from counts_assets.core.orgs.models import Organization, normalize_text
from counts_assets.core.rules.booleans import parse_flags
from counts_assets.core.rules.timestamps import local_dates, named_dates, parse_started_at
from counts_assets.core.rules.window import in_read_window
from counts_assets.core.text import as_text, matching_form

RECORD_KEY = ["org_id", "call_report_num"]


def with_call_dates(
    records: pd.DataFrame, orgs: Mapping[str, Organization]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records with `call_date` (local date in the org's zone) and `deleted_flag`.

    Returns (records, unreadable) where unreadable lists (org_id, call_report_num, column,
    named) of records left out because `call_report_num`, `started_at` or `deleted` could not be
    read; `named` holds the Call Dates an unreadable started_at may name (see
    `unreadable_for_targets`).
    """
    out = records.copy()
    for column in ("org_id", "call_report_num", "contact_form", "status"):
        out[column] = as_text(out[column])
    instants = parse_started_at(out["started_at"])
    out["call_date"] = None
    for org_id, rows in out.groupby("org_id", sort=False).groups.items():
        if org_id in orgs:
            out.loc[rows, "call_date"] = local_dates(instants[rows], orgs[org_id].timezone)
    out["deleted_flag"], bad_deleted = parse_flags(out["deleted"])

    bad_time = instants.isna()
    bad_number = out["call_report_num"].isna()
    unreadable = pd.concat(
        [
            out.loc[bad_number, RECORD_KEY].assign(column="call_report_num"),
            out.loc[bad_time & ~bad_number, RECORD_KEY].assign(
                column="started_at",
                named=named_dates(out.loc[bad_time & ~bad_number, "started_at"]),
            ),
            out.loc[bad_deleted, RECORD_KEY].assign(column="deleted"),
        ],
        ignore_index=True,
    )
    return out[~bad_number & ~bad_time & ~bad_deleted], unreadable


def unreadable_for_targets(unreadable: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """The records left out that a run reports, as (org_id, call_report_num, column).

    A started_at that cannot be read is reported by the run of the period whose Call Dates it
    names (several when it reads both day-first and month-first), and by every run of its
    organization when it names no date: never silently gone, and not repeated by the runs of
    neighbouring periods whose read window also holds it."""
    named = unreadable.get("named")
    if named is None:
        return unreadable.reindex(columns=[*RECORD_KEY, "column"])
    dates = named.map(lambda v: v if isinstance(v, tuple) else ())
    told = dates.map(len) > 0
    candidates = (
        unreadable[told]
        .assign(call_date=dates[told])
        .explode("call_date")
        .reset_index()
        .merge(targets[["org_id", "first_day", "last_day"]], on="org_id")
    )
    inside = candidates[
        (candidates["call_date"] >= candidates["first_day"])
        & (candidates["call_date"] <= candidates["last_day"])
    ]
    here = inside.groupby("index")["call_date"].agg(lambda d: ", ".join(sorted(set(d))))
    column = unreadable["column"].astype(object).copy()
    column[here.index] = "started_at (not a readable time; it names " + here + ")"
    column[~told & named.notna()] = "started_at (not a readable time; it names no date)"
    reported = ~told | unreadable.index.isin(here.index)
    return unreadable.assign(column=column)[reported][[*RECORD_KEY, "column"]]


def interaction_record_keys(
    answers: pd.DataFrame, orgs: Mapping[str, Organization]
) -> pd.DataFrame:
    """(org_id, call_report_num) of records that hold an `any_of` answer of their org."""
    conditions = pd.DataFrame(
        [
            (org.id, normalize_text(condition.question), normalize_text(answer))
            for org in orgs.values()
            if org.interaction_filter.any_of
            for condition in org.interaction_filter.any_of
            for answer in condition.answers
        ],
        columns=["org_id", "question_key", "answer_key"],
    ).drop_duplicates()
    if conditions.empty or answers.empty:
        return pd.DataFrame(columns=RECORD_KEY)
    keyed = answers[RECORD_KEY].assign(
        question_key=matching_form(answers["question"]),
        answer_key=matching_form(answers["answer"]),
    )
    hits = keyed.merge(conditions, on=["org_id", "question_key", "answer_key"])
    return hits[RECORD_KEY].drop_duplicates()


def select_included(
    records: pd.DataFrame,
    answers: pd.DataFrame,
    orgs: Mapping[str, Organization],
    targets: pd.DataFrame,
    monthly: bool,
) -> pd.DataFrame:
    """Included records of each target (org_id, period, first_day, last_day).

    `records` must come from `with_call_dates`; first_day already accounts for share_from.
    A period is a Call Date (`YYYY-MM-DD`) or, when monthly, a month (`YYYY-MM`).
    """
    forms = pd.DataFrame(
        [(org.id, form) for org in orgs.values() for form in org.contact_forms],
        columns=["org_id", "contact_form"],
    ).drop_duplicates()
    candidates = records[(records["status"] == "finalized") & ~records["deleted_flag"]]
    candidates = candidates.merge(forms, on=["org_id", "contact_form"])

    all_211 = {org.id for org in orgs.values() if org.interaction_filter.all_records}
    marked = interaction_record_keys(answers, orgs).assign(marked=True)
    candidates = candidates.merge(marked, on=RECORD_KEY, how="left")
    is_interaction = candidates["org_id"].isin(all_211) | candidates["marked"].eq(True)
    candidates = candidates[is_interaction].drop(columns="marked")

    candidates["period"] = candidates["call_date"].str[:7] if monthly else candidates["call_date"]
    in_targets = candidates.merge(targets, on=["org_id", "period"])
    in_period = (in_targets["call_date"] >= in_targets["first_day"]) & (
        in_targets["call_date"] <= in_targets["last_day"]
    )
    return in_targets[in_period].drop(columns=["first_day", "last_day"]).reset_index(drop=True)


def repeated_numbers(records: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """(org_id, period, call_report_num, rows): numbers on more than one of an org's records
    read for the period (started_at in the period's read window). All of them are left out of
    that period; a number repeated far apart in time does not stop either record elsewhere."""
    columns = ["org_id", "period", "call_report_num", "rows"]
    repeated = records[records.duplicated(RECORD_KEY, keep=False)]
    if repeated.empty or targets.empty:
        return pd.DataFrame(columns=columns)
    pairs = repeated[[*RECORD_KEY, "started_at"]].merge(
        targets[["org_id", "period", "first_day", "last_day"]], on="org_id"
    )
    inside = in_read_window(pairs["started_at"], pairs["first_day"], pairs["last_day"])
    counted = pairs[inside.to_numpy()].groupby(["org_id", "period", "call_report_num"]).size()
    counted = counted.rename("rows").reset_index()
    return counted[counted["rows"] > 1].reset_index(drop=True)[columns]
