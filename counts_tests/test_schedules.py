"""Schedules (§7): exactly the due partitions, each once, per org time zone, with catch-up."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from counts_assets.core.due import due_days, due_months
from counts_assets.definitions import defs
from counts_assets.defs.exports.schedules import (
    SCHEDULE_NAME_TAG,
    daily_export_schedule,
    monthly_reconciliation_schedule,
    per_period,
)
from counts_assets.defs.shared.cadence import DAILY, MONTHLY
from counts_assets.defs.shared.resources import OrgRegistry
from counts_assets.defs.shared.runs import IN_FLIGHT, partitions_of
from counts_tests.factories import make_org
from counts_tests.platform import platform_on

UTC = dt.UTC
GRACE = dt.timedelta(minutes=60)
FIRST = dt.date(2025, 1, 1)
CHICAGO = make_org(id="chicago211", timezone="America/Chicago", share_from="2026-01-01")
NEW_YORK = make_org(id="newyork211", timezone="America/New_York", share_from="2026-01-01")
HONOLULU = make_org(id="honolulu211", timezone="Pacific/Honolulu", share_from="2026-01-01")


def newest_due(org, instant: str) -> dt.date | None:
    days = due_days([org], dt.datetime.fromisoformat(instant), GRACE, FIRST, lookback=1)
    return days[0][1] if days else None


@pytest.mark.parametrize(
    ("org", "instant", "newest"),
    [
        # Chicago, standard time: 2026-01-15 ends 06:00Z on the 16th, due 07:00Z.
        (CHICAGO, "2026-01-16T06:59:59+00:00", "2026-01-14"),
        (CHICAGO, "2026-01-16T07:00:00+00:00", "2026-01-15"),
        # Chicago, spring forward: 2026-03-08 is 23 hours, ends 05:00Z on the 9th.
        (CHICAGO, "2026-03-09T05:59:59+00:00", "2026-03-07"),
        (CHICAGO, "2026-03-09T06:00:00+00:00", "2026-03-08"),
        # Chicago, fall back: 2026-11-01 is 25 hours, ends 06:00Z on the 2nd.
        (CHICAGO, "2026-11-02T06:59:59+00:00", "2026-10-31"),
        (CHICAGO, "2026-11-02T07:00:00+00:00", "2026-11-01"),
        # New York around both changes.
        (NEW_YORK, "2026-03-09T04:59:59+00:00", "2026-03-07"),
        (NEW_YORK, "2026-03-09T05:00:00+00:00", "2026-03-08"),
        (NEW_YORK, "2026-11-02T05:59:59+00:00", "2026-10-31"),
        (NEW_YORK, "2026-11-02T06:00:00+00:00", "2026-11-01"),
        # Honolulu (UTC-10, no DST): five to six hours after New York.
        (HONOLULU, "2026-07-02T10:59:59+00:00", "2026-06-30"),
        (HONOLULU, "2026-07-02T11:00:00+00:00", "2026-07-01"),
    ],
)
def test_a_day_is_due_one_grace_period_after_local_midnight(org, instant, newest):
    assert newest_due(org, instant) == dt.date.fromisoformat(newest)


def test_never_before_share_from_and_never_before_first_date():
    org = make_org(share_from="2026-10-14")
    now = dt.datetime(2026, 10, 20, 12, tzinfo=UTC)
    assert [d.isoformat() for _, d in due_days([org], now, GRACE, FIRST)] == [
        "2026-10-19",
        "2026-10-18",
        "2026-10-17",
        "2026-10-16",
        "2026-10-15",
        "2026-10-14",
    ]
    assert due_days([org], now, GRACE, dt.date(2026, 10, 18)) == [
        (org.id, dt.date(2026, 10, 19)),
        (org.id, dt.date(2026, 10, 18)),
    ]


@pytest.mark.parametrize(
    ("org", "just_before", "at"),
    [
        (CHICAGO, "2026-11-01T05:59:59+00:00", "2026-11-01T06:00:00+00:00"),  # CDT -5, +1h
        (NEW_YORK, "2026-11-01T04:59:59+00:00", "2026-11-01T05:00:00+00:00"),
        (HONOLULU, "2026-11-01T10:59:59+00:00", "2026-11-01T11:00:00+00:00"),
        (CHICAGO, "2026-04-01T05:59:59+00:00", "2026-04-01T06:00:00+00:00"),
    ],
)
def test_a_month_is_due_on_the_first_in_the_org_zone(org, just_before, at):
    before = due_months([org], dt.datetime.fromisoformat(just_before), GRACE, FIRST)
    after = due_months([org], dt.datetime.fromisoformat(at), GRACE, FIRST)
    month = dt.datetime.fromisoformat(at).date().replace(day=1)
    ended = (month - dt.timedelta(days=1)).replace(day=1)
    assert (org.id, ended) not in before and (org.id, ended) in after
    assert len(after) == 2


def test_a_month_containing_share_from_is_due_but_not_earlier_ones():
    org = make_org(share_from="2026-09-20")
    due = due_months([org], dt.datetime(2026, 11, 2, tzinfo=UTC), GRACE, FIRST)
    assert due == [(org.id, dt.date(2026, 10, 1)), (org.id, dt.date(2026, 9, 1))]
    due = due_months([org], dt.datetime(2026, 10, 2, tzinfo=UTC), GRACE, FIRST)
    assert due == [(org.id, dt.date(2026, 9, 1))]


# Schedules evaluated with a real instance: the runs they request are recorded like the daemon
# records them (tags of the request plus the schedule's name), so "never twice" is observed.

ORG_FILES = {
    "chicago211": ("America/Chicago", "2026-10-01"),
    "newyork211": ("America/New_York", "2026-10-01"),
    "honolulu211": ("Pacific/Honolulu", "2026-10-01"),
}


@pytest.fixture
def automation(tmp_path):
    orgs_dir = tmp_path / "orgs"
    orgs_dir.mkdir()
    for org_id, (zone, share_from) in ORG_FILES.items():
        (orgs_dir / f"{org_id}.yaml").write_text(
            f"id: {org_id}\nname: {org_id}\ntimezone: {zone}\nshare_from: {share_from}\n"
            "contact_forms: [211 Contact]\ninteraction_filter:\n  all_211: true\n"
        )
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        instance.add_dynamic_partitions("orgs", list(ORG_FILES))
        yield instance, OrgRegistry(orgs_dir=str(orgs_dir), first_date="2025-01-01")


def evaluate(schedule, instance, registry, instant: str) -> list[str]:
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=dt.datetime.fromisoformat(instant),
        resources={"org_registry": registry},
        repository_def=defs.get_repository_def(),
    )
    result = schedule.evaluate_tick(context)
    job = defs.resolve_job_def(schedule.job_name)
    cadence = MONTHLY if schedule.name.startswith("monthly") else DAILY
    keys = []
    for request in result.run_requests or []:
        run = instance.create_run_for_job(
            job_def=job,
            run_config=request.run_config,
            tags={**request.tags, SCHEDULE_NAME_TAG: schedule.name},
        )
        covered = partitions_of(run, cadence.partitions_def, instance)
        assert request.partition_key in (None, *covered)
        keys += covered
    return sorted(keys)


def test_daily_schedule_requests_each_org_at_its_own_time_and_once(automation):
    instance, registry = automation
    first = evaluate(daily_export_schedule, instance, registry, "2026-10-03T05:00:00+00:00")
    # 05:00Z: New York's Oct 2 ended 04:00Z (due at 05:00Z); Chicago's ends 05:00Z (due 06:00Z).
    assert first == [
        "2026-10-01|chicago211",
        "2026-10-01|honolulu211",
        "2026-10-01|newyork211",
        "2026-10-02|newyork211",
    ]
    assert evaluate(daily_export_schedule, instance, registry, "2026-10-03T05:15:00+00:00") == []
    assert evaluate(daily_export_schedule, instance, registry, "2026-10-03T06:00:00+00:00") == [
        "2026-10-02|chicago211"
    ]
    assert evaluate(daily_export_schedule, instance, registry, "2026-10-03T10:45:00+00:00") == []
    assert evaluate(daily_export_schedule, instance, registry, "2026-10-03T11:00:00+00:00") == [
        "2026-10-02|honolulu211"
    ]


def test_catch_up_after_a_three_day_outage(automation):
    instance, registry = automation
    evaluate(daily_export_schedule, instance, registry, "2026-10-20T12:00:00+00:00")
    after_outage = evaluate(daily_export_schedule, instance, registry, "2026-10-23T12:00:00+00:00")
    assert after_outage == sorted(
        f"2026-10-{day}|{org}" for day in (20, 21, 22) for org in ORG_FILES
    )


def test_outage_longer_than_the_lookback_leaves_older_days_to_backfill(automation):
    instance, registry = automation
    requested = evaluate(daily_export_schedule, instance, registry, "2026-10-30T12:00:00+00:00")
    assert sorted({k.split("|")[0] for k in requested}) == [
        f"2026-10-{day}" for day in range(23, 30)
    ]


def test_removed_org_file_stops_its_automation(automation, tmp_path):
    instance, registry = automation
    (tmp_path / "orgs" / "honolulu211.yaml").unlink()
    requested = evaluate(daily_export_schedule, instance, registry, "2026-10-03T12:00:00+00:00")
    assert not any("honolulu211" in k for k in requested)


def finish_runs(instance) -> None:
    """The runs requested so far succeed, recording every partition they cover."""
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT)):
        cadence = MONTHLY if run.job_name == "monthly_reconciliation_job" else DAILY
        for key in partitions_of(run, cadence.partitions_def, instance):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    cadence.summary, partition=key, metadata={"status": "published"}
                )
            )
        success = dg.DagsterEvent(
            dg.DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name, message="done"
        )
        instance.report_dagster_event(success, run.run_id)


def month_end_tick(instance, registry, instant: str) -> list[str]:
    """Both schedules at one tick, as the daemon evaluates them; then their runs end."""
    evaluate(daily_export_schedule, instance, registry, instant)
    monthly = evaluate(monthly_reconciliation_schedule, instance, registry, instant)
    finish_runs(instance)
    return monthly


def test_monthly_schedule_on_the_first_in_each_zone_once_after_its_days(automation):
    instance, registry = automation
    for day in range(1, 31):  # October made through the 30th in every zone
        for org_id in ORG_FILES:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    "daily_summary_file", partition=f"2026-10-{day:02}|{org_id}"
                )
            )
    # October ends at 04:00Z in New York (EDT), 05:00Z in Chicago, 10:00Z in Honolulu: at the
    # tick its October 31 comes due, the month waits for that day's run; the next tick makes it.
    assert month_end_tick(instance, registry, "2026-11-01T04:45:00+00:00") == []
    assert month_end_tick(instance, registry, "2026-11-01T05:00:00+00:00") == []
    assert month_end_tick(instance, registry, "2026-11-01T05:15:00+00:00") == [
        "2026-10-01|newyork211"
    ]
    assert month_end_tick(instance, registry, "2026-11-01T06:00:00+00:00") == []
    assert month_end_tick(instance, registry, "2026-11-01T06:15:00+00:00") == [
        "2026-10-01|chicago211"
    ]
    assert month_end_tick(instance, registry, "2026-11-01T11:00:00+00:00") == []
    assert month_end_tick(instance, registry, "2026-11-01T11:15:00+00:00") == [
        "2026-10-01|honolulu211"
    ]
    assert month_end_tick(instance, registry, "2026-11-02T11:00:00+00:00") == []


def test_a_month_does_not_wait_for_a_failed_day_or_one_outside_the_lookback(automation):
    instance, registry = automation
    # Nothing of October was made; at November 10 only Nov 3-9 are in the daily look-back.
    assert evaluate(
        monthly_reconciliation_schedule, instance, registry, "2026-11-10T12:00:00+00:00"
    ) == [f"2026-10-01|{org_id}" for org_id in sorted(ORG_FILES)]
    instance.wipe()
    instance.add_dynamic_partitions("orgs", list(ORG_FILES))
    # At the month end October 31 is requested, and its run fails: the month goes ahead.
    evaluate(daily_export_schedule, instance, registry, "2026-11-01T11:00:00+00:00")
    for run in instance.get_runs():
        instance.report_run_failed(run)
    monthly = evaluate(
        monthly_reconciliation_schedule, instance, registry, "2026-11-01T11:15:00+00:00"
    )
    assert monthly == [f"2026-10-01|{org_id}" for org_id in sorted(ORG_FILES)]


# "Requested once" counts every run: materialized by any run, queued or in progress, or failed
# less than an hour ago.


def test_a_partition_made_by_any_run_is_not_requested(automation):
    instance, registry = automation
    for status in ("published", "skipped"):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "daily_summary_file",
                partition=f"2026-10-0{1 if status == 'published' else 2}|chicago211",
                metadata={"status": status},
            )
        )
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "daily_summary_file",
            partition="2026-10-01|newyork211",
            metadata={"status": "not_ended"},  # made too early: wrote no file, still due
        )
    )
    requested = evaluate(daily_export_schedule, instance, registry, "2026-10-03T12:00:00+00:00")
    assert "2026-10-01|chicago211" not in requested
    assert "2026-10-02|chicago211" not in requested
    assert "2026-10-01|newyork211" in requested


def test_a_partition_in_a_running_backfill_is_not_requested(automation):
    instance, registry = automation
    job = defs.resolve_job_def("daily_export_job")
    instance.create_run_for_job(
        job_def=job,
        tags={
            "dagster/asset_partition_range_start": "2026-09-25|chicago211",
            "dagster/asset_partition_range_end": "2026-10-02|newyork211",
        },
    )
    requested = evaluate(daily_export_schedule, instance, registry, "2026-10-03T12:00:00+00:00")
    assert requested == ["2026-10-01|honolulu211", "2026-10-02|honolulu211"]


def test_a_failed_partition_is_requested_again_at_most_once_an_hour(automation):
    instance, registry = automation
    first = evaluate(daily_export_schedule, instance, registry, "2026-10-03T12:00:00+00:00")
    assert "2026-10-02|chicago211" in first
    for run in instance.get_runs():
        instance.report_run_failed(run)
    again = "2026-10-03T12:45:00+00:00", "2026-10-03T13:00:00+00:00"
    assert evaluate(daily_export_schedule, instance, registry, again[0]) == []
    assert evaluate(daily_export_schedule, instance, registry, again[1]) == first


def test_orgs_due_together_are_requested_as_one_run_per_date():
    order = ["a", "b", "c", "d", "e"]
    day, next_day = dt.date(2026, 10, 1), dt.date(2026, 10, 2)
    pending = [("d", day), ("a", day), ("e", day), ("c", next_day)]
    assert per_period(order, pending) == [(day, ["a", "d", "e"]), (next_day, ["c"])]
    assert per_period(order, []) == []


def test_a_tick_requests_one_run_per_date_naming_the_orgs_due(automation):
    instance, registry = automation
    instance.add_dynamic_partitions("orgs", ["chicago211b"])  # last in partition order
    (Path(registry.orgs_dir) / "chicago211b.yaml").write_text(
        "id: chicago211b\nname: b\ntimezone: America/Chicago\nshare_from: 2026-10-01\n"
        "contact_forms: [211 Contact]\ninteraction_filter:\n  all_211: true\n"
    )
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=dt.datetime.fromisoformat("2026-10-03T06:00:00+00:00"),
        resources={"org_registry": registry},
        repository_def=defs.get_repository_def(),
    )
    requests = daily_export_schedule.evaluate_tick(context).run_requests
    shown = sorted(
        (
            r.tags["dagster/asset_partition_range_start"],
            r.tags["dagster/asset_partition_range_end"],
            r.run_config["ops"]["daily_exports"]["config"]["orgs"],
        )
        for r in requests
    )
    # Oct 1 is due for all four orgs; Oct 2 for all but Honolulu (its day ends at 10:00Z),
    # which sits inside the range and is left out by name.
    assert shown == [
        (
            "2026-10-01|chicago211",
            "2026-10-01|chicago211b",
            ["chicago211", "newyork211", "honolulu211", "chicago211b"],
        ),
        (
            "2026-10-02|chicago211",
            "2026-10-02|chicago211b",
            ["chicago211", "newyork211", "chicago211b"],
        ),
    ]


def test_a_run_makes_only_the_orgs_it_names(tmp_path):
    with platform_on(tmp_path) as platform:
        job = platform.defs.resolve_job_def("daily_export_job")
        result = job.execute_in_process(
            instance=platform.instance,
            tags={
                "dagster/asset_partition_range_start": "2026-03-08|testorg",
                "dagster/asset_partition_range_end": "2026-03-08|otherorg",
            },
            run_config={"ops": {"daily_exports": {"config": {"orgs": ["otherorg"]}}}},
            raise_on_error=False,
        )
        assert result.success
        made = sorted(p.name for p in platform.export_dir.rglob("*.csv"))
        assert made == [
            "otherorg_daily_2026-03-08_needs.csv",
            "otherorg_daily_2026-03-08_summary.csv",
        ]
        run = platform.instance.get_run_by_id(result.run_id)
        assert partitions_of(run, DAILY.partitions_def, platform.instance) == {
            "2026-03-08|otherorg"
        }
