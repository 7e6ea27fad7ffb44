"""Steady-state benchmark: the CPU one ordinary day costs a fleet.

N orgs in three time zones (interleaved in registration order, as a fleet grows), a store with
their contacts around day D, share_from D. The daily schedule is evaluated at each of its
96 ticks of the following UTC day, as the daemon does, and every run it requests is executed in
a fresh process, as the run launcher does. Prints the runs, the partitions they made, and the
CPU seconds of the schedule evaluations and of the runs (process start included) against the
60 s floor.

    .venv/bin/python benchmarks/steady_state.py --orgs 150
    .venv/bin/python benchmarks/steady_state.py --smoke   # a tiny run: it finishes and prints
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.exports import org_files  # noqa: E402
from counts_assets.demo.store import generate_store  # noqa: E402

DAY = dt.date(2026, 10, 14)
FLOOR_CPU_SECONDS = 60
RUN = """
import json, sys
import dagster as dg
from counts_assets.definitions import defs
request = json.loads(sys.argv[1])
with dg.DagsterInstance.get() as instance:
    result = defs.resolve_job_def("daily_export_job").execute_in_process(
        instance=instance,
        partition_key=request["partition_key"],
        run_config=request["run_config"],
        tags=request["tags"],
        raise_on_error=False,
    )
    print("ok" if result.success else "failed")
"""


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=150)
    parser.add_argument("--per-day", type=int, default=55)
    parser.add_argument("--smoke", action="store_true", help="3 orgs: it finishes")
    args = parser.parse_args()
    if args.smoke:
        args.orgs, args.per_day = 3, 3

    work = Path(tempfile.mkdtemp(prefix="counts-steady-"))
    profiles = org_files(work / "orgs", args.orgs, share_from=DAY)
    url = f"sqlite:///{work / 'store.sqlite'}"
    generate_store(
        sa.create_engine(url),
        DAY - dt.timedelta(days=1),
        DAY + dt.timedelta(days=1),
        args.per_day,
        profiles=profiles,
    )
    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = os.environ | {
        "DAGSTER_HOME": str(home),
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        "COUNTS_SOURCE_URL": url,
        "COUNTS_ORGS_DIR": str(work / "orgs"),
        "COUNTS_EXPORT_DIR": str(work / "exports"),
        "COUNTS_FIRST_DATE": (DAY - dt.timedelta(days=10)).isoformat(),
        "COUNTS_DELIVERY_URL": f"file://{work / 'outbox'}",
    }
    os.environ.update(env)

    from counts_assets.definitions import defs
    from counts_assets.defs.exports.schedules import SCHEDULE_NAME_TAG, daily_export_schedule
    from counts_assets.defs.shared.resources import OrgRegistry

    registry = OrgRegistry(orgs_dir=env["COUNTS_ORGS_DIR"], first_date=env["COUNTS_FIRST_DATE"])

    runs = failed = 0
    schedule_cpu = 0.0
    started_wall, started_children = time.monotonic(), child_cpu()
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("orgs", sorted(profiles))  # as org_registry_sensor
        tick = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(), dt.UTC)
        for _ in range(96):
            before = time.process_time()
            context = dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=tick,
                resources={"org_registry": registry},
                repository_def=defs.get_repository_def(),
            )
            result = daily_export_schedule.evaluate_tick(context)
            schedule_cpu += time.process_time() - before
            for request in result.run_requests or []:
                payload = {
                    "partition_key": request.partition_key,
                    "run_config": request.run_config,
                    "tags": {**request.tags, SCHEDULE_NAME_TAG: daily_export_schedule.name},
                }
                out = subprocess.run(
                    [sys.executable, "-c", RUN, json.dumps(payload)],
                    env=env,
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                runs += 1
                failed += out.strip().splitlines()[-1] != "ok"
            tick += dt.timedelta(minutes=15)
    runs_cpu = child_cpu() - started_children
    wall = time.monotonic() - started_wall
    made = len(list((work / "exports").rglob("*_summary.csv")))
    total = runs_cpu + schedule_cpu
    print(
        "| orgs | runs | failed | pairs made | schedule CPU | runs CPU | total CPU | floor | wall |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.orgs} | {runs} | {failed} | {made} | {schedule_cpu:.1f}s | {runs_cpu:.1f}s | "
        f"{total:.1f}s | {FLOOR_CPU_SECONDS}s ({total / FLOOR_CPU_SECONDS:.2f}x) | {wall:.0f}s |"
    )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
