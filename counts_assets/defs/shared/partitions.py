"""Partitions: `date` x `org` daily and `month` x `org` monthly, where `org` is
the dynamic partition set `orgs`, kept in step with the registry by `org_registry_sensor`."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from counts_assets.core import settings

ORGS_PARTITION_SET = "orgs"
orgs_partitions = dg.DynamicPartitionsDefinition(name=ORGS_PARTITION_SET)

# Today's date is a partition (the contract's "up to today in UTC"): a day that ended in an
# org's zone east of UTC is already complete then.
daily_partitions = dg.MultiPartitionsDefinition(
    {
        "date": dg.DailyPartitionsDefinition(
            start_date=settings.current().first_date.isoformat(), end_offset=1
        ),
        "org": orgs_partitions,
    }
)
# Likewise the current month in UTC is a partition: a month that has ended east of UTC (Guam,
# Auckland, Kiritimati) must be requestable before it ends in UTC.
monthly_partitions = dg.MultiPartitionsDefinition(
    {
        "month": dg.MonthlyPartitionsDefinition(
            start_date=settings.current().first_date.replace(day=1).isoformat(), end_offset=1
        ),
        "org": orgs_partitions,
    }
)


def split_key(partitions_def: dg.MultiPartitionsDefinition, key: str) -> tuple[str, dt.date]:
    """(org_id, period start) of a `2026-10-15|gateway211` style key."""
    dims = partitions_def.get_partition_key_from_str(key).keys_by_dimension
    period = dims.get("date") or dims["month"]
    return dims["org"], dt.date.fromisoformat(period)


def partition_key(monthly: bool, org_id: str, period_start: dt.date) -> str:
    time_dimension = "month" if monthly else "date"
    return dg.MultiPartitionKey({time_dimension: period_start.isoformat(), "org": org_id})
