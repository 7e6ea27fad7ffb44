"""Every time zone: for orgs east and west of UTC, half-hour offsets and southern DST, each day
and month is due when it ends locally, is already a partition then, and records fall on their
local Call Date; a period that has not ended locally writes no file."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from counts_assets.core.due import due_days, due_months
from counts_assets.core.files.periods import period_ended, split_open_periods
from counts_assets.core.rules.timestamps import local_dates
from counts_assets.defs.shared.partitions import daily_partitions, monthly_partitions
from counts_tests.factories import make_org

GRACE = dt.timedelta(minutes=60)
FIRST = dt.date(2025, 1, 1)

# zone -> the UTC instant at which local 2026-11-01 00:00 begins (October ends there).
OCTOBER_ENDS = {
    "Pacific/Kiritimati": "2026-10-31T10:00:00+00:00",  # +14
    "Pacific/Auckland": "2026-10-31T11:00:00+00:00",  # +13, daylight saving in October
    "Pacific/Guam": "2026-10-31T14:00:00+00:00",  # +10
    "Asia/Kolkata": "2026-10-31T18:30:00+00:00",  # +05:30
    "Pacific/Pago_Pago": "2026-11-01T11:00:00+00:00",  # -11
}


def org_in(zone: str):
    return make_org(id="zoneorg", timezone=zone, share_from="2026-01-01")


def valid(partitions_def, key: str, now: dt.datetime) -> bool:
    time_dim = partitions_def.time_window_dimension.partitions_def
    return key in time_dim.get_partition_keys(current_time=now)


@pytest.mark.parametrize("zone", list(OCTOBER_ENDS))
def test_a_month_is_due_when_it_ends_locally_and_is_already_a_partition(zone):
    org = org_in(zone)
    ends = dt.datetime.fromisoformat(OCTOBER_ENDS[zone])
    before = due_months([org], ends + GRACE - dt.timedelta(seconds=1), GRACE, FIRST, 1)
    at = due_months([org], ends + GRACE, GRACE, FIRST, 1)
    assert before == [("zoneorg", dt.date(2026, 9, 1))]
    assert at == [("zoneorg", dt.date(2026, 10, 1))]
    assert valid(monthly_partitions, "2026-10-01", ends + GRACE)


@pytest.mark.parametrize("zone", list(OCTOBER_ENDS))
def test_a_day_is_due_when_it_ends_locally_and_is_already_a_partition(zone):
    org = org_in(zone)
    ends = dt.datetime.fromisoformat(OCTOBER_ENDS[zone])  # local Oct 31 ends here
    before = due_days([org], ends + GRACE - dt.timedelta(seconds=1), GRACE, FIRST, 1)
    at = due_days([org], ends + GRACE, GRACE, FIRST, 1)
    assert before == [("zoneorg", dt.date(2026, 10, 30))]
    assert at == [("zoneorg", dt.date(2026, 10, 31))]
    assert valid(daily_partitions, "2026-10-31", ends + GRACE)


@pytest.mark.parametrize("zone", list(OCTOBER_ENDS))
def test_records_fall_on_their_local_call_date(zone):
    ends = pd.Timestamp(OCTOBER_ENDS[zone])
    instants = pd.Series([ends - pd.Timedelta(seconds=1), ends])
    assert list(local_dates(instants, zone)) == ["2026-10-31", "2026-11-01"]


@pytest.mark.parametrize("zone", list(OCTOBER_ENDS))
def test_a_period_that_has_not_ended_locally_writes_no_file(zone):
    org = org_in(zone)
    ends = dt.datetime.fromisoformat(OCTOBER_ENDS[zone])
    assert not period_ended(org, dt.date(2026, 10, 31), ends - dt.timedelta(seconds=1))
    assert period_ended(org, dt.date(2026, 10, 31), ends)
    ended, still_open = split_open_periods(
        [("zoneorg", dt.date(2026, 10, 1))], {"zoneorg": org}, True, ends - dt.timedelta(hours=1)
    )
    assert ended == [] and "has not ended" in still_open[("zoneorg", "2026-10")]


@pytest.mark.parametrize("zone", ["America/Vancouver", "America/Havana", "Africa/Casablanca"])
def test_call_dates_follow_the_pinned_zone_database_not_the_systems(zone):
    """The tzdata package of requirements.lock decides, whatever /usr/share/zoneinfo holds
    (zones whose rules changed in 2026 included)."""
    import importlib.resources
    import zoneinfo

    with importlib.resources.files("tzdata.zoneinfo").joinpath(zone).open("rb") as data:
        pinned = zoneinfo.ZoneInfo.from_file(data)
    instants = pd.Series(pd.date_range("2025-01-01", "2027-12-31", freq="7h", tz="UTC"))
    expected = [i.to_pydatetime().astimezone(pinned).date().isoformat() for i in instants]
    assert zoneinfo.TZPATH == ()
    assert local_dates(instants, zone).tolist() == expected
