"""Deployment files stay in step with the repository's instance settings."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import dagster as dg
import yaml

from counts_assets.defs.delivery.jobs import delivery_job
from counts_assets.defs.exports.jobs import daily_export_job, monthly_reconciliation_job
from counts_assets.defs.shared.runs import WORK_TAG
from counts_tests.dagster_processes import REPO


def test_the_postgresql_instance_differs_from_the_embedded_one_only_by_its_storage():
    embedded = yaml.safe_load((REPO / "dagster.yaml").read_text())
    production = yaml.safe_load((REPO / "deploy" / "dagster.postgres.yaml").read_text())
    # The embedded event log is SQLite with a batch writer; PostgreSQL's has its own. Both plan
    # a ranged run with one event per asset.
    assert embedded.pop("event_log_storage") == {
        "module": "counts_assets.defs.shared.dagster_internals",
        "class": "BatchedSqliteEventLogStorage",
    }
    storages = {
        kind: production.pop(f"{kind}_storage") for kind in ("run", "event_log", "schedule")
    }
    assert production == embedded
    url = {"postgres_url": {"env": "COUNTS_DAGSTER_PG_URL"}}
    assert storages == {
        "run": {
            "module": "dagster_postgres.run_storage",
            "class": "PostgresRunStorage",
            "config": url,
        },
        "event_log": {
            "module": "counts_assets.defs.shared.dagster_internals",
            "class": "PlannedPostgresEventLogStorage",
            "config": url,
        },
        "schedule": {
            "module": "dagster_postgres.schedule_storage",
            "class": "PostgresScheduleStorage",
            "config": url,
        },
    }


def test_the_helm_values_carry_the_platform_settings():
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    embedded = yaml.safe_load((REPO / "dagster.yaml").read_text())
    (location,) = values["dagster-user-deployments"]["deployments"]
    assert location["dagsterApiGrpcArgs"] == ["-m", "counts_assets.definitions"]
    names = {e["name"] for e in location["env"]}
    documented = set(re.findall(r"\| `(COUNTS_[A-Z_]+)` \|", (REPO / "README.md").read_text()))
    secret = {"COUNTS_SOURCE_URL", "COUNTS_DELIVERY_URL"}  # in the counts-secrets secret
    # The chart configures its storage; the batches are on unless turned off.
    optional = {"COUNTS_ALERT_URL", "COUNTS_DAGSTER_PG_URL", "COUNTS_DAGSTER_INTERNALS"}
    assert documented - names == secret | optional
    assert location["envSecrets"] == [{"name": "counts-secrets"}]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["maxConcurrentRuns"] == embedded["concurrency"]["runs"]["max_concurrent_runs"]
    assert (
        queue["tagConcurrencyLimits"] == embedded["concurrency"]["runs"]["tag_concurrency_limits"]
    )
    dequeue = embedded["run_queue"]
    assert queue["dequeueIntervalSeconds"] == dequeue["dequeue_interval_seconds"]
    assert queue["dequeueUseThreads"] is dequeue["dequeue_use_threads"]
    assert queue["dequeueNumWorkers"] == dequeue["dequeue_num_workers"]
    retries = values["dagsterDaemon"]["runRetries"]
    assert (
        retries["retryOnAssetOrOpFailure"]
        is embedded["run_retries"]["retry_on_asset_or_op_failure"]
    )
    assert values["postgresql"]["enabled"] is False  # an external PostgreSQL
    monitoring = embedded["run_monitoring"]
    assert values["dagsterDaemon"]["runMonitoring"] == {
        "enabled": monitoring["enabled"],
        "startTimeoutSeconds": monitoring["start_timeout_seconds"],
        "cancelTimeoutSeconds": monitoring["cancel_timeout_seconds"],
        "maxRuntimeSeconds": monitoring["max_runtime_seconds"],
        "pollIntervalSeconds": monitoring["poll_interval_seconds"],
        "freeSlotsAfterRunEndSeconds": monitoring["free_slots_after_run_end_seconds"],
    }


def test_every_process_that_creates_or_executes_runs_plans_ranged_runs_the_same_way(
    tmp_path, postgres_server
):
    """The daemon (backfills, schedules, sensors), the webserver (launches) and the run pods
    (re-executions) all create runs. With either instance file (embedded, or PostgreSQL outside
    the chart) the event log answers for all of them, with no variable set; with the chart's
    PostgreSQL instance each gets Dagster's variable."""
    switch = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    (location,) = values["dagster-user-deployments"]["deployments"]
    assert {"name": switch, "value": "true"} in location["env"]
    assert location["includeConfigInLaunchedRuns"]["enabled"] is True  # the run pods
    assert values["dagsterDaemon"]["env"][switch] == "true"
    assert values["dagsterWebserver"]["env"][switch] == "true"
    script = (
        "import dagster as dg; "
        "from counts_assets.defs.shared.dagster_internals import PLANNED_SUBSET; "
        "print(getattr(dg.DagsterInstance.get().event_log_storage, PLANNED_SUBSET))"
    )
    env = {k: v for k, v in os.environ.items() if k != switch}
    env["COUNTS_DAGSTER_PG_URL"] = postgres_server.create_database("planning")
    answers = {}
    for instance_file in (REPO / "dagster.yaml", REPO / "deploy" / "dagster.postgres.yaml"):
        home = tmp_path / instance_file.parent.name
        home.mkdir()
        shutil.copy(instance_file, home / "dagster.yaml")
        for internals in ("true", "false"):
            done = subprocess.run(
                [sys.executable, "-c", script],
                env=env | {"DAGSTER_HOME": str(home), "COUNTS_DAGSTER_INTERNALS": internals},
                capture_output=True,
                text=True,
                check=True,
            )
            answers[instance_file.name, internals] = done.stdout.strip()
    # Without the variable: yes from the instance's own storage; Dagster's answer when forced off.
    assert answers == {
        ("dagster.yaml", "true"): "True",
        ("dagster.yaml", "false"): "False",
        ("dagster.postgres.yaml", "true"): "True",
        ("dagster.postgres.yaml", "false"): "False",
    }


def test_the_image_entry_point_loads_the_definitions(tmp_path):
    """What the Dockerfile's CMD serves: the module loads with only the image's environment."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert '"-m", "counts_assets.definitions"]' in dockerfile
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for line in re.findall(r"(COUNTS_[A-Z_]+)=(\S+)", dockerfile):
        env[line[0]] = line[1]
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import counts_assets.definitions as d; "
            "print(sorted(j.name for j in d.defs.resolve_all_job_defs()))",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "daily_export_job" in loaded.stdout and "delivery_job" in loaded.stdout


def test_the_run_queue_keeps_exports_and_deliveries_apart(tmp_path, monkeypatch):
    """The instance built from the repository's dagster.yaml queues runs with a limit per kind
    of work, and every job's runs carry the tag those limits count."""
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        queue = instance.get_concurrency_config().run_queue_config
    limits = {
        (limit["key"], limit.get("value")): limit["limit"] for limit in queue.tag_concurrency_limits
    }
    assert queue.max_concurrent_runs == 4
    assert limits == {
        (WORK_TAG, "export"): 2,
        ("dagster/backfill", None): 2,  # a backfill launched from the asset graph
        (WORK_TAG, "delivery"): 2,
    }
    kinds = {
        job.name: job.tags.get(WORK_TAG)
        for job in (daily_export_job, monthly_reconciliation_job, delivery_job)
    }
    assert kinds == {
        "daily_export_job": "export",
        "monthly_reconciliation_job": "export",
        "delivery_job": "delivery",
    }
