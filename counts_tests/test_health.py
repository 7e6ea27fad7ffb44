"""Is every centre fine? The health view judged from what is due, made, held at the destination and
failed: its rules directly, then each case through real runs, deliveries and a real instance."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest

from counts_assets import onboarding
from counts_assets.core.health import PeriodState, became_due, due_periods, judge, spans
from counts_assets.core.orgs.models import Organization
from counts_assets.definitions import build_defs
from counts_assets.defs.exports.schedules import (
    SCHEDULE_NAME_TAG,
    daily_export_schedule,
    monthly_reconciliation_schedule,
)
from counts_assets.defs.health.view import fleet_health, report, summary_line
from counts_assets.defs.organizations.sensors import org_registry_sensor
from counts_tests.delivery_helpers import deliver, events, tick
from counts_tests.golden_store import ORG_YAML
from counts_tests.platform import platform_on

UTC = dt.UTC
GRACE = dt.timedelta(minutes=60)
FIRST = dt.date(2025, 1, 1)
# Chicago's March 31 ends at 05:00Z on April 1: the day and the month are due at 06:00Z.
APRIL_1 = dt.datetime(2026, 4, 1, 12, tzinfo=UTC)


def org(**changes) -> Organization:
    values = {
        "id": "testorg",
        "name": "Test",
        "timezone": "America/Chicago",
        "share_from": "2026-03-07",
        "contact_forms": ["211 Contact"],
        "interaction_filter": {"all_211": True},
        "permission": {"signed_on": "2026-02-20", "document": "LTR-1"},
    }
    return Organization.model_validate(values | changes)


# The rules, Dagster-free.


def test_due_periods_run_from_share_from_through_the_last_ended_period_plus_grace():
    chicago = org()
    assert due_periods(chicago, APRIL_1, GRACE, FIRST, monthly=False)[::24] == [
        dt.date(2026, 3, 7),
        dt.date(2026, 3, 31),
    ]
    just_before = dt.datetime(2026, 4, 1, 5, 59, tzinfo=UTC)
    assert due_periods(chicago, just_before, GRACE, FIRST, monthly=False)[-1] == dt.date(
        2026, 3, 30
    )
    assert due_periods(chicago, just_before, GRACE, FIRST, monthly=True) == []
    assert due_periods(chicago, APRIL_1, GRACE, FIRST, monthly=True) == [dt.date(2026, 3, 1)]
    assert became_due(chicago, dt.date(2026, 3, 31), False, GRACE) == dt.datetime(
        2026, 4, 1, 6, tzinfo=UTC
    )
    future = org(share_from="2026-05-01")
    assert due_periods(future, APRIL_1, GRACE, FIRST, monthly=False) == []


def test_spans_name_each_range_of_consecutive_periods():
    days = [dt.date(2026, 3, d) for d in (6, 7, 8, 12, 20, 21, 25, 28)]
    assert spans(days[:4], False) == "2026-03-06 .. 2026-03-08, 2026-03-12"
    assert spans(days, False) == (
        "2026-03-06 .. 2026-03-08, 2026-03-12, 2026-03-20 .. 2026-03-21 and 2 more ranges"
    )
    assert spans([dt.date(2026, 1, 1), dt.date(2026, 2, 1)], True) == "2026-01 .. 2026-02"


def _states(made: dict[dt.date, PeriodState]) -> dict[bool, dict[dt.date, PeriodState]]:
    return {False: made, True: {}}


MADE = dt.datetime(2026, 3, 20, tzinfo=UTC)


def test_a_due_day_without_a_pair_is_a_gap_once_it_is_due_for_an_hour_and_no_run_covers_it():
    chicago = org()
    due = {False: [dt.date(2026, 3, 31)], True: []}
    at_due = dt.datetime(2026, 4, 1, 6, 30, tzinfo=UTC)
    assert judge(chicago, _states({}), due, at_due, GRACE).fine  # being made
    late = at_due + dt.timedelta(hours=1)
    verdict = judge(chicago, _states({}), due, late, GRACE)
    assert not verdict.fine
    assert verdict.problems == ["missing 1 day: 2026-03-31 (overdue since 2026-04-01 06:00 UTC)"]
    running = _states({dt.date(2026, 3, 31): PeriodState(in_flight=True)})
    assert judge(chicago, running, due, late, GRACE).fine


def test_a_pair_not_at_the_destination_is_not_fine_unless_it_waits_for_permission():
    due = {False: [dt.date(2026, 3, 8)], True: []}
    states = _states({dt.date(2026, 3, 8): PeriodState(made_at=MADE)})
    just_made = MADE + dt.timedelta(minutes=5)
    assert judge(org(), states, due, just_made, GRACE).fine  # being delivered
    verdict = judge(org(), states, due, APRIL_1, GRACE)
    assert verdict.problems == ["not at the destination: 1 day: 2026-03-08"]
    unsigned = org(permission=None)
    waiting = judge(unsigned, states, due, APRIL_1, GRACE)
    assert waiting.fine and waiting.notes[0].startswith("1 pairs wait for permission (")
    held = _states({dt.date(2026, 3, 8): PeriodState(made_at=MADE, held=True)})
    assert judge(org(), held, due, APRIL_1, GRACE).fine


def test_a_failed_period_is_not_fine_whatever_else_holds():
    states = _states({dt.date(2026, 3, 8): PeriodState(made_at=MADE, held=True, failed=True)})
    verdict = judge(org(), states, {False: [dt.date(2026, 3, 8)], True: []}, APRIL_1, GRACE)
    assert verdict.problems == ["latest run failed for 1 day: 2026-03-08"]


# Through the platform: real runs, deliveries to the outbox, a real instance.


@pytest.fixture
def platform(tmp_path):
    with platform_on(tmp_path, registered=("testorg",)) as platform:
        (platform.orgs_dir / "otherorg.yaml").unlink()
        platform.cursor = None
        yield platform


def health(platform, now: dt.datetime = APRIL_1) -> dict:
    registry = platform.resources["org_registry"].load()
    delivery = platform.resources["delivery"]
    rows = fleet_health(
        platform.instance, registry, now, lambda o: delivery.destination(o.remote_dir), GRACE, FIRST
    )
    print("\n".join(report(rows)))  # the view, in the test log
    return {r.org_id: r for r in rows}


def deliver_all(platform) -> None:
    while requests := tick(platform):
        deliver(platform, requests)


def make(platform, first: str, last: str, monthly: bool = False) -> None:
    job = "monthly_reconciliation_job" if monthly else "daily_export_job"
    assert platform.run(job, f"{first}|testorg", f"{last}|testorg").success


def test_a_week_of_daemon_downtime_turns_fine_into_no_naming_the_gap(platform):
    make(platform, "2026-03-07", "2026-03-24")
    deliver_all(platform)
    before = health(platform, dt.datetime(2026, 3, 25, 12, tzinfo=UTC))["testorg"]
    assert before.fine and before.problem == "-" and before.held_through == "2026-03-24"

    after = health(platform)["testorg"]  # a week later, nothing ran
    assert not after.fine
    assert after.daily_through == "2026-03-24" and after.held_through == "2026-03-24"
    assert after.problem == (
        "missing 7 days: 2026-03-25 .. 2026-03-31 (overdue since 2026-03-26 06:00 UTC); "
        "missing 1 month: 2026-03 (overdue since 2026-04-01 06:00 UTC)"
    )
    assert after.to_do == (
        "backfill 2026-03-25 .. 2026-03-31 of testorg; backfill 2026-03 of testorg"
    )

    make(platform, "2026-03-25", "2026-03-31")
    make(platform, "2026-03-01", "2026-03-01", monthly=True)
    deliver_all(platform)
    caught_up = health(platform)["testorg"]
    assert caught_up.fine and caught_up.held_through == "2026-03-31"
    assert caught_up.monthly_through == "2026-03"


def test_a_gap_in_the_middle_is_named(platform):
    make(platform, "2026-03-07", "2026-03-14")
    make(platform, "2026-03-21", "2026-03-31")
    make(platform, "2026-03-01", "2026-03-01", monthly=True)
    deliver_all(platform)
    row = health(platform)["testorg"]
    assert not row.fine and row.daily_through == "2026-03-31"
    assert (
        row.problem
        == "missing 6 days: 2026-03-15 .. 2026-03-20 (overdue since 2026-03-16 06:00 UTC)"
    )


def test_a_rejected_file_is_a_row_that_is_not_fine_and_both_checks_fail(platform):
    broken = ORG_YAML.replace("id: testorg", "id: brokenorg").replace("timezone:", "time_zone:")
    (platform.orgs_dir / "brokenorg.yaml").write_text(broken)
    row = health(platform)["brokenorg.yaml"]
    assert not row.fine
    assert row.problem.startswith("organization file rejected: ")
    assert "time_zone" in row.problem

    result = platform.run("fleet_health_job", None)
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["every_file_accepted"].passed
    assert checks["every_file_accepted"].metadata["rejected"].value == ["brokenorg.yaml"]
    assert not checks["every_org_fine"].passed
    assert "brokenorg.yaml" in checks["every_org_fine"].metadata["not_fine"].value


def test_a_removed_org_in_a_backfill_range_marks_nobody_not_fine(tmp_path):
    with platform_on(tmp_path) as platform:
        (platform.orgs_dir / "otherorg.yaml").unlink()
        # The range runs over both orgs' partitions; otherorg is no longer registered.
        assert platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-31|otherorg").success
        assert platform.run(
            "monthly_reconciliation_job", "2026-03-01|testorg", "2026-03-01|otherorg"
        ).success
        platform.cursor = None
        deliver_all(platform)
        rows = health(platform)
        assert set(rows) == {"testorg"}
        assert rows["testorg"].fine, rows["testorg"].problem


def test_a_failure_counts_until_a_later_run_of_that_partition_succeeds(platform):
    make(platform, "2026-03-07", "2026-03-31")
    make(platform, "2026-03-01", "2026-03-01", monthly=True)
    deliver_all(platform)
    assert health(platform)["testorg"].fine

    taken = platform.export_dir / "testorg/daily/testorg_daily_2026-03-08_summary.csv"
    taken.unlink()
    taken.mkdir()  # a folder where the file goes: the pair cannot be published
    assert not platform.run("daily_export_job", "2026-03-08|testorg").success
    failed = health(platform)["testorg"]
    assert not failed.fine
    problems = failed.problem.split("; ")
    assert problems[0] == "latest run failed for 1 day: 2026-03-08"
    assert problems[1].startswith("run ") and "testorg 2026-03-08" in problems[1]
    assert "not published" in problems[1]
    # Another partition's success does not clear it; its own does.
    assert platform.run("daily_export_job", "2026-03-09|testorg").success
    assert not health(platform)["testorg"].fine
    taken.rmdir()
    assert platform.run("daily_export_job", "2026-03-08|testorg").success
    deliver_all(platform)
    assert health(platform)["testorg"].fine


def test_share_from_moved_later_keeps_what_was_delivered_and_warns(platform, monkeypatch, capsys):
    make(platform, "2026-03-07", "2026-03-31")
    make(platform, "2026-03-01", "2026-03-01", monthly=True)
    deliver_all(platform)
    org_file = platform.orgs_dir / "testorg.yaml"
    org_file.write_text(org_file.read_text().replace("2026-03-07", "2026-03-15"))
    make(platform, "2026-03-07", "2026-03-14")  # as org_registry_sensor requests: no file now
    assert tick(platform) == []
    assert events(platform, "daily_delivery", "2026-03-07|testorg")[0]["status"] == "delivered"
    row = health(platform)["testorg"]
    assert row.fine and row.held_through == "2026-03-31"
    assert row.problem == (
        "8 pairs delivered before share_from 2026-03-15 (2026-03-07 .. 2026-03-14): "
        "211 Counts still holds them"
    )
    # The check before go-live says so too, reading the same instance.
    monkeypatch.setenv("DAGSTER_HOME", str(platform.home))
    monkeypatch.setenv("COUNTS_SOURCE_URL", platform.source_url)
    monkeypatch.setenv("COUNTS_ORGS_DIR", str(platform.orgs_dir))
    capsys.readouterr()
    onboarding.main([str(org_file)])
    out = capsys.readouterr().out.splitlines()
    assert (
        "WARNING 8 pairs already delivered fall before share_from 2026-03-15 (2026-03-07, "
        "2026-03-08, 2026-03-09 ...): 211 Counts still holds them; moving share_from later "
        "does not remove them"
    ) in out
    moved = org(share_from="2026-03-15")
    assert onboarding.verdict(moved, APRIL_1, delivered_before=8) == (
        "ready to go live, but 8 pairs already delivered fall before share_from"
    )


def test_the_health_asset_alerts_once_per_change_of_state(platform, tmp_path):
    alerts = tmp_path / "alerts.jsonl"

    def sent() -> list[dict]:
        return (
            [json.loads(line) for line in alerts.read_text().splitlines()]
            if alerts.exists()
            else []
        )

    assert platform.run("fleet_health_job", None).success  # testorg has nothing made: not fine
    assert platform.run("fleet_health_job", None).success
    assert [a["fleet_health"] for a in sent()] == [{"testorg": "not fine"}]
    (platform.orgs_dir / "badorg.yaml").write_text("id: [")
    assert platform.run("fleet_health_job", None).success
    assert [a["fleet_health"] for a in sent()][1:] == [{"badorg.yaml": "not fine"}]
    (platform.orgs_dir / "badorg.yaml").unlink()
    result = platform.run("fleet_health_job", None)
    (record,) = result.asset_materializations_for_node("fleet_health")
    assert record.metadata["summary"].value == "0 fine, 1 not: testorg"
    assert [a["fleet_health"] for a in sent()][2:] == []  # a removed file is no longer shown


def test_the_summary_line_names_the_orgs_that_are_not_fine():
    from counts_assets.defs.health.view import OrgHealth

    rows = [OrgHealth("a", True), OrgHealth("b", False, problem="missing 2 days: x; y")]
    assert summary_line(rows) == "1 fine, 1 not: b"
    assert summary_line(rows[:1]) == "1 fine"


# The monthly pair after its days: both schedules tick together at the month end.


def evaluate(platform, schedule, instant: dt.datetime) -> list[dg.RunRequest]:
    context = dg.build_schedule_context(
        instance=platform.instance,
        scheduled_execution_time=instant,
        resources={"org_registry": platform.resources["org_registry"]},
        repository_def=platform.defs.get_repository_def(),
    )
    return list(schedule.evaluate_tick(context).run_requests or [])


def execute(platform, schedule, request: dg.RunRequest) -> None:
    job = platform.defs.resolve_job_def(schedule.job_name)
    assert job.execute_in_process(
        instance=platform.instance,
        partition_key=request.partition_key,
        run_config=request.run_config,
        tags={**request.tags, SCHEDULE_NAME_TAG: schedule.name},
        raise_on_error=False,
    ).success


def march(platform) -> dict:
    return events(platform, "monthly_summary_file", "2026-03-01|testorg")[0]


def test_at_the_month_end_the_monthly_pair_waits_for_its_last_days(platform):
    make(platform, "2026-03-07", "2026-03-30")
    tick_at = dt.datetime(2026, 4, 1, 6, 0, tzinfo=UTC)  # March 31 and March come due together
    daily = evaluate(platform, daily_export_schedule, tick_at)
    monthly = evaluate(platform, monthly_reconciliation_schedule, tick_at)
    assert [r.partition_key for r in daily] == ["2026-03-31|testorg"]
    assert monthly == []  # March 31 is about to be made: the month waits
    for request in daily:
        execute(platform, daily_export_schedule, request)
    next_tick = tick_at + dt.timedelta(minutes=15)
    (request,) = evaluate(platform, monthly_reconciliation_schedule, next_tick)
    execute(platform, monthly_reconciliation_schedule, request)
    made_in_order = march(platform)
    assert made_in_order["days_without_daily_file"] == 0
    # The numbers equal a recomputation: the month made again from the same files.
    make(platform, "2026-03-01", "2026-03-01", monthly=True)
    again = march(platform)
    for total in ("days_without_daily_file", "records_added_late", "records_removed"):
        assert made_in_order[total] == again[total]
    assert made_in_order["reconciliation"] == again["reconciliation"]


def test_a_month_made_before_one_of_its_days_is_made_again(platform):
    make(platform, "2026-03-07", "2026-03-30")
    make(platform, "2026-03-01", "2026-03-01", monthly=True)  # raced ahead of March 31
    assert march(platform)["days_without_daily_file"] == 1
    make(platform, "2026-03-31", "2026-03-31")
    tick_at = dt.datetime(2026, 4, 1, 12, tzinfo=UTC)
    (request,) = evaluate(platform, monthly_reconciliation_schedule, tick_at)
    execute(platform, monthly_reconciliation_schedule, request)
    assert march(platform)["days_without_daily_file"] == 0
    # Once made after its days, it is not requested again.
    later = tick_at + dt.timedelta(hours=2)
    assert evaluate(platform, monthly_reconciliation_schedule, later) == []


def test_the_registry_sensor_fails_the_file_check_at_once_naming_the_file(platform):
    (platform.orgs_dir / "brokenorg.yaml").write_text("id: brokenorg\ntimezone: Mars/Base\n")
    context = dg.build_sensor_context(instance=platform.instance, resources=platform.resources)
    result = org_registry_sensor(context)
    (check,) = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert check.check_name == "every_file_accepted" and not check.passed
    assert check.metadata["rejected"].value == ["brokenorg.yaml"]
    assert check.description.startswith("1 organization files rejected: brokenorg.yaml: name: ")
    assert "timezone: 'Mars/Base' is not an IANA time zone name" in check.description
    # Nothing changed: not evaluated again at the next tick.
    again = org_registry_sensor(
        dg.build_sensor_context(
            instance=platform.instance, resources=platform.resources, cursor=context.cursor
        )
    )
    assert not any(
        isinstance(e, dg.AssetCheckEvaluation) for e in getattr(again, "asset_events", [])
    )


def test_the_facts_cache_changes_no_answer_and_a_broken_one_is_ignored(platform, tmp_path):
    make(platform, "2026-03-07", "2026-03-20")
    deliver_all(platform)
    registry = platform.resources["org_registry"].load()
    delivery = platform.resources["delivery"]

    def rows(cache_dir):
        return [
            vars(r)
            for r in fleet_health(
                platform.instance,
                registry,
                APRIL_1,
                lambda o: delivery.destination(o.remote_dir),
                GRACE,
                FIRST,
                cache_dir=cache_dir,
            )
        ]

    cache = tmp_path / "cache"
    uncached = rows(None)
    assert rows(cache) == uncached and len(list(cache.iterdir())) == 2  # the daily assets
    assert rows(cache) == uncached  # read from the cache
    make(platform, "2026-03-21", "2026-03-31")  # newer records: read, the cache follows
    deliver_all(platform)
    assert rows(cache) == rows(None) != uncached
    for path in cache.iterdir():
        path.write_text("{not json")
    assert rows(cache) == rows(None)


def test_a_failed_backfill_from_the_asset_pages_counts_too(platform):
    """A materialization or backfill launched from an asset's page runs as Dagster's implicit
    asset job, not as daily_export_job: its failure counts all the same."""
    make(platform, "2026-03-07", "2026-03-31")
    make(platform, "2026-03-01", "2026-03-01", monthly=True)
    deliver_all(platform)
    taken = platform.export_dir / "testorg/daily/testorg_daily_2026-03-08_summary.csv"
    taken.unlink()
    taken.mkdir()
    job = platform.defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=platform.instance,
        partition_key="2026-03-08|testorg",
        asset_selection=[
            dg.AssetKey(f"daily_{name}")
            for name in ("raw_contacts", "mapped_demographics", "summary_file", "needs_file")
        ],
        raise_on_error=False,
    )
    assert not result.success and result.dagster_run.job_name == "__ASSET_JOB"
    row = health(platform)["testorg"]
    assert not row.fine and row.problem.startswith("latest run failed for 1 day: 2026-03-08")


def test_a_month_made_before_its_days_is_named_until_made_again(platform):
    make(platform, "2026-03-07", "2026-03-30")
    make(platform, "2026-03-01", "2026-03-01", monthly=True)
    make(platform, "2026-03-31", "2026-03-31")
    deliver_all(platform)
    row = health(platform)["testorg"]
    assert row.fine  # the files are all made and delivered; the diff is what is out of date
    assert row.problem == (
        "monthly 2026-03 made before some of its daily pairs: its reconciliation diff is out "
        "of date"
    )
    assert row.to_do == "make 2026-03 of testorg again"
    make(platform, "2026-03-01", "2026-03-01", monthly=True)
    assert health(platform)["testorg"].problem == "-"


def test_an_alert_hook_that_is_down_does_not_keep_the_view_stale(platform):
    platform.resources["alerts"] = type(platform.resources["alerts"])(url="http://127.0.0.1:9/x")
    platform.defs = build_defs(platform.resources)
    result = platform.run("fleet_health_job", None)
    assert result.success
    (record,) = result.asset_materializations_for_node("fleet_health")
    assert record.metadata["not_fine"].value == ["testorg"]
    logged = [e.user_message for e in platform.instance.all_logs(result.run_id)]
    assert any(m.startswith("COUNTS_ALERT_URL: the change was not sent") for m in logged)
