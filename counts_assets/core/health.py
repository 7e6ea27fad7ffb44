"""Is an organization fine? Dagster-free: from what is due (from share_from through the last
period ended in its time zone plus the grace period) and the state of each due period (made,
held at the current destination, its latest run failed), the verdict, the first gap and what to do.

A period that became due less than `SETTLE` ago, or whose run is in flight, is being made; a pair
made less than `SETTLE` ago and not yet at the destination is being delivered: neither is a gap (the
schedules look every 15 minutes, the delivery sensor every 30 seconds)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from counts_assets.core.files.periods import period_bounds, period_label, period_starts
from counts_assets.core.orgs.models import Organization

SETTLE = dt.timedelta(hours=1)
SHOWN_SPANS = 3


def due_periods(
    org: Organization, now: dt.datetime, grace: dt.timedelta, first_date: dt.date, monthly: bool
) -> list[dt.date]:
    """Every period due for the org: not wholly before share_from (nor the platform's first
    date), and ended in its time zone at least `grace` ago."""
    today = (now - grace).astimezone(org.zone).date()
    first = max(org.share_from, first_date)
    if monthly:
        last = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        first = first.replace(day=1)
    else:
        last = today - dt.timedelta(days=1)
    return period_starts(first, last, monthly) if first <= last else []


def became_due(
    org: Organization, start: dt.date, monthly: bool, grace: dt.timedelta
) -> dt.datetime:
    """The instant the period became due: the end of its last day in the org's zone, plus grace."""
    last = period_bounds(start, monthly)[1]
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), org.zone)
    return end.astimezone(dt.UTC) + grace


def spans(periods: list[dt.date], monthly: bool) -> str:
    """Consecutive periods as ranges, the first few: `2026-11-06 .. 2026-11-23, 2026-11-30`."""
    groups: list[list[dt.date]] = []
    for start in sorted(periods):
        if groups and period_starts(groups[-1][-1], start, monthly)[1:2] == [start]:
            groups[-1].append(start)
        else:
            groups.append([start])
    shown = [
        period_label(g[0], monthly) + (f" .. {period_label(g[-1], monthly)}" if len(g) > 1 else "")
        for g in groups[:SHOWN_SPANS]
    ]
    more = len(groups) - SHOWN_SPANS
    return ", ".join(shown) + (f" and {more} more ranges" if more > 0 else "")


@dataclass(frozen=True)
class PeriodState:
    """What the instance knows of one period of an org."""

    made_at: dt.datetime | None = None  # when its newest record published a pair (None: no pair)
    held: bool = False  # the current destination holds that pair's version (the ledger says so)
    failed: bool = False  # its latest run failed, and no later run recorded it
    in_flight: bool = False  # a queued or running export run covers it


@dataclass
class Verdict:
    fine: bool
    problems: list[str] = field(default_factory=list)
    to_do: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _unit(monthly: bool, n: int) -> str:
    return f"{n} {'month' if monthly else 'day'}{'s' if n != 1 else ''}"


def judge(
    org: Organization,
    states: dict[bool, dict[dt.date, PeriodState]],
    due: dict[bool, list[dt.date]],
    now: dt.datetime,
    grace: dt.timedelta,
) -> Verdict:
    """The verdict of one org: `states[monthly][period start]` for what is known of each period,
    `due[monthly]` the periods due. Not fine when a due period has no pair (a gap), a pair is
    not at the destination (permission in force), or a period's latest run failed."""
    verdict = Verdict(fine=True)
    blocked = org.delivery_blocked(now)
    waiting = 0
    for monthly in (False, True):
        known = states.get(monthly, {})
        missing, undelivered = [], []
        for start in due.get(monthly, []):
            state = known.get(start, PeriodState())
            if state.made_at is None:
                settling = now - became_due(org, start, monthly, grace) < SETTLE
                if not (state.in_flight or settling):
                    missing.append(start)
            elif not state.held and blocked:
                waiting += 1
            elif not state.held and now - state.made_at >= SETTLE:
                undelivered.append(start)
        failed = sorted(start for start, s in known.items() if s.failed)
        if missing:
            since = became_due(org, missing[0], monthly, grace)
            verdict.problems.append(
                f"missing {_unit(monthly, len(missing))}: {spans(missing, monthly)} "
                f"(overdue since {since:%Y-%m-%d %H:%M} UTC)"
            )
            first, last = period_label(missing[0], monthly), period_label(missing[-1], monthly)
            verdict.to_do.append(
                f"backfill {first}{f' .. {last}' if last != first else ''} of {org.id}"
            )
        if failed:
            verdict.problems.append(
                f"latest run failed for {_unit(monthly, len(failed))}: {spans(failed, monthly)}"
            )
            verdict.to_do.append("read the failed run, fix its cause, run those periods again")
        if undelivered:
            verdict.problems.append(
                f"not at the destination: {_unit(monthly, len(undelivered))}: "
                f"{spans(undelivered, monthly)}"
            )
            verdict.to_do.append("check the delivery runs and the target")
    if waiting:
        verdict.notes.append(f"{waiting} pairs wait for permission ({blocked})")
    verdict.fine = not verdict.problems
    return verdict
