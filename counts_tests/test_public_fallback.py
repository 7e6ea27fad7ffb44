"""When a Dagster internal the platform uses differs (after a Dagster upgrade), it falls back to
Dagster's public behaviour: the export and delivery tests pass that way, each fallback gives
what the internal gives, and the change is announced once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings

import dagster as dg

from counts_assets.defs.exports.jobs import daily_export_job
from counts_assets.defs.shared import dagster_internals
from counts_assets.defs.shared.cadence import DAILY, MONTHLY
from counts_assets.defs.shared.runs import IN_FLIGHT, export_runs
from counts_tests.dagster_processes import REPO


def test_the_export_and_delivery_tests_pass_on_dagsters_public_behaviour():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "counts_tests/test_dagster_exports.py",
            "counts_tests/test_delivery_states.py",
        ],
        cwd=REPO,
        env=os.environ | {"COUNTS_DAGSTER_INTERNALS": "false"},
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def test_an_internal_that_differs_is_announced_once_and_left_alone(monkeypatch):
    def asset_materialization(step_context, materialization):  # no batch_metadata any more
        raise AssertionError("not called")

    monkeypatch.setattr(dg.DagsterEvent, "asset_materialization", asset_materialization)
    dagster_internals._batch_metadata_type.cache_clear()
    dagster_internals.announce_fallback.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert dagster_internals._batch_metadata_type() is None
            dagster_internals._batch_metadata_type.cache_clear()
            assert dagster_internals._batch_metadata_type() is None
        warning = dagster_internals.DagsterInternalsWarning
        said = [str(w.message) for w in caught if w.category is warning]
        assert len(said) == 1 and "takes no batch_metadata" in said[0]
    finally:
        dagster_internals._batch_metadata_type.cache_clear()
        dagster_internals.announce_fallback.cache_clear()


def _add_run(instance: dg.DagsterInstance, job_name: str, status, selection=None) -> str:
    run = dg.DagsterRun(
        job_name=job_name, status=status, asset_selection=frozenset(selection or ())
    )
    instance.add_run(run)
    return run.run_id


def test_the_runs_that_make_a_cadences_pairs_are_the_same_without_dagsters_job_name(
    monkeypatch,
):
    with dg.instance_for_test() as instance:
        asset_job = dagster_internals.asset_job_name()
        assert asset_job  # Dagster's name for the asset pages' job, read where it is defined
        failed = dg.DagsterRunStatus.FAILURE
        wanted = {
            _add_run(instance, daily_export_job.name, failed),
            _add_run(instance, asset_job, failed, [DAILY.summary, DAILY.needs]),
        }
        _add_run(instance, asset_job, failed, [MONTHLY.summary])  # another cadence's
        _add_run(instance, "delivery_job", failed)
        _add_run(instance, daily_export_job.name, dg.DagsterRunStatus.SUCCESS)

        def found() -> set[str]:
            return {
                r.dagster_run.run_id
                for r in export_runs(instance, daily_export_job.name, DAILY.summary, [failed])
            }

        assert found() == wanted
        monkeypatch.setenv("COUNTS_DAGSTER_INTERNALS", "false")
        assert dagster_internals.asset_job_name() is None
        assert found() == wanted
        assert not export_runs(instance, daily_export_job.name, DAILY.summary, IN_FLIGHT)


def test_a_run_is_tagged_only_where_dagster_can_and_says_so(monkeypatch):
    with dg.instance_for_test() as instance:
        run_id = _add_run(instance, "delivery_job", dg.DagsterRunStatus.STARTED)
        assert dagster_internals.tag_run(instance, run_id, {"counts/org": "a"})
        assert instance.get_run_by_id(run_id).tags["counts/org"] == "a"

        monkeypatch.setenv("COUNTS_DAGSTER_INTERNALS", "false")
        assert not dagster_internals.tag_run(instance, run_id, {"counts/org": "b"})
        assert instance.get_run_by_id(run_id).tags["counts/org"] == "a"

        monkeypatch.delenv("COUNTS_DAGSTER_INTERNALS")
        monkeypatch.setattr(dg.DagsterInstance, "add_run_tags", None)  # as if Dagster had none
        dagster_internals.announce_fallback.cache_clear()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                assert not dagster_internals.tag_run(instance, run_id, {"counts/org": "b"})
            assert [str(w.message) for w in caught if "add_run_tags" in str(w.message)]
        finally:
            dagster_internals.announce_fallback.cache_clear()


def test_the_newest_record_ids_are_the_same_read_either_way(monkeypatch):
    from counts_assets.defs.shared.records import latest_ids

    key = dg.AssetKey("pairs")
    with dg.instance_for_test() as instance:
        for partition in ("a", "b", "a", "c"):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=key, partition=partition)
            )
        grouped = dict(latest_ids(instance, key))
        assert sorted(grouped) == ["a", "b", "c"]
        assert grouped["a"] > grouped["b"]
        monkeypatch.setenv("COUNTS_DAGSTER_INTERNALS", "false")
        assert dict(latest_ids(instance, key)) == grouped
        assert dict(latest_ids(instance, key, ["a", "c"])) == {p: grouped[p] for p in ("a", "c")}


def test_without_the_event_logs_it_extends_the_exports_still_load():
    script = (
        "import dagster._core.storage.event_log as storage\n"
        "import dagster_postgres.utils as postgres\n"
        "del storage.SqliteEventLogStorage\n"
        "del postgres.pg_url_from_config\n"
        "from counts_assets.defs.shared import dagster_internals\n"
        "import counts_assets.definitions\n"
        "for name in ('BatchedSqliteEventLogStorage', 'PlannedPostgresEventLogStorage'):\n"
        "    try:\n"
        "        getattr(dagster_internals, name)\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    sqlite, postgres = done.stdout.splitlines()
    assert "remove event_log_storage from $DAGSTER_HOME/dagster.yaml" in sqlite
    assert "replace the three storages with Dagster's own" in postgres


def test_only_the_internals_module_reaches_past_dagsters_public_surface():
    reaches = re.compile(
        r"dagster\._|dagster_postgres\.utils|\b(add_run_tags|all_logs|"
        r"get_latest_storage_id_by_partition|_step_execution_context|__ASSET_JOB)\b"
    )
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "counts_assets").rglob("*.py"))
        if path.name != "dagster_internals.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if reaches.search(line)
    ]
    assert found == []
