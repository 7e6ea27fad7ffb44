"""started_at parsing (§2) and Call Dates in the org's zone (§3), DST included."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from counts_assets.core.rules.timestamps import local_dates, parse_started_at


def _call_date(value: object, zone: str) -> str | None:
    return local_dates(parse_started_at(pd.Series([value], dtype=object)), zone).iloc[0]


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("2026-10-15 12:00:00", "2026-10-15T12:00:00"),
        ("2026-10-15T12:00:00", "2026-10-15T12:00:00"),
        ("2026-10-15T12:00:00Z", "2026-10-15T12:00:00"),
        ("  2026-10-15T12:00:00.5  ", "2026-10-15T12:00:00.500000"),
        ("2026-10-15T12:00:00.123456+02:00", "2026-10-15T10:00:00.123456"),
        ("2026-10-15 23:30:00-05:30", "2026-10-16T05:00:00"),
        # A leap second is read as the next minute's first.
        ("2026-12-31T23:59:60Z", "2027-01-01T00:00:00"),
        (dt.datetime(2026, 10, 15, 12), "2026-10-15T12:00:00"),
        (
            dt.datetime(2026, 10, 15, 7, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            "2026-10-15T12:00:00",
        ),
    ],
)
def test_readable_forms(value, utc):
    parsed = parse_started_at(pd.Series([value], dtype=object)).iloc[0]
    assert parsed == pd.Timestamp(utc, tz="UTC")


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        None,
        "2026-02-30 00:00:00",
        "2026-10-15",
        "2026-10-15T25:00:00",
        "2026-10-15T12:00:00.1234567",
        "2026-10-15t12:00:00",
        "2026-10-15T12:00:00+0200",
        "2026-10-15T12:00:00+24:00",
        "2026-10-15T12:00:61",
        "١٢٣٤-10-15T12:00:00",
        17,
        "2026-10-15T12:00",
    ],
)
def test_unreadable_forms(value):
    assert pd.isna(parse_started_at(pd.Series([value], dtype=object)).iloc[0])


def test_mixed_column_with_and_without_offsets():
    parsed = parse_started_at(
        pd.Series(["2026-10-15T00:30:00-05:00", "2026-10-15 05:30:00", "bad"], dtype=object)
    )
    assert parsed.iloc[0] == parsed.iloc[1]
    assert pd.isna(parsed.iloc[2])


@pytest.mark.parametrize(
    ("value", "zone", "expected"),
    [
        # Chicago local midnight, standard time (UTC-6).
        ("2026-01-15T05:59:59Z", "America/Chicago", "2026-01-14"),
        ("2026-01-15T06:00:00Z", "America/Chicago", "2026-01-15"),
        # Spring forward on 2026-03-08: the day is 23 hours long.
        ("2026-03-08T06:00:00Z", "America/Chicago", "2026-03-08"),
        ("2026-03-09T04:59:59Z", "America/Chicago", "2026-03-08"),
        ("2026-03-09T05:00:00Z", "America/Chicago", "2026-03-09"),
        # Fall back on 2026-11-01: the day is 25 hours long.
        ("2026-11-01T05:00:00Z", "America/Chicago", "2026-11-01"),
        ("2026-11-02T05:59:59Z", "America/Chicago", "2026-11-01"),
        ("2026-11-02T06:00:00Z", "America/Chicago", "2026-11-02"),
        # New York and Honolulu (no DST) for the same instant.
        ("2026-07-01T03:59:59Z", "America/New_York", "2026-06-30"),
        ("2026-07-01T04:00:00Z", "America/New_York", "2026-07-01"),
        ("2026-07-01T09:59:59Z", "Pacific/Honolulu", "2026-06-30"),
        ("2026-07-01T10:00:00Z", "Pacific/Honolulu", "2026-07-01"),
        # An offset that is not the zone's own is honoured, then converted.
        ("2026-03-08T23:00:00-06:00", "America/Chicago", "2026-03-09"),
    ],
)
def test_call_date_is_the_local_date(value, zone, expected):
    assert _call_date(value, zone) == expected
