"""The (org, period) files a run is asked for, and the Call Dates each may cover."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from counts_assets.core.orgs.models import Organization


@dataclass(frozen=True)
class Target:
    org_id: str
    period: str  # YYYY-MM-DD (daily) or YYYY-MM (monthly)
    first_day: dt.date  # share_from already applied
    last_day: dt.date

    @property
    def monthly(self) -> bool:
        return len(self.period) == 7


def period_bounds(period_start: dt.date, monthly: bool) -> tuple[dt.date, dt.date]:
    if not monthly:
        return period_start, period_start
    last = calendar.monthrange(period_start.year, period_start.month)[1]
    return period_start.replace(day=1), period_start.replace(day=last)


def period_starts(first: dt.date, last: dt.date, monthly: bool) -> list[dt.date]:
    """The starts of the periods from the one starting at `first` to the one starting at `last`."""
    if not monthly:
        return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    months = (last.year - first.year) * 12 + last.month - first.month
    return [
        dt.date(first.year + (first.month - 1 + n) // 12, (first.month - 1 + n) % 12 + 1, 1)
        for n in range(months + 1)
    ]


def period_label(start: dt.date, monthly: bool) -> str:
    """`YYYY-MM` for a month, `YYYY-MM-DD` for a day: the period in file names and keys."""
    return start.strftime("%Y-%m") if monthly else start.isoformat()


def period_start(period: str) -> dt.date:
    return dt.date.fromisoformat(period + "-01" if len(period) == 7 else period)


def plan_targets(
    requested: Iterable[tuple[str, dt.date]],
    orgs: Mapping[str, Organization],
    monthly: bool,
) -> tuple[list[Target], dict[tuple[str, str], str]]:
    """(targets, skipped): a period wholly before the org's share_from makes no file; the
    reason is kept for the materialization. Orgs without a valid file are the caller's to fail."""
    targets: list[Target] = []
    skipped: dict[tuple[str, str], str] = {}
    for org_id, start in requested:
        first, last = period_bounds(start, monthly)
        period = period_label(first, monthly)
        org = orgs[org_id]
        if last < org.share_from:
            skipped[(org_id, period)] = (
                f"no file: {period} is before {org_id}'s share_from {org.share_from}"
            )
            continue
        targets.append(Target(org_id, period, max(first, org.share_from), last))
    return targets, skipped


def period_ended(org: Organization, last_day: dt.date, now: dt.datetime) -> bool:
    """True once the period's last Call Date has ended in the org's time zone."""
    return last_day < now.astimezone(org.zone).date()


def may_have_file(org: Organization, start: dt.date, monthly: bool, now: dt.datetime) -> bool:
    """Whether the period starting at `start` can have a pair: not wholly before the org's
    share_from, and ended in its time zone."""
    last = period_bounds(start, monthly)[1]
    return last >= org.share_from and period_ended(org, last, now)


def split_open_periods(
    requested: Iterable[tuple[str, dt.date]],
    orgs: Mapping[str, Organization],
    monthly: bool,
    now: dt.datetime,
) -> tuple[list[tuple[str, dt.date]], dict[tuple[str, str], str]]:
    """(periods that have ended, {(org, period): reason} for those that have not): a period
    still going on in the org's time zone makes no file yet."""
    ended, still_open = [], {}
    for org_id, start in requested:
        first, last = period_bounds(start, monthly)
        if period_ended(orgs[org_id], last, now):
            ended.append((org_id, start))
        else:
            period = period_label(first, monthly)
            still_open[(org_id, period)] = (
                f"no file yet: {period} has not ended in {org_id}'s time zone "
                f"({orgs[org_id].timezone})"
            )
    return ended, still_open


def targets_frame(targets: list[Target]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "org_id": [t.org_id for t in targets],
            "period": [t.period for t in targets],
            "first_day": [t.first_day.isoformat() for t in targets],
            "last_day": [t.last_day.isoformat() for t in targets],
        },
        dtype=object,
    )
