"""Two real Dagster runs of one partition at the same moment (§4 Publishing): separate
processes, one instance, two stores that make different bytes for the partition. Whatever the
interleaving, the pair on disk is one run's pair, whole, and the newest record names it. And a
run killed after publishing a batch of pairs and before recording it."""

from __future__ import annotations

import hashlib
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from counts_assets.core.pairs.store import KINDS
from counts_assets.defs.shared.records import latest_records, metadata_of
from counts_tests.golden_store import build_golden_store, write_org_files
from counts_tests.store import sqlite_url

REPO = Path(__file__).resolve().parent.parent
PARTITION = "2026-03-08|testorg"
RUN = f"""
import sys, time, pathlib
import dagster as dg
from counts_assets.definitions import defs
go = pathlib.Path(sys.argv[1])
with dg.DagsterInstance.get() as instance:
    job = defs.resolve_job_def("daily_export_job")
    while not go.exists():
        time.sleep(0.005)
    result = job.execute_in_process(
        instance=instance, partition_key="{PARTITION}", raise_on_error=False
    )
    print("ok" if result.success else "failed")
"""
ROUNDS = 4


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def platform_env(tmp_path: Path, monkeypatch) -> tuple[Path, Path, dict[str, str]]:
    """A DAGSTER_HOME from the repository's instance file, and the environment of a process
    that runs the platform's jobs in it."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    exports = tmp_path / "exports"
    (tmp_path / "outbox").mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "DAGSTER_HOME": str(home),
        "COUNTS_ORGS_DIR": str(write_org_files(tmp_path / "orgs")),
        "COUNTS_EXPORT_DIR": str(exports),
        "COUNTS_FIRST_DATE": "2026-01-01",
        "COUNTS_DELIVERY_URL": f"file://{tmp_path / 'outbox'}",
        "COUNTS_GRACE_MINUTES": str(60 * 24 * 3650),
    }
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("orgs", ["testorg", "otherorg"])
    return home, exports, env


def test_two_runs_of_one_partition_at_once_leave_one_whole_pair(tmp_path, monkeypatch):
    stores = []
    for name, extra in (("a", 0), ("b", 3)):
        folder = tmp_path / name
        folder.mkdir()
        url = sqlite_url(folder)
        build_golden_store(url)
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            for n in range(extra):  # store b: three more calls that day
                connection.execute(
                    "INSERT INTO contact_records (org_id, call_report_num, contact_form, "
                    "report_version, started_at, status) VALUES ('testorg', ?, '211 Contact', "
                    "'v2', '2026-03-08 15:00:00', 'finalized')",
                    (f"b{n}",),
                )
                connection.execute(
                    "INSERT INTO contact_answers VALUES ('testorg', ?, 'Line Called', '2-1-1')",
                    (f"b{n}",),
                )
        stores.append(url)

    home, exports, base_env = platform_env(tmp_path, monkeypatch)

    folder = exports / "testorg" / "daily"
    summary = folder / "testorg_daily_2026-03-08_summary.csv"
    needs = folder / "testorg_daily_2026-03-08_needs.csv"
    for round_ in range(ROUNDS):
        go = tmp_path / f"go{round_}"
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", RUN, str(go)],
                cwd=REPO,
                env=base_env | {"COUNTS_SOURCE_URL": url},
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for url in stores
        ]
        time.sleep(4)  # both processes have loaded the definitions and wait for the signal
        go.touch()
        assert [r.communicate(timeout=120)[0].strip() for r in runs] == ["ok", "ok"]

        with dg.DagsterInstance.from_config(str(home)) as instance:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey("daily_summary_file"), asset_partitions=[PARTITION]
                ),
                limit=2,
            ).records
        newest = {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
        # the pair on disk is exactly the pair the newest record names
        assert (sha(summary), sha(needs)) == (newest["sha256"], newest["needs_sha256"])
        # and it is one of the two runs' whole pairs, never one file of each
        calls = sum(int(row.split(",")[1]) for row in summary.read_text().splitlines()[1:])
        records_in_needs = {row.rsplit(",", 1)[1] for row in needs.read_text().splitlines()[1:]}
        assert calls in (3, 6)  # store a's pair, or store b's
        assert len(records_in_needs) == calls
        assert ("b0" in records_in_needs) == (calls == 6)
        assert sorted(p.name for p in folder.iterdir()) == [needs.name, summary.name]
        journals = list((exports / ".pairs").rglob("*.journal"))
        assert journals == []


KILLED_RUN = """
import os, signal, sys
import dagster as dg
from counts_assets.defs.shared.runs import RANGE_END_TAG, RANGE_START_TAG
from counts_assets.definitions import defs
from counts_assets.defs.shared.dagster_internals import BatchedSqliteEventLogStorage

store = BatchedSqliteEventLogStorage.store_event_batch

def die_before_the_pair_records(self, events):
    metadata = events[0].dagster_event.step_materialization_data.materialization.metadata
    if sys.argv[1] == "kill" and "needs_sha256" in metadata:
        os.kill(os.getpid(), signal.SIGKILL)
    store(self, events)

BatchedSqliteEventLogStorage.store_event_batch = die_before_the_pair_records
with dg.DagsterInstance.get() as instance:
    result = defs.resolve_job_def("daily_export_job").execute_in_process(
        instance=instance,
        tags={RANGE_START_TAG: "2026-03-05|testorg", RANGE_END_TAG: "2026-03-10|testorg"},
        raise_on_error=False,
    )
    print("ok" if result.success else "failed")
"""


def test_a_run_killed_before_recording_its_pairs_leaves_journals_and_the_rerun_records_them(
    tmp_path, monkeypatch
):
    """SIGKILL at the instant a batch of published pairs is handed to the instance: the pairs
    are on disk, each with its journal, and no record claims them; the run again (what the
    instance's run retry does for a run that died) records every pair it publishes, names the
    bytes on disk, and leaves no journal."""
    folder = tmp_path / "store"
    folder.mkdir()
    url = sqlite_url(folder)
    build_golden_store(url)
    home, exports, env = platform_env(tmp_path, monkeypatch)
    env |= {"COUNTS_SOURCE_URL": url, "DAGSTER_EVENT_BATCH_SIZE": "1000"}

    def run(mode: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", KILLED_RUN, mode],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    killed = run("kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    days = ["2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"]  # share_from is 03-07
    folder = exports / "testorg" / "daily"
    on_disk = sorted(p.name for p in folder.iterdir())
    assert on_disk == sorted(f"testorg_daily_{d}_{k}.csv" for d in days for k in KINDS)
    journals = exports / ".pairs" / "testorg" / "daily"
    assert sorted(p.stem for p in journals.glob("*.journal")) == days
    partitions = [f"{d}|testorg" for d in days]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert latest_records(instance, dg.AssetKey("daily_summary_file"), partitions) == {}

    assert run("again").stdout.strip() == "ok"
    assert not list(journals.glob("*.journal"))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = latest_records(instance, dg.AssetKey("daily_summary_file"), partitions)
    assert sorted(records) == partitions
    for day, record in zip(days, (records[p] for p in partitions), strict=True):
        meta = metadata_of(record)
        assert meta["sha256"] == sha(folder / f"testorg_daily_{day}_summary.csv")
        assert meta["needs_sha256"] == sha(folder / f"testorg_daily_{day}_needs.csv")
