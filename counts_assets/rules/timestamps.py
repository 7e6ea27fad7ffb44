"""`started_at` parsing and the Call Date in the organization's time zone."""

from __future__ import annotations

import datetime as dt

import pandas as pd

# ASCII digits only: `\d` would also accept other scripts' digits.
ISO_TIMESTAMP = (
    r"^\s*([0-9]{4}-[0-9]{2}-[0-9]{2})[ T]([0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.([0-9]{1,6}))?(Z|[+-][0-9]{2}:[0-9]{2})?\s*$"
)


def parse_started_at(values: pd.Series) -> pd.Series:
    """UTC instants (tz-aware); NaT where the value cannot be read.

    Native timestamps: naive ones are UTC, aware ones are converted. Text: ISO 8601,
    no offset meaning UTC; offsets are honoured, so mixed columns are fine.
    """
    result = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
    is_native = values.map(lambda v: isinstance(v, dt.datetime))
    is_text = values.map(lambda v: isinstance(v, str))

    if is_native.any():
        native = values[is_native].map(
            lambda v: v if v.tzinfo is not None else v.replace(tzinfo=dt.UTC)
        )
        result[is_native] = pd.to_datetime(native, utc=True).astype("datetime64[us, UTC]")

    if is_text.any():
        parts = values[is_text].astype(object).str.extract(ISO_TIMESTAMP)
        parts.columns = ["date", "time", "fraction", "offset"]
        wall = pd.to_datetime(
            parts["date"] + " " + parts["time"], format="%Y-%m-%d %H:%M:%S", errors="coerce"
        ).astype("datetime64[us]")
        micros = parts["fraction"].fillna("").str.ljust(6, "0").replace("", "0").astype("int64")
        wall = wall + pd.to_timedelta(micros, unit="us")

        offset = parts["offset"].where(parts["offset"] != "Z", "+00:00").fillna("+00:00")
        sign = offset.str[0].map({"+": 1, "-": -1}).astype("int64")
        hours = offset.str[1:3].astype("int64")
        minutes = offset.str[4:6].astype("int64")
        offset_ok = (hours < 24) & (minutes < 60)
        shift = pd.to_timedelta(sign * (hours * 60 + minutes), unit="min")
        utc = (wall - shift).where(offset_ok)
        result[is_text] = utc.dt.tz_localize("UTC")
    return result


def local_dates(instants: pd.Series, timezone: str) -> pd.Series:
    """`YYYY-MM-DD` of each instant in an IANA zone (DST handled by the zone database)."""
    local = instants.dt.tz_convert(timezone)
    return local.dt.strftime("%Y-%m-%d").astype(object).where(instants.notna(), None)
