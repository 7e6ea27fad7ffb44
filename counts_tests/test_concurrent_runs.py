"""Two real Dagster runs of one partition at the same moment (§4 Publishing): separate
processes, one instance, two stores that make different bytes for the partition. Whatever the
interleaving, the pair on disk is one run's pair, whole, and the newest record names it."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

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

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    exports = tmp_path / "exports"
    (tmp_path / "outbox").mkdir()
    base_env = {
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
