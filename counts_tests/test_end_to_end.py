"""End to end with the real processes: dagster-webserver and dagster-daemon on a temporary
DAGSTER_HOME, a partition backfill launched through the webserver's GraphQL API as the UI does,
files made by the backfill's runs and delivered by delivery_sensor to a real SFTP server; and a
backfill whose run process is killed while it publishes."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import uuid
from pathlib import Path

import dagster as dg
import pytest

from counts_assets.definitions import build_defs
from counts_assets.defs.delivery.resources import DeliveryResource
from counts_assets.defs.exports.resources import SourceReader
from counts_assets.defs.health.resources import AlertHook
from counts_assets.defs.shared.records import latest_records, metadata_of
from counts_assets.defs.shared.resources import ExportFiles, OrgRegistry
from counts_tests.dagster_processes import REPO, running_dagster
from counts_tests.golden_store import (
    GOLDEN_DIR,
    OTHER_ORG_YAML,
    build_golden_store,
    write_org_files,
)
from counts_tests.store import sqlite_url
from counts_tests.tcp_proxy import HoldingProxy


def platform_env(
    tmp_path, sftp_server, sftp_base, source_url: str | None = None, **extra: str
) -> dict[str, str]:
    """The golden store, its org files and a real SFTP target, as environment variables."""
    url = source_url or sqlite_url(tmp_path)
    build_golden_store(url)
    return {
        "COUNTS_SOURCE_URL": url,
        "COUNTS_ORGS_DIR": str(write_org_files(tmp_path / "orgs")),
        "COUNTS_EXPORT_DIR": str(tmp_path / "exports"),
        "COUNTS_FIRST_DATE": "2026-01-01",
        "COUNTS_DELIVERY_URL": sftp_server.url(str(sftp_base)),
        "COUNTS_SFTP_KEY_FILE": str(sftp_server.client_key),
        "COUNTS_SFTP_KNOWN_HOSTS": str(sftp_server.known_hosts),
        # The golden store is in March: keep the schedules from requesting this week's days.
        "COUNTS_GRACE_MINUTES": str(60 * 24 * 3650),
        **extra,
    }


DAILY_ASSETS = [
    "daily_raw_contacts",
    "daily_mapped_demographics",
    "daily_summary_file",
    "daily_needs_file",
]


@pytest.mark.parametrize("storage", ["sqlite", "postgresql"])
def test_backfill_from_the_ui_api_is_made_and_delivered(
    tmp_path, sftp_server, sftp_base, storage, request, monkeypatch
):
    """The embedded default, and the production configuration as the README gives it: the
    instance in PostgreSQL (deploy/dagster.postgres.yaml) and a PostgreSQL source store with
    native timestamptz and boolean columns."""
    instance = REPO / "dagster.yaml"
    source_url = None
    if storage == "postgresql":
        server = request.getfixturevalue("postgres_server")
        name = f"e2e_{uuid.uuid4().hex[:12]}"
        monkeypatch.setenv("COUNTS_DAGSTER_PG_URL", server.create_database(f"{name}_dagster"))
        source_url = server.create_database(f"{name}_crm")
        instance = REPO / "deploy" / "dagster.postgres.yaml"
    env = platform_env(tmp_path, sftp_server, sftp_base, source_url)
    export_dir = tmp_path / "exports"
    home = tmp_path / "dagster_home"
    with (
        running_dagster(home, env, instance) as dagster,
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        # org_registry_sensor registers both organizations on its first tick.
        dagster.wait_for(
            lambda: sorted(instance.get_dynamic_partitions("orgs")) == ["otherorg", "testorg"],
            120,
            "org_registry_sensor to register the orgs",
        )
        partitions = [f"2026-03-{d:02d}|{o}" for d in (7, 8, 9) for o in ("testorg", "otherorg")]
        backfill_id = dagster.launch_backfill(DAILY_ASSETS, partitions)
        status = dagster.wait_for_backfill(backfill_id, 300)
        assert status == "COMPLETED_SUCCESS", dagster.logs()
        runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        # Grouped by org (2 orgs < 3 dates): one run per org covering its dates.
        assert len(runs) == 2

        expected = {
            f"{org}/{path.name}": path.read_bytes()
            for org in ("testorg", "otherorg")
            for path in (export_dir / org / "daily").glob("*.csv")
        }
        assert len(expected) == 12

        def delivered():
            files = {
                str(p.relative_to(sftp_base)): p.read_bytes()
                for p in sftp_base.rglob("*")
                if p.is_file()
            }
            return files if files == expected else None

        dagster.wait_for(delivered, 300, "delivery_sensor to deliver all 12 files", 2)
        statuses = dagster.wait_for(
            lambda: (
                (
                    s := [
                        r.dagster_run.status
                        for r in instance.get_run_records(dg.RunsFilter(job_name="delivery_job"))
                    ]
                )
                and all(x in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE) for x in s)
                and s
            ),
            120,
            "the delivery runs to finish",
        )
        # One delivery run per org, each sending its three pairs over one connection.
        assert statuses == [dg.DagsterRunStatus.SUCCESS] * 2
        # The delivery runs took their slots from the `sftp` pool (limit 4, dagster.yaml).
        assert instance.event_log_storage.get_concurrency_info("sftp").slot_count == 4
    assert (sftp_base / "testorg" / "testorg_daily_2026-03-08_needs.csv").read_bytes() == (
        GOLDEN_DIR / "testorg_daily_2026-03-08_needs.csv"
    ).read_bytes()
    assert not any(p.name.endswith(".part") for p in sftp_base.rglob("*"))


def test_pairs_made_during_an_outage_are_delivered_after_the_daemon_restarts(
    tmp_path, sftp_server, sftp_base
):
    """The target is down while the daemon runs (its delivery runs fail), the daemon is then
    stopped, the target comes back, the daemon starts again: every pair arrives, once, whole."""
    env = platform_env(
        tmp_path,
        sftp_server,
        sftp_base,
        COUNTS_DELIVERY_ATTEMPTS="1",
        COUNTS_DELIVERY_RETRY_MINUTES="0.1",
    )
    export_dir = tmp_path / "exports"
    home = tmp_path / "dagster_home"
    resources = {
        "org_registry": OrgRegistry(orgs_dir=env["COUNTS_ORGS_DIR"], first_date="2026-01-01"),
        "source": SourceReader(url=env["COUNTS_SOURCE_URL"]),
        "export_files": ExportFiles(export_dir=str(export_dir)),
        "delivery": DeliveryResource(url=env["COUNTS_DELIVERY_URL"]),
        "alerts": AlertHook(url=None),
    }
    sftp_server.stop()
    try:
        with (
            running_dagster(home, env) as dagster,
            dg.DagsterInstance.from_config(str(home)) as instance,
        ):
            dagster.wait_for(
                lambda: len(instance.get_dynamic_partitions("orgs")) == 2, 120, "the orgs"
            )
            first_org, *_, last_org = instance.get_dynamic_partitions("orgs")
            made = (
                build_defs(resources)
                .resolve_job_def("daily_export_job")
                .execute_in_process(
                    instance=instance,
                    tags={
                        "dagster/asset_partition_range_start": f"2026-03-07|{first_org}",
                        "dagster/asset_partition_range_end": f"2026-03-09|{last_org}",
                    },
                )
            )
            assert made.success

            def failed_runs():
                runs = instance.get_runs(dg.RunsFilter(job_name="delivery_job"))
                return [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]

            dagster.wait_for(failed_runs, 180, "a delivery run to fail on the outage", 2)
    finally:
        sftp_server.start()

    expected = {
        f"{org}/{path.name}": path.read_bytes()
        for org in ("testorg", "otherorg")
        for path in (export_dir / org / "daily").glob("*.csv")
    }
    assert len(expected) == 12 and not any(sftp_base.rglob("*.csv"))  # nothing got through

    def delivered():
        files = {str(p.relative_to(sftp_base)): p.read_bytes() for p in sftp_base.rglob("*.csv")}
        return files if files == expected else None

    with running_dagster(home, env) as dagster:
        dagster.wait_for(delivered, 240, "every pair after the restart", 2)
    assert not any(p.name.endswith(".part") for p in sftp_base.rglob("*"))


def _run_workers(sessions: set[int]) -> list[int]:
    """The processes executing runs: started by a code server of the given Dagster processes
    (their sessions) through multiprocessing, as Dagster's default launcher does."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            session = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3])
        except (OSError, ValueError, IndexError):
            continue
        if session in sessions and b"spawn_main" in cmdline:
            pids.append(int(proc.name))
    return pids


