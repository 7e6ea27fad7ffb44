"""pandera schemas of the two files.

A run validates all of its files in one call per schema: every frame carries the file it
belongs to (org_id, period) and the Call Date window of that file (first_day, last_day).
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from counts_assets.core.rules.taxonomy import CODE

DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
COUNT = r"0|[1-9][0-9]*"
POSITIVE = r"[1-9][0-9]*"


class _FileFrame(pa.DataFrameModel):
    org_id: Series[str]
    period: Series[str]
    first_day: Series[str] = pa.Field(str_matches=DATE)
    last_day: Series[str] = pa.Field(str_matches=DATE)
    call_date: Series[str] = pa.Field(alias="Call Date", str_matches=rf"^{DATE}$")

    @pa.dataframe_check(name="Call Date inside the period and not before share_from")
    def call_date_in_window(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["Call Date"] >= df["first_day"]) & (df["Call Date"] <= df["last_day"])

    class Config:
        strict = True
        ordered = True
        coerce = False


class SummaryFileSchema(_FileFrame):
    """File 1: Call Date, Total Calls, Total Services, Report Version."""

    total_calls: Series[str] = pa.Field(alias="Total Calls", str_matches=rf"^(?:{POSITIVE})$")
    total_services: Series[str] = pa.Field(alias="Total Services", str_matches=rf"^(?:{COUNT})$")
    report_version: Series[str] = pa.Field(alias="Report Version")

    class Config:
        unique = ["org_id", "period", "Call Date", "Report Version"]


class NeedsFileSchema(_FileFrame):
    """File 2: needs and demographics."""

    zip_code: Series[str] = pa.Field(alias="Zip Code", str_matches=r"^(?:[0-9]{5})?$")
    taxonomy_code: Series[str] = pa.Field(alias="Taxonomy Code", str_matches=rf"^(?:{CODE})?$")
    count: Series[str] = pa.Field(alias="Count", str_matches=rf"^(?:{COUNT})$")
    need_was_unmet: Series[str] = pa.Field(alias="Need Was Unmet", isin=["", "True", "False"])
    age: Series[str] = pa.Field(alias="Age")
    gender: Series[str] = pa.Field(alias="Gender")
    ethnicity: Series[str] = pa.Field(alias="Ethnicity")
    children_in_household: Series[str] = pa.Field(alias="Children In Household")
    income_level: Series[str] = pa.Field(alias="Income Level")
    source: Series[str] = pa.Field(alias="Source")
    call_report_num: Series[str] = pa.Field(alias="Call Report Num", str_length={"min_value": 1})

    @pa.dataframe_check(name="Count is 0 exactly when Taxonomy Code is empty")
    def count_zero_iff_no_code(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["Count"] == "0") == (df["Taxonomy Code"] == "")

    @pa.dataframe_check(name="Need Was Unmet is empty exactly when Taxonomy Code is empty")
    def unmet_empty_iff_no_code(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["Need Was Unmet"] == "") == (df["Taxonomy Code"] == "")

    class Config:
        unique = ["org_id", "period", "Call Report Num", "Taxonomy Code", "Need Was Unmet"]


class FilePairSchema(pa.DataFrameModel):
    """Across the pair: distinct Call Report Nums of File 2 per Call Date = Total Calls."""

    org_id: Series[str]
    period: Series[str]
    call_date: Series[str] = pa.Field(alias="Call Date")
    total_calls: Series[int] = pa.Field(ge=0)
    distinct_records: Series[int] = pa.Field(ge=0)

    @pa.dataframe_check(name="File 2 records per Call Date equal File 1 Total Calls")
    def records_match_calls(cls, df: pd.DataFrame) -> Series[bool]:
        return df["total_calls"] == df["distinct_records"]

    class Config:
        strict = True
        coerce = False
