"""Due-ness, Dagster-free: a day or month is due once it has ended in the org's
time zone plus the grace period."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from counts_assets.core.orgs.models import Organization

DAILY_LOOKBACK = 7
MONTHLY_LOOKBACK = 2


def _local_date(now: dt.datetime, grace: dt.timedelta, org: Organization) -> dt.date:
    """Local date of (now - grace): every date before it has ended at least `grace` ago."""
    return (now - grace).astimezone(org.zone).date()


def due_days(
    orgs: Iterable[Organization],
    now: dt.datetime,
    grace: dt.timedelta,
    first_date: dt.date,
    lookback: int = DAILY_LOOKBACK,
) -> list[tuple[str, dt.date]]:
    """(org, Call Date) for the last `lookback` due dates of each org, on or after share_from."""
    due = []
    for org in orgs:
        last = _local_date(now, grace, org) - dt.timedelta(days=1)
        for back in range(lookback):
            day = last - dt.timedelta(days=back)
            if day >= org.share_from and day >= first_date:
                due.append((org.id, day))
    return due


def due_months(
    orgs: Iterable[Organization],
    now: dt.datetime,
    grace: dt.timedelta,
    first_date: dt.date,
    lookback: int = MONTHLY_LOOKBACK,
) -> list[tuple[str, dt.date]]:
    """(org, first day of month) for the last `lookback` due months of each org; a month
    wholly before share_from is never due."""
    due = []
    for org in orgs:
        month = _local_date(now, grace, org).replace(day=1)
        for _ in range(lookback):
            month = (month - dt.timedelta(days=1)).replace(day=1)
            next_month = (month + dt.timedelta(days=32)).replace(day=1)
            if next_month > org.share_from and month >= first_date.replace(day=1):
                due.append((org.id, month))
    return due