def test_a_backfill_run_killed_while_publishing_is_retried_and_every_pair_is_recorded(tmp_path):
    """SIGKILL to a backfill's run process once its first pairs are recorded: the code server
    reports the run failed, the instance retries it (dagster.yaml `run_retries`: the run itself
    died), and in the end every partition has its pair on disk, recorded with the SHA-256s of
    the bytes there, with no journal or temporary file left. Counted: lost, mixed, leftover."""
    url = sqlite_url(tmp_path)
    build_golden_store(url)
    export_dir = tmp_path / "exports"
    (tmp_path / "outbox").mkdir()
    env = {
        "COUNTS_SOURCE_URL": url,
        "COUNTS_ORGS_DIR": str(write_org_files(tmp_path / "orgs")),
        "COUNTS_EXPORT_DIR": str(export_dir),
        "COUNTS_FIRST_DATE": "2026-01-01",
        "COUNTS_DELIVERY_URL": f"file://{tmp_path / 'outbox'}",
        "COUNTS_GRACE_MINUTES": str(60 * 24 * 3650),
    }
    days = [dt.date(2026, 3, 7) + dt.timedelta(days=n) for n in range(240)]
    partitions = [f"{d}|{org}" for d in days for org in ("testorg", "otherorg")]
    summary = dg.AssetKey("daily_summary_file")
    home = tmp_path / "dagster_home"
    with (
        running_dagster(home, env) as dagster,
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        dagster.wait_for(
            lambda: sorted(instance.get_dynamic_partitions("orgs")) == ["otherorg", "testorg"],
            120,
            "org_registry_sensor to register the orgs",
        )
        unfinished = [
            dg.DagsterRunStatus.QUEUED,
            dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED,
        ]
        # The runs recording the days before share_from go first, untouched.
        dagster.wait_for(
            lambda: (
                not instance.get_run_records(dg.RunsFilter(statuses=unfinished))
                and len(instance.get_run_records()) >= 2
            ),
            120,
            "the runs recording the days before share_from",
        )
        backfill_id = dagster.launch_backfill(DAILY_ASSETS, partitions)
        wanted = set(partitions)
        dagster.wait_for(
            lambda: 0 < len(wanted & instance.get_materialized_partitions(summary)) < len(wanted),
            180,
            "the first pairs of the backfill to be recorded",
            every=0.02,
        )
        killed = _run_workers({p.pid for p in dagster.processes})
        assert killed, dagster.logs()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        status = dagster.wait_for_backfill(backfill_id, 300)
        runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        retried = [r for r in runs if "dagster/parent_run_id" in r.dagster_run.tags]
        assert retried, dagster.logs()
        assert status == "COMPLETED_SUCCESS", dagster.logs()
        records = latest_records(instance, summary, partitions)
    lost = [p for p in partitions if p not in records]
    mixed = []
    for partition, record in records.items():
        day, org = partition.split("|")
        meta = metadata_of(record)
        folder = export_dir / org / "daily"
        found = {
            kind: hashlib.sha256(
                (folder / f"{org}_daily_{day}_{kind}.csv").read_bytes()
            ).hexdigest()
            for kind in ("summary", "needs")
        }
        mixed += (
            [partition]
            if found != {"summary": meta["sha256"], "needs": meta["needs_sha256"]}
            else []
        )
    leftover = list((export_dir / ".pairs").rglob("*.journal")) + list(export_dir.rglob("*.part"))
    assert (len(lost), len(mixed), len(leftover)) == (0, 0, 0)


def test_killed_delivery_runs_give_back_their_pool_slots_and_every_pair_goes_out(
    tmp_path, sftp_server, sftp_base
):
    """Four delivery run workers killed with SIGKILL while they connect (the connections are
    held in a proxy). Their `sftp` pool slots (4 in all) would stay taken for good; the run
    monitoring of dagster.yaml frees them, and every pending pair is delivered with no manual
    step. Counted at the recipient: lost, mixed."""
    with HoldingProxy(sftp_server.port, every=True) as proxy:
        known = tmp_path / "known_hosts"
        known.write_text(
            f"[127.0.0.1]:{proxy.port} {' '.join(sftp_server.host_public_key.split()[:2])}\n"
        )
        env = platform_env(
            tmp_path,
            sftp_server,
            sftp_base,
            COUNTS_DELIVERY_URL=sftp_server.url(str(sftp_base), proxy.port),
            COUNTS_SFTP_KNOWN_HOSTS=str(known),
            COUNTS_DELIVERY_RETRY_MINUTES="0.05",
        )
        orgs = ["testorg", "otherorg", "thirdorg", "fourthorg"]
        for org in orgs[2:]:
            (tmp_path / "orgs" / f"{org}.yaml").write_text(OTHER_ORG_YAML.replace("otherorg", org))
        home = tmp_path / "dagster_home"
        resources = {
            "org_registry": OrgRegistry(orgs_dir=env["COUNTS_ORGS_DIR"], first_date="2026-01-01"),
            "source": SourceReader(url=env["COUNTS_SOURCE_URL"]),
            "export_files": ExportFiles(export_dir=env["COUNTS_EXPORT_DIR"]),
            "delivery": DeliveryResource(url=env["COUNTS_DELIVERY_URL"]),
            "alerts": AlertHook(url=None),
        }
        with (
            running_dagster(home, env) as dagster,
            dg.DagsterInstance.from_config(str(home)) as instance,
        ):
            dagster.wait_for(
                lambda: len(instance.get_dynamic_partitions("orgs")) == 4, 120, "the orgs"
            )
            first_org, *_, last_org = instance.get_dynamic_partitions("orgs")
            assert (
                build_defs(resources)
                .resolve_job_def("daily_export_job")
                .execute_in_process(
                    instance=instance,
                    tags={
                        "dagster/asset_partition_range_start": f"2026-03-07|{first_org}",
                        "dagster/asset_partition_range_end": f"2026-03-08|{last_org}",
                    },
                )
                .success
            )
            killed: set[int] = set()
            while len(killed) < 4:
                workers = dagster.wait_for(
                    lambda: (
                        [
                            pid
                            for pid in _run_workers({p.pid for p in dagster.processes})
                            if pid not in killed
                        ]
                        if proxy.connections > len(killed)
                        else None
                    ),
                    240,
                    "a delivery run connecting",
                    0.2,
                )
                for pid in workers[: 4 - len(killed)]:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
            proxy.release()
            expected = {
                f"{org}/{path.name}": path.read_bytes()
                for org in orgs
                for path in (tmp_path / "exports" / org / "daily").glob("*.csv")
            }
            assert len(expected) == 16

            def delivered():
                files = {
                    str(p.relative_to(sftp_base)): p.read_bytes() for p in sftp_base.rglob("*.csv")
                }
                return files if files == expected else None

            dagster.wait_for(delivered, 360, "every pair after the killed runs", 2)
            failed = instance.get_runs(
                dg.RunsFilter(job_name="delivery_job", statuses=[dg.DagsterRunStatus.FAILURE])
            )
            assert len(failed) >= 4, dagster.logs()
    assert not any(p.name.endswith(".part") for p in sftp_base.rglob("*"))
