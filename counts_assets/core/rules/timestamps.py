"""`started_at` parsing and the Call Date in the organization's time zone."""

from __future__ import annotations

import datetime as dt
import re

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
        # strptime's %S takes 61; ISO 8601 allows 60 (a leap second), never more.
        seconds_ok = parts["time"].str[6:8].fillna("00").astype("int64") <= 60
        shift = pd.to_timedelta(sign * (hours * 60 + minutes), unit="min")
        utc = (wall - shift).where(offset_ok & seconds_ok)
        result[is_text] = utc.dt.tz_localize("UTC")
    return result


def local_dates(instants: pd.Series, timezone: str) -> pd.Series:
    """`YYYY-MM-DD` of each instant in an IANA zone (DST handled by the zone database)."""
    local = instants.dt.tz_convert(timezone)
    return local.dt.strftime("%Y-%m-%d").astype(object).where(instants.notna(), None)


# The dates an unreadable started_at may name, so it is reported with the period it could
# belong to: year first with any separator or none (2026/11/22, 2026.11.22, 20261122T2000,
# 2026-1-5), day or month first (22/11/2026, 11-22-26: both readings when both are dates), and
# month names (22 Nov 2026, November 22, 2026).
_YEAR_FIRST = r"^\s*([0-9]{4})([-/. ])([0-9]{1,2})\2([0-9]{1,2})(?![0-9])"
_YEAR_FIRST_COMPACT = r"^\s*([0-9]{4})()([0-9]{2})([0-9]{2})(?![0-9])"
_YEAR_LAST = r"^\s*([0-9]{1,2})([-/. ])([0-9]{1,2})\2([0-9]{4}|[0-9]{2})(?![0-9])"
_DAY_MONTH_NAME = r"^\s*([0-9]{1,2})[ -]([A-Za-z]{3,9})\.?,?[ -]([0-9]{4})(?![0-9])"
_MONTH_NAME_DAY = r"^\s*([A-Za-z]{3,9})\.? ([0-9]{1,2}),? ([0-9]{4})(?![0-9])"
_MONTH_NAMES = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]


def _date_text(year: int, month: int, day: int) -> str | None:
    """The date, when it is one a contact of this century can have: `1-3-2500:00:00` (a time
    run into a short year) names no date, and is then reported by every run."""
    if not 2000 <= year <= 2099:
        return None
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def _month_number(name: str) -> int | None:
    """1-12 for a month's name or its start of 3 letters or more (Nov, Sept, November)."""
    word = name.casefold()
    return next((n for n, m in enumerate(_MONTH_NAMES, 1) if m.startswith(word)), None)


def _named(value: object) -> tuple[str, ...]:
    if not isinstance(value, str):
        return ()
    candidates: list[str | None] = []
    if found := re.match(_YEAR_FIRST, value) or re.match(_YEAR_FIRST_COMPACT, value):
        year, _, month, day = found.groups()
        candidates.append(_date_text(int(year), int(month), int(day)))
    elif found := re.match(_YEAR_LAST, value):
        first, _, second, year = found.groups()
        full_year = int(year) if len(year) == 4 else 2000 + int(year)
        candidates += [
            _date_text(full_year, int(second), int(first)),
            _date_text(full_year, int(first), int(second)),
        ]
    elif found := re.match(_DAY_MONTH_NAME, value):
        day, name, year = found.groups()
        month = _month_number(name)
        candidates.append(month and _date_text(int(year), month, int(day)))
    elif found := re.match(_MONTH_NAME_DAY, value):
        name, day, year = found.groups()
        month = _month_number(name)
        candidates.append(month and _date_text(int(year), month, int(day)))
    return tuple(sorted({c for c in candidates if c}))


def named_dates(values: pd.Series) -> pd.Series:
    """For started_at values that cannot be read, the Call Dates (`YYYY-MM-DD`) they may name,
    as written: none when no date can be told (words, NULL, a number, 2026-02-30)."""
    return values.map(_named).astype(object)
