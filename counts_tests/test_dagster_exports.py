"""Wiring: the jobs of `defs` materialize daily, monthly and ranged partitions into a temporary
DAGSTER_HOME, with per-partition metadata, checks, and clear failures."""

from __future__ import annotations

import datetime as dt
import hashlib

import dagster as dg
import pytest
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from counts_assets.definitions import build_defs, defs
from counts_assets.defs.exports.assets import daily_exports
from counts_assets.defs.shared.records import latest_records
from counts_assets.defs.shared.resources import OrgRegistry
from counts_tests.golden_store import GOLDEN_DIR
from counts_tests.platform import platform_on


@pytest.fixture
def platform(tmp_path):
    with platform_on(tmp_path) as platform:
        yield platform


def materialization(instance, asset, partition):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]),
        limit=10,
    ).records
    assert len(records) == 1, (asset, partition, len(records))
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_definitions_expose_the_contract_names():
    assert {j.name for j in defs.resolve_all_job_defs()} >= {
        "daily_export_job",
        "monthly_reconciliation_job",
    }
    sensor = defs.resolve_sensor_def("org_registry_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    daily = defs.resolve_job_def("daily_export_job").partitions_def
    assert daily.get_partition_key_from_str("2026-10-15|gateway211").keys_by_dimension == {
        "date": "2026-10-15",
        "org": "gateway211",
    }


def test_daily_partition(platform):
    instance, export_dir = platform.instance, platform.export_dir
    result = platform.run("daily_export_job", "2026-03-08|testorg")
    assert result.success
    made = {}
    for kind in ("summary", "needs"):
        name = f"testorg_daily_2026-03-08_{kind}.csv"
        made[kind] = export_dir / "testorg" / "daily" / name
        assert made[kind].read_bytes() == (GOLDEN_DIR / name).read_bytes()
    # The summary file's record is the pair's record: everything about both files.
    meta = materialization(instance, "daily_summary_file", "2026-03-08|testorg")
    assert meta["status"] == "published"
    assert meta["path"] == str(made["summary"]) and meta["needs_path"] == str(made["needs"])
    assert meta["sha256"] == hashlib.sha256(made["summary"].read_bytes()).hexdigest()
    assert meta["needs_sha256"] == hashlib.sha256(made["needs"].read_bytes()).hexdigest()
    assert meta["included_records"] == 3 and meta["total_calls"] == 3
    assert meta["total_services"] == 3 and meta["total_needs"] == 6
    assert meta["rows_written"] == 3 and meta["needs_rows_written"] == 5
    assert meta["needs_left_out"] == 2 and meta["invalid_zip_codes"] == 1
    assert meta["unmapped_answers"] == 1
    assert "| 2026-03-08 | 1 | 2 | v2 |" in meta["preview"]
    # Every partition of the run ended well: the other three are recorded for its range.
    for asset in ("daily_raw_contacts", "daily_mapped_demographics"):
        assert materialization(instance, asset, "2026-03-08|testorg")["partitions_in_the_run"] == 1
    needs = materialization(instance, "daily_needs_file", "2026-03-08|testorg")
    assert needs["pairs_published_by_the_run"] == 1
    # What the UI shows: the pair is not older than its upstream records, so not "unsynced".
    resolver = get_stale_status_resolver(instance, [daily_exports])
    for asset in ("daily_summary_file", "daily_needs_file"):
        status = resolver.get_status(dg.AssetKey(asset), "2026-03-08|testorg")
        assert status == StaleStatus.FRESH, asset

    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["taxonomy_codes_valid"].passed is False
    assert checks["taxonomy_codes_valid"].severity == dg.AssetCheckSeverity.WARN
    assert "BD1800" in checks["taxonomy_codes_valid"].metadata["needs_left_out"].value
    assert "Carrier pigeon" in (
        checks["demographic_answers_mapped"].metadata["unmapped_answers"].value
    )
    assert checks["source_values_readable"].passed is False  # record 1008
    assert checks["files_pass_schema"].passed is True


def test_monthly_partition(platform):
    instance, export_dir = platform.instance, platform.export_dir
    assert platform.run("monthly_reconciliation_job", "2026-03-01|testorg").success
    for kind in ("summary", "needs"):
        name = f"testorg_monthly_2026-03_{kind}.csv"
        assert (export_dir / "testorg" / "monthly" / name).read_bytes() == (
            GOLDEN_DIR / name
        ).read_bytes()
    meta = materialization(instance, "monthly_summary_file", "2026-03-01|testorg")
    assert meta["first_call_date"] == "2026-03-07" and meta["last_call_date"] == "2026-03-31"


def test_multi_day_multi_org_range_in_one_run(platform):
    instance, export_dir = platform.instance, platform.export_dir
    result = platform.run("daily_export_job", "2026-03-05|testorg", "2026-03-10|otherorg")
    assert result.success
    assert len(instance.get_run_records()) == 1
    made = sorted(p.name for p in export_dir.rglob("*.csv"))
    assert len(made) == 2 * (4 + 6)  # testorg from share_from 03-07, otherorg every day
    assert (export_dir / "testorg/daily/testorg_daily_2026-03-08_needs.csv").read_bytes() == (
        GOLDEN_DIR / "testorg_daily_2026-03-08_needs.csv"
    ).read_bytes()
    assert (export_dir / "otherorg/daily/otherorg_daily_2026-03-08_needs.csv").read_text() == (
        "Call Date,Zip Code,Taxonomy Code,Count,Need Was Unmet,Age,Gender,Ethnicity,"
        "Children In Household,Income Level,Source,Call Report Num\n"
        "2026-03-08,,BD-1800.2000,1,False,,,,,,,1002\n"
    )
    skipped = materialization(instance, "daily_summary_file", "2026-03-06|testorg")
    assert skipped == {
        "status": "skipped",
        "reason": "no file: 2026-03-06 is before testorg's share_from 2026-03-07",
    }
    for asset in ("daily_raw_contacts", "daily_mapped_demographics", "daily_needs_file"):
        for day in range(5, 11):
            for org in ("testorg", "otherorg"):
                materialization(instance, asset, f"2026-03-{day:02d}|{org}")


def test_a_range_over_an_org_without_a_valid_file_makes_the_others_and_succeeds(platform):
    """An org the run covers but the registry rejects (or no longer holds) fails nothing: its
    partitions are recorded as not made, saying why, and the others are made."""
    instance, export_dir, orgs_dir = platform.instance, platform.export_dir, platform.orgs_dir
    (orgs_dir / "badorg.yaml").write_text("id: badorg\nname: Bad\n", encoding="utf-8")
    instance.add_dynamic_partitions("orgs", ["badorg"])
    result = platform.run("daily_export_job", "2026-03-08|testorg", "2026-03-08|badorg")
    assert result.success
    not_made = materialization(instance, "daily_summary_file", "2026-03-08|badorg")
    assert not_made["status"] == "not_made"
    assert "badorg has no valid organization file in the registry" in not_made["reason"]
    assert "badorg.yaml: timezone: required, missing" in not_made["reason"]
    assert (export_dir / "testorg/daily/testorg_daily_2026-03-08_summary.csv").exists()
    assert materialization(instance, "daily_summary_file", "2026-03-08|otherorg")["status"] == (
        "published"
    )
    # Recorded pair by pair: the published ones with their own facts, badorg's as not made.
    needs = materialization(instance, "daily_needs_file", "2026-03-08|testorg")
    assert (
        needs["sha256"]
        == hashlib.sha256(
            (export_dir / "testorg/daily/testorg_daily_2026-03-08_needs.csv").read_bytes()
        ).hexdigest()
    )
    assert needs["rows_written"] == 5 and needs["needs_left_out"] == 2
    for asset in ("daily_raw_contacts", "daily_mapped_demographics", "daily_needs_file"):
        assert materialization(instance, asset, "2026-03-08|badorg")["status"] == "not_made"
    assert not list(export_dir.glob("badorg/**/*.csv"))


def test_no_personal_data_reaches_files_logs_or_metadata(platform, capfd):
    export_dir, home = platform.export_dir, platform.home
    assert platform.run("daily_export_job", "2026-03-01|testorg", "2026-03-10|otherorg").success
    assert platform.run(
        "monthly_reconciliation_job", "2026-03-01|testorg", "2026-03-01|otherorg"
    ).success
    captured = capfd.readouterr()
    places = {"stdout/stderr": (captured.out + captured.err).encode()}
    for folder in (export_dir, home):
        for path in folder.rglob("*"):
            if path.is_file():
                places[str(path)] = path.read_bytes()
    assert len(places) > 10
    leaks = [where for where, data in places.items() if b"CANARY" in data]
    assert leaks == []


def test_a_pair_that_cannot_be_written_fails_alone_and_the_run_lists_it(platform):
    instance, export_dir = platform.instance, platform.export_dir
    blocked = export_dir / "testorg/daily/testorg_daily_2026-03-08_needs.csv"
    blocked.mkdir(parents=True)  # a folder where the needs file must go
    result = platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-08|otherorg")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.user_failure_data.description
    assert "testorg 2026-03-08" in message and str(blocked) in message
    assert (
        blocked.is_dir() and not (blocked.parent / "testorg_daily_2026-03-08_summary.csv").exists()
    )
    made = latest_records(
        instance,
        dg.AssetKey("daily_summary_file"),
        ["2026-03-07|testorg", "2026-03-08|testorg", "2026-03-07|otherorg", "2026-03-08|otherorg"],
    )
    assert sorted(made) == ["2026-03-07|otherorg", "2026-03-07|testorg", "2026-03-08|otherorg"]
    # The range was read and mapped; the needs file is recorded only where it was published.
    every = {
        "2026-03-07|testorg",
        "2026-03-08|testorg",
        "2026-03-07|otherorg",
        "2026-03-08|otherorg",
    }
    for asset in ("daily_raw_contacts", "daily_mapped_demographics"):
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == every
    needs_made = instance.get_materialized_partitions(dg.AssetKey("daily_needs_file"))
    assert needs_made == every - {"2026-03-08|testorg"}
    needs = materialization(instance, "daily_needs_file", "2026-03-08|otherorg")
    assert (
        needs["sha256"]
        == made["2026-03-08|otherorg"].asset_materialization.metadata["needs_sha256"].value
    )


def step_failure(events) -> str:
    kinds = [e.event_type_value for e in events]
    assert "STEP_UP_FOR_RETRY" not in kinds and "STEP_RESTARTED" not in kinds  # not retried
    failure = next(e for e in events if e.event_type_value == "STEP_FAILURE")
    return failure.step_failure_data.user_failure_data.description


@pytest.mark.parametrize(
    ("taken", "by", "what"),
    [
        ("testorg", "file", "it exists and is not a folder"),
        ("testorg/daily", "file", "it exists and is not a folder"),
        (".pairs/testorg/daily", "file", "it exists and is not a folder"),
        (".pairs/testorg/daily/2026-03-08.lock", "folder", "it is a folder where a file must be"),
    ],
    ids=["org folder", "cadence folder", "locks folder", "lock"],
)
def test_a_path_taken_by_something_else_fails_the_pair_once_naming_path_and_rule(
    platform, taken, by, what
):
    """A folder or file in the way stays there until someone moves it: retrying would only
    delay the failure by three minutes."""
    path = platform.export_dir / taken
    path.parent.mkdir(parents=True, exist_ok=True)
    if by == "file":
        path.write_text("in the way\n")
    else:
        path.mkdir()
    message = step_failure(platform.first_attempt("daily_export_job", "2026-03-08|testorg"))
    assert f"testorg 2026-03-08: {path}: not published, {what}; the previous pair stays" in (
        message
    )


def test_an_unexpected_error_in_an_export_fails_once_naming_its_kind(platform):
    """What a bug looks like to the step: an error no retry can pass (here a registry whose
    first date is not a date)."""
    platform.resources["org_registry"] = OrgRegistry(
        orgs_dir=str(platform.orgs_dir), first_date="2025-02-30"
    )
    platform.defs = build_defs(platform.resources)
    message = step_failure(platform.first_attempt("daily_export_job", "2026-03-08|testorg"))
    assert message == (
        "The export stopped: an unexpected error (ValueError); it would fail the same way: not "
        "retried. Pairs recorded before it stay published."
    )


def test_a_period_before_a_future_share_from_is_recorded_as_before_share_from(tmp_path):
    """Today's partition, for an org that starts sharing next week: not "not ended" (a reason
    that stops being true at midnight), but before share_from, which stays true."""
    today = dt.datetime.now(dt.UTC).date()
    with platform_on(tmp_path) as platform:
        org_file = platform.orgs_dir / "testorg.yaml"
        org_file.write_text(
            org_file.read_text().replace(
                "share_from: 2026-03-07", f"share_from: {today + dt.timedelta(days=7)}"
            )
        )
        assert platform.run("daily_export_job", f"{today}|testorg").success
        (record,) = platform.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("daily_summary_file"), asset_partitions=[f"{today}|testorg"]
            ),
            limit=1,
        ).records
        metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
        assert metadata["status"] == "skipped"
        assert metadata["reason"].startswith(f"no file: {today} is before testorg's share_from")
