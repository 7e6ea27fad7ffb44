"""The read window: which records a read for Call Dates first..last returns. The reader puts it
in SQL; the duplicate-number rule (a number on two records read for one period) applies the
same window row by row, so a ranged run and a run per period leave out the same records."""

from __future__ import annotations

import datetime as dt

import pandas as pd

# A Call Date in any zone (UTC-12 to UTC+14) lies within a day of the UTC date, and text
# timestamps may carry any offset: the window is the range widened by two days. The exact Call
# Date is decided later, in the organization's zone.
MARGIN = dt.timedelta(days=2)

# Text started_at values are read by range only when they start with a date written
# YYYY-MM-DD, the only form whose text sorts like time. Every other value (blank-led, other
# separators, other orders, a number or bytes) is read with every range of its organization, so
# that it is reported or, when it is readable after all (" 2026-10-15T12:00:00"), included.
DATE_SHAPED = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
DATE_SHAPED_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"


def read_window(first: dt.date, last: dt.date) -> tuple[str, str]:
    """[low, high) bounds on started_at as ISO text (UTC dates for native timestamps)."""
    return (first - MARGIN).isoformat(), (last + MARGIN + dt.timedelta(days=1)).isoformat()


def _as_stored_text(value: object) -> object:
    if isinstance(value, dt.datetime):
        instant = value.astimezone(dt.UTC) if value.tzinfo is not None else value
        return instant.strftime("%Y-%m-%d %H:%M:%S")
    return value


def in_read_window(started_at: pd.Series, first_day: pd.Series, last_day: pd.Series) -> pd.Series:
    """Row by row, whether a read for first_day..last_day (ISO dates) returns the record.
    Native timestamps compare as UTC ISO text, which orders the same way."""
    first = pd.to_datetime(first_day) - MARGIN
    high = pd.to_datetime(last_day) + MARGIN + dt.timedelta(days=1)
    text = started_at.map(_as_stored_text)
    is_text = text.map(lambda v: isinstance(v, str)).astype(bool)
    stored = text.where(is_text, "")
    in_range = (stored >= first.dt.strftime("%Y-%m-%d")) & (stored < high.dt.strftime("%Y-%m-%d"))
    date_shaped = stored.str.contains(DATE_SHAPED, regex=True).astype(bool)
    return ~is_text | in_range | ~date_shaped
