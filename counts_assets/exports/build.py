"""From the records a run read to the rows of both files, for every (org, period) at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from counts_assets.exports.layout import FILE_KEY, NEEDS_HEADER
from counts_assets.orgs.models import SLOTS, Organization
from counts_assets.rules.booleans import parse_flags
from counts_assets.rules.demographics import map_demographics
from counts_assets.rules.inclusion import RECORD_KEY, select_included, with_call_dates
from counts_assets.rules.taxonomy import normalize_codes
from counts_assets.rules.text import as_text
from counts_assets.rules.zip_codes import normalize_zip
from counts_assets.source.tables import SourceTables

SLOT_HEADERS = dict(zip(SLOTS, NEEDS_HEADER[5:11], strict=True))


@dataclass(frozen=True)
class Findings:
    """Data-quality findings of a run. Record numbers and codes only: no personal data."""

    unreadable: pd.DataFrame  # org_id, call_report_num, column
    duplicates: pd.DataFrame  # org_id, call_report_num, rows
    invalid_needs: pd.DataFrame  # org_id, period, call_report_num, taxonomy_code, reason
    invalid_zips: pd.DataFrame  # org_id, period, count
    unmapped: pd.DataFrame  # org_id, period, slot, answer, count


@dataclass(frozen=True)
class ExportFrames:
    summary: pd.DataFrame  # FILE_KEY + SUMMARY_HEADER, all text
    needs: pd.DataFrame  # FILE_KEY + NEEDS_HEADER, all text
    included: pd.DataFrame  # org_id, period, call_report_num, call_date, report_version
    findings: Findings


def _text_keys(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{column: as_text(frame[column]) for column in RECORD_KEY})


def _duplicate_records(records: pd.DataFrame) -> pd.DataFrame:
    sizes = records.groupby(RECORD_KEY, dropna=True).size().rename("rows").reset_index()
    return sizes[sizes["rows"] > 1].reset_index(drop=True)


def _need_rows(included: pd.DataFrame, needs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grouped need rows (one per record, code and unmet flag), a no-need row for records
    without a valid need, and the needs left out with their reason."""
    owned = needs.merge(included[[*RECORD_KEY, "period"]], on=RECORD_KEY)
    codes, valid = normalize_codes(owned["taxonomy_code"])
    unmet, bad_unmet = parse_flags(owned["unmet"])
    owned = owned.assign(code=codes, unmet_flag=unmet)
    kept = valid & ~bad_unmet
    left_out = owned.loc[~kept, [*FILE_KEY, "call_report_num", "taxonomy_code"]].assign(
        reason=(~valid[~kept]).map({True: "invalid taxonomy code", False: "unreadable unmet"})
    )
    grouped = (
        owned[kept]
        .groupby([*RECORD_KEY, "code", "unmet_flag"], sort=False)
        .size()
        .rename("count")
        .reset_index()
    )
    grouped["unmet_text"] = grouped["unmet_flag"].map({True: "True", False: "False"})
    with_need = grouped[RECORD_KEY].drop_duplicates().assign(has_need=True)
    without = included[RECORD_KEY].merge(with_need, on=RECORD_KEY, how="left")
    without = without[without["has_need"].isna()][RECORD_KEY].assign(
        code="", count=0, unmet_text=""
    )
    rows = pd.concat(
        [grouped[[*RECORD_KEY, "code", "count", "unmet_text"]], without], ignore_index=True
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
    records = _text_keys(source.records)
    duplicates = _duplicate_records(records)
    records = records.merge(duplicates[RECORD_KEY].assign(dup=True), on=RECORD_KEY, how="left")
    records = records[records["dup"].isna()].drop(columns="dup")
    records, unreadable = with_call_dates(records, orgs)
    answers = _text_keys(source.answers)

    included = select_included(records, answers, orgs, targets, monthly)
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

    need_rows, left_out = _need_rows(included, _text_keys(source.needs))
    demographics, unmapped = map_demographics(included, answers, orgs)
    zips, bad_zip = normalize_zip(included["postal_code"])
    per_record = included[[*FILE_KEY, "call_report_num", "call_date"]].assign(zip=zips.values)
    per_record = per_record.merge(demographics, on=RECORD_KEY)
    invalid_zips = included[bad_zip.values].groupby(FILE_KEY).size().rename("count").reset_index()

    rows = need_rows.merge(per_record, on=RECORD_KEY)
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
            unreadable=unreadable,
            duplicates=duplicates,
            invalid_needs=left_out,
            invalid_zips=invalid_zips,
            unmapped=unmapped,
        ),
    )


def sort_rows(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Plain string (code point) order on text columns, grouped by file."""
    ordered = frame.astype({c: object for c in frame.columns}).sort_values(
        [*FILE_KEY, *columns], kind="stable"
    )
    return ordered.reset_index(drop=True)
