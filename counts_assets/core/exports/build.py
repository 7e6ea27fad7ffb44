"""From the records a run read to the rows of both files, for every (org, period) at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import pandas as pd

from counts_assets.core.files.layout import FILE_KEY, NEEDS_HEADER
from counts_assets.core.orgs.models import SLOTS, Organization
from counts_assets.core.rules.booleans import parse_flags
from counts_assets.core.rules.demographics import map_demographics
from counts_assets.core.rules.inclusion import (
    RECORD_KEY,
    repeated_numbers,
    select_included,
    unreadable_for_targets,
    with_call_dates,
)
from counts_assets.core.rules.taxonomy import normalize_codes
from counts_assets.core.rules.zip_codes import normalize_zip
from counts_assets.core.source.tables import SourceTables
from counts_assets.core.source.values import clean_source
from counts_assets.core.text import as_text, shown

SLOT_HEADERS = dict(zip(SLOTS, NEEDS_HEADER[5:11], strict=True))
PERIOD_RECORD = [*FILE_KEY, "call_report_num"]
# A spreadsheet would take these for a formula. 211 Counts reads them as data: they are sent
# as they are and counted, so an org can fix its form.
FORMULA_START = ("=", "+", "-", "@")


FINDING_COLUMNS = {
    "unreadable": ["org_id", "call_report_num", "column"],
    "duplicates": ["org_id", "period", "call_report_num", "rows"],
    "invalid_needs": ["org_id", "period", "call_report_num", "taxonomy_code", "reason"],
    "invalid_zips": ["org_id", "period", "count"],
    "unmapped": ["org_id", "period", "slot", "answer", "count"],
    "control_characters": ["org_id", "values"],
    "formula_like": ["org_id", "period", "column", "values"],
}


@dataclass(frozen=True)
class Findings:
    """Data-quality findings of a run. Record numbers and codes only, each source value cut to
    40 characters (`shown`), never an undecodable one: no personal data."""

    unreadable: pd.DataFrame  # org_id, call_report_num (None: no usable number), column
    duplicates: pd.DataFrame  # org_id, period, call_report_num, rows
    invalid_needs: pd.DataFrame  # org_id, period, call_report_num, taxonomy_code, reason
    invalid_zips: pd.DataFrame  # org_id, period, count
    unmapped: pd.DataFrame  # org_id, period, slot, answer, count
    control_characters: pd.DataFrame  # org_id, values
    formula_like: pd.DataFrame  # org_id, period, column, values

    @classmethod
    def concat(cls, parts: list[Findings]) -> Findings:
        names = [f.name for f in fields(cls)]
        if not parts:
            return cls(**{name: pd.DataFrame(columns=FINDING_COLUMNS[name]) for name in names})
        return cls(
            **{
                name: pd.concat([getattr(p, name) for p in parts], ignore_index=True)
                for name in names
            }
        )


@dataclass(frozen=True)
class ExportFrames:
    summary: pd.DataFrame  # FILE_KEY + SUMMARY_HEADER, all text
    needs: pd.DataFrame  # FILE_KEY + NEEDS_HEADER, all text
    included: pd.DataFrame  # org_id, period, call_report_num, call_date, report_version
    findings: Findings


def _text_keys(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{column: as_text(frame[column]) for column in RECORD_KEY})


def _without(frame: pd.DataFrame, drop: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    marked = frame.merge(drop[on].drop_duplicates().assign(_drop=True), on=on, how="left")
    return frame[marked["_drop"].isna().to_numpy()]


def _shown(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The frame with its source values cut as a report may show them."""
    cut = {
        c: pd.Series(
            [None if pd.isna(v) else shown(v) for v in frame[c]], index=frame.index, dtype=object
        )
        for c in columns
    }
    return frame.assign(**cut)


def _formula_like(
    per_record: pd.DataFrame, included: pd.DataFrame, orgs: Mapping[str, Organization]
) -> pd.DataFrame:
    """Values sent as they are that start like a spreadsheet formula, per file and column:
    pass-through slots, Report Version and Call Report Num, once per record."""
    passed = pd.DataFrame(
        [
            (org.id, SLOT_HEADERS[slot])
            for org in orgs.values()
            for slot, spec in org.demographics.items()
            if spec.values is None
        ],
        columns=["org_id", "column"],
    )
    cells = pd.concat(
        [
            per_record.rename(columns=SLOT_HEADERS)
            .melt(id_vars=PERIOD_RECORD, value_vars=list(SLOT_HEADERS.values()), var_name="column")
            .merge(passed, on=["org_id", "column"]),
            included[PERIOD_RECORD].assign(
                column="Call Report Num", value=included["call_report_num"]
            ),
            included[PERIOD_RECORD].assign(column="Report Version", value=included["version"]),
        ],
        ignore_index=True,
    )
    flagged = cells[cells["value"].astype(str).str.startswith(FORMULA_START)]
    counted = flagged.groupby([*FILE_KEY, "column"]).size().rename("values").reset_index()
    return counted[[*FILE_KEY, "column", "values"]]


