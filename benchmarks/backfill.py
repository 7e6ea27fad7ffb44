"""Backfill benchmark on the daemon path.

Builds a store of N orgs x D days, starts dagster-webserver and dagster-daemon on a temporary
DAGSTER_HOME, launches one partition backfill of the daily export assets over every org and
day through the webserver's GraphQL API (as the UI does), waits for it, and prints the run
count and wall time against the 10-minute target.

    .venv/bin/python benchmarks/backfill.py --orgs 150 --days 365
    .venv/bin/python benchmarks/backfill.py --smoke   # a tiny run: it finishes and prints
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.exports import add_storage_argument, build_store, org_files  # noqa: E402
from counts_tests.dagster_processes import running_dagster  # noqa: E402
from counts_tests.postgres_server import PostgresServer  # noqa: E402

TARGET_SECONDS = 600  # 150 orgs x 365 days through the daemon in 10 minutes
DAILY_ASSETS = [
    "daily_raw_contacts",
    "daily_mapped_demographics",
    "daily_summary_file",
    "daily_needs_file",
]
STOP_SENSOR = """
mutation Stop($id: String!) { stopSensor(id: $id) { __typename } }
"""
SENSOR_ID = """
query Sensor($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
  __typename ... on Sensor { id } } }
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=150)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=10, help="contacts per org and day")
    parser.add_argument("--workdir", type=Path, default=None)
    add_storage_argument(parser)
    parser.add_argument("--smoke", action="store_true", help="2 orgs x 3 days: it finishes")
    args = parser.parse_args()
    if args.smoke:
        args.orgs, args.days, args.per_day = 2, 3, 3

    work = args.workdir or Path(tempfile.mkdtemp(prefix="counts-backfill-"))
    first = dt.date(2025, 1, 1)
    last = first + dt.timedelta(days=args.days - 1)
    orgs_dir = work / "orgs"
    profiles = org_files(orgs_dir, args.orgs, first)
    url = f"sqlite:///{work / 'store.sqlite'}"
    build_store(work, profiles, first, last, args.per_day)

    env = {
        "COUNTS_SOURCE_URL": url,
        "COUNTS_ORGS_DIR": str(orgs_dir),
        "COUNTS_EXPORT_DIR": str(work / "exports"),
        "COUNTS_FIRST_DATE": first.isoformat(),
        "COUNTS_DELIVERY_URL": f"file://{work / 'outbox'}",
        "COUNTS_GRACE_MINUTES": str(60 * 24 * 3650),  # keep the schedules quiet
    }
    home = work / "dagster_home"
    instance_file = ROOT / "dagster.yaml"
    server = None
    if args.storage == "postgresql":
        server = PostgresServer.create()
        server.start()
        env["COUNTS_DAGSTER_PG_URL"] = server.create_database("dagster")
        os.environ["COUNTS_DAGSTER_PG_URL"] = env["COUNTS_DAGSTER_PG_URL"]  # for this process
        instance_file = ROOT / "deploy" / "dagster.postgres.yaml"
    try:
        wall, status, backfill_id, runs, failed, partitions = run_backfill(
            args, home, env, instance_file, first, profiles
        )
    finally:
        if server:
            server.stop()
    files = len(list((work / "exports").rglob("*.csv")))
    print(f"backfill {backfill_id}: {status}")
    print(
        "| orgs | days | partitions | storage | runs | failed runs | files | wall time | "
        "target | against target |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.orgs} | {args.days} | {len(partitions)} | {args.storage} | {len(runs)} | "
        f"{len(failed)} | {files} | {wall:.0f} s | {TARGET_SECONDS} s | "
        f"{wall / TARGET_SECONDS:.2f}x |"
    )


def run_backfill(args, home: Path, env: dict, instance_file: Path, first: dt.date, profiles):
    """Starts the platform, launches the backfill as the UI does, waits for it to end."""
    with (
        running_dagster(home, env, instance_file) as dagster,
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        dagster.wait_for(
            lambda: len(instance.get_dynamic_partitions("orgs")) == args.orgs,
            300,
            "org_registry_sensor",
        )
        # This measures the export backfill; benchmarks/delivery.py measures delivery.
        sensor = dagster.graphql(
            SENSOR_ID,
            {
                "s": {
                    "repositoryName": "__repository__",
                    "repositoryLocationName": "counts_assets",
                    "sensorName": "delivery_sensor",
                }
            },
        )["sensorOrError"]
        dagster.graphql(STOP_SENSOR, {"id": sensor["id"]})
        partitions = [
            f"{first + dt.timedelta(days=d)}|{org}"
            for d in range(args.days)
            for org in sorted(profiles)
        ]
        launched = time.monotonic()
        backfill_id = dagster.launch_backfill(DAILY_ASSETS, partitions)
        status = dagster.wait_for_backfill(backfill_id, 6 * 3600, every=5)
        wall = time.monotonic() - launched
        runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        failed = [r for r in runs if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
    return wall, status, backfill_id, runs, failed, partitions


if __name__ == "__main__":
    main()