def _need_rows(included: pd.DataFrame, needs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grouped need rows (one per record, code and unmet flag), a no-need row for records
    without a valid need, and the needs left out with their reason."""
    owned = needs.merge(included[PERIOD_RECORD], on=RECORD_KEY)
    codes, valid = normalize_codes(owned["taxonomy_code"])
    unmet, bad_unmet = parse_flags(owned["unmet"])
    owned = owned.assign(code=codes, unmet_flag=unmet)
    kept = valid & ~bad_unmet
    left_out = owned.loc[~kept, [*FILE_KEY, "call_report_num", "taxonomy_code"]].assign(
        reason=(~valid[~kept]).map({True: "invalid taxonomy code", False: "unreadable unmet"})
    )
    grouped = (
        owned[kept]
        .groupby([*PERIOD_RECORD, "code", "unmet_flag"], sort=False)
        .size()
        .rename("count")
        .reset_index()
    )
    grouped["unmet_text"] = grouped["unmet_flag"].map({True: "True", False: "False"})
    with_need = grouped[PERIOD_RECORD].drop_duplicates().assign(has_need=True)
    without = included[PERIOD_RECORD].merge(with_need, on=PERIOD_RECORD, how="left")
    without = without[without["has_need"].isna()][PERIOD_RECORD].assign(
        code="", count=0, unmet_text=""
    )
    rows = pd.concat(
        [grouped[[*PERIOD_RECORD, "code", "count", "unmet_text"]], without], ignore_index=True
    )
    return rows, left_out.reset_index(drop=True)


def build_export_frames(
    source: SourceTables,
    orgs: Mapping[str, Organization],
    targets: pd.DataFrame,
    monthly: bool,
) -> ExportFrames:
    """Rows of every file of the run. `targets` has one row per (org_id, period) with the
    first and last Call Date it covers (share_from already applied)."""
    source, left_out, control_characters = clean_source(source)
    records = _text_keys(source.records)
    duplicates = repeated_numbers(records, targets)
    records, unreadable = with_call_dates(records, orgs)
    unreadable = unreadable_for_targets(unreadable, targets)
    answers = _text_keys(source.answers)

    included = select_included(records, answers, orgs, targets, monthly)
    included = _without(included, duplicates, PERIOD_RECORD)
    referrals = _text_keys(source.referrals)
    included = included.merge(referrals, on=RECORD_KEY, how="left")
    included["referrals"] = included["referrals"].fillna(0).astype("int64")
    included["version"] = as_text(included["report_version"]).fillna("")

    summary = (
        included.groupby([*FILE_KEY, "call_date", "version"], sort=False)
        .agg(calls=("call_report_num", "size"), services=("referrals", "sum"))
        .reset_index()
    )
    summary = pd.DataFrame(
        {
            "org_id": summary["org_id"],
            "period": summary["period"],
            "Call Date": summary["call_date"],
            "Total Calls": summary["calls"].astype("int64").map(str),
            "Total Services": summary["services"].astype("int64").map(str),
            "Report Version": summary["version"],
        }
    )

    need_rows, invalid_needs = _need_rows(included, _text_keys(source.needs))
    demographics, unmapped = map_demographics(included, answers, orgs)
    zips, bad_zip = normalize_zip(included["postal_code"])
    per_record = included[[*FILE_KEY, "call_report_num", "call_date"]].assign(zip=zips.values)
    per_record = per_record.merge(demographics, on=RECORD_KEY)
    invalid_zips = included[bad_zip.values].groupby(FILE_KEY).size().rename("count").reset_index()

    rows = need_rows.merge(per_record, on=PERIOD_RECORD)
    needs = pd.DataFrame(
        {
            "org_id": rows["org_id"],
            "period": rows["period"],
            "Call Date": rows["call_date"],
            "Zip Code": rows["zip"],
            "Taxonomy Code": rows["code"],
            "Count": rows["count"].astype("int64").map(str),
            "Need Was Unmet": rows["unmet_text"],
            **{SLOT_HEADERS[slot]: rows[slot] for slot in SLOTS},
            "Call Report Num": rows["call_report_num"],
        }
    )
    return ExportFrames(
        summary=sort_rows(summary, ["Call Date", "Report Version"]),
        needs=sort_rows(needs, ["Call Date", "Call Report Num", "Taxonomy Code", "Need Was Unmet"]),
        included=included[[*FILE_KEY, "call_report_num", "call_date", "version", "referrals"]],
        findings=Findings(
            unreadable=_shown(
                pd.concat([left_out, unreadable], ignore_index=True), ["call_report_num"]
            ),
            duplicates=_shown(duplicates, ["call_report_num"]),
            invalid_needs=_shown(invalid_needs, ["call_report_num", "taxonomy_code"]),
            invalid_zips=invalid_zips,
            unmapped=_shown(unmapped, ["answer"]),
            control_characters=control_characters,
            formula_like=_formula_like(per_record, included, orgs),
        ),
    )


def sort_rows(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Plain string (code point) order on text columns, grouped by file."""
    ordered = frame.astype({c: object for c in frame.columns}).sort_values(
        [*FILE_KEY, *columns], kind="stable"
    )
    return ordered.reset_index(drop=True)
