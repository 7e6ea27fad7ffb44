"""Export benchmark: a year of daily files for a fleet, through Dagster against a Dagster-free
reference, in one invocation.

Builds a store of N orgs x D days (the demo's three org shapes, realistic answers, needs and
referrals), then runs, each in its own child process so that each peak RSS is its own:

- reference: the same business rules without Dagster (read each org's year, build, validate,
  publish every pair), i.e. the floor the platform's own work sets;
- project: the `daily_export_job` through a real Dagster instance (SQLite storage in a
  temporary DAGSTER_HOME), one ranged run per org as a backfill of the daily assets makes.
- with --public, the project again in a fresh instance on Dagster's public behaviour only
  (COUNTS_DAGSTER_INTERNALS=false): what the platform would cost without its one module of
  Dagster internals.

Prints both times, their ratio, each peak RSS, and whether every file is byte-identical.

    .venv/bin/python benchmarks/exports.py --orgs 50 --days 365 --per-day 55
    .venv/bin/python benchmarks/exports.py --orgs 10 --public   # and on the public path
    .venv/bin/python benchmarks/exports.py --smoke   # a tiny run: it finishes and prints
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from counts_assets.demo.store import ORG_PROFILES, generate_store  # noqa: E402

FIRST = dt.date(2025, 1, 1)
# The environment every Dagster process of the platform gets (scripts/ui.sh, the Dockerfile).
PLATFORM_ENV = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}


def org_files(directory: Path, count: int, share_from: dt.date = FIRST) -> dict[str, dict]:
    """`count` orgs cycling through the demo's shapes (and zones), each with its demo org file."""
    directory.mkdir(parents=True)
    shapes = list(ORG_PROFILES.items())
    profiles = {}
    for n in range(count):
        demo_id, profile = shapes[n % len(shapes)]
        org_id = f"org{n:03d}"
        profiles[org_id] = profile
        text = (ROOT / "organizations" / f"{demo_id}.yaml").read_text()
        replaced = {"id:": f"id: {org_id}", "share_from:": f"share_from: {share_from}"}
        replaced["permission:"] = "permission:\n  prior_years: true"
        replaced["  remote_dir:"] = f"  remote_dir: {org_id}"
        lines = [
            next((new for start, new in replaced.items() if line.startswith(start)), line)
            for line in text.splitlines()
        ]
        (directory / f"{org_id}.yaml").write_text("\n".join(lines) + "\n")
    return profiles


def build_store(
    work: Path, profiles: dict[str, dict], first: dt.date, last: dt.date, per_day: int
) -> dict[str, int]:
    """The demo store for these orgs at `<work>/store.sqlite`; its time is printed, never
    measured."""
    started = time.monotonic()
    engine = sa.create_engine(f"sqlite:///{work / 'store.sqlite'}")
    rows = generate_store(engine, first, last, per_day, profiles=profiles)
    print(f"store: {rows} in {time.monotonic() - started:.0f}s (not measured)", flush=True)
    return rows


def reference(work: Path, days: int) -> dict:
    """The platform's own rules with no Dagster: one read per org for the whole range."""
    from counts_assets.core.exports.run import build_run, publish_pairs
    from counts_assets.core.files.periods import plan_targets
    from counts_assets.core.orgs.registry import load_registry
    from counts_assets.core.pairs.store import PairStore
    from counts_assets.core.source.reader import SourceStore, source_engine

    registry = load_registry(work / "orgs", FIRST)
    assert not registry.errors, registry.errors
    store = SourceStore(source_engine(f"sqlite:///{work / 'store.sqlite'}"))
    starts = [FIRST + dt.timedelta(days=d) for d in range(days)]
    started = time.perf_counter()
    for org in registry.orgs.values():
        targets, _ = plan_targets([(org.id, s) for s in starts], {org.id: org}, monthly=False)
        tables = store.read(org, targets[0].first_day, targets[-1].last_day)
        outcome = build_run(tables, {org.id: org}, targets)
        for _ in publish_pairs(outcome, PairStore(work / "reference")):
            pass
        assert not outcome.failed, outcome.failed
    return {"seconds": time.perf_counter() - started}


def project(work: Path, days: int, label: str = "project") -> dict:
    """One ranged run of the daily export job per org, in a real instance (its storage is the
    dagster.yaml copied into `<work>/<label>_home`), files into `<work>/<label>`."""
    import dagster as dg

    from counts_assets.definitions import build_defs
    from counts_assets.defs.delivery.resources import DeliveryResource
    from counts_assets.defs.exports.resources import SourceReader
    from counts_assets.defs.health.resources import AlertHook
    from counts_assets.defs.shared.resources import ExportFiles, OrgRegistry
    from counts_assets.defs.shared.runs import RANGE_END_TAG, RANGE_START_TAG

    home = work / f"{label}_home"
    resources = {
        "org_registry": OrgRegistry(orgs_dir=str(work / "orgs"), first_date=FIRST.isoformat()),
        "source": SourceReader(url=f"sqlite:///{work / 'store.sqlite'}"),
        "export_files": ExportFiles(export_dir=str(work / label)),
        "delivery": DeliveryResource(url=f"file://{work / 'outbox'}"),
        "alerts": AlertHook(url=f"file://{work / 'alerts.jsonl'}"),
    }
    job = build_defs(resources).resolve_job_def("daily_export_job")
    orgs = sorted(p.stem for p in (work / "orgs").glob("*.yaml"))
    last = FIRST + dt.timedelta(days=days - 1)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("orgs", orgs)
        started = time.perf_counter()
        for org in orgs:
            result = job.execute_in_process(
                instance=instance,
                tags={RANGE_START_TAG: f"{FIRST}|{org}", RANGE_END_TAG: f"{last}|{org}"},
                raise_on_error=False,
            )
            assert result.success, org
        seconds = time.perf_counter() - started
        events = instance.event_log_storage.get_maximum_record_id() or 0
    return {"seconds": seconds, "events": events}


def add_storage_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the instance's storage: the embedded default, or the production configuration "
        "on a PostgreSQL server started for the run",
    )


def peak_rss_mb() -> float:
    """This process's own peak (VmHWM): ru_maxrss would carry the parent's over exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(phase: str, work: Path, days: int, env: dict[str, str], label: str = "project") -> dict:
    """Runs a phase in a fresh interpreter; returns its figures and peak RSS."""
    out = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--workdir", str(work), "--days", str(days)]
        + ["--label", label],
        env=os.environ | env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*.csv")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=50)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=55, help="contacts per org and day")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--phase", choices=["reference", "project"], default=None)
    parser.add_argument("--label", default="project", help=argparse.SUPPRESS)
    add_storage_argument(parser)
    parser.add_argument(
        "--public",
        action="store_true",
        help="also run the project on Dagster's public behaviour only "
        "(COUNTS_DAGSTER_INTERNALS=false), in a fresh instance: the cost of the fallback",
    )
    parser.add_argument("--smoke", action="store_true", help="2 orgs x 3 days: it finishes")
    args = parser.parse_args()
    if args.smoke:
        args.orgs, args.days, args.per_day, args.public = 2, 3, 3, True

    if args.phase:
        if args.phase == "reference":
            figures = reference(args.workdir, args.days)
        else:
            figures = project(args.workdir, args.days, args.label)
        figures["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(figures))
        return

    work = args.workdir or Path(tempfile.mkdtemp(prefix="counts-exports-"))
    profiles = org_files(work / "orgs", args.orgs)
    last = FIRST + dt.timedelta(days=args.days - 1)
    rows = build_store(work, profiles, FIRST, last, args.per_day)

    ref = child("reference", work, args.days, {})
    print(f"reference: {ref}", flush=True)
    runs = [("internals", "project", {})]
    if args.public:
        runs.append(("public", "public", {"COUNTS_DAGSTER_INTERNALS": "false"}))
    projects = {}
    for name, label, extra in runs:
        home = work / f"{label}_home"
        home.mkdir()
        env = PLATFORM_ENV | {"DAGSTER_HOME": str(home)} | extra
        server = None
        if args.storage == "postgresql":
            from counts_tests.postgres_server import PostgresServer

            server = PostgresServer.create()
            server.start()
            env["COUNTS_DAGSTER_PG_URL"] = server.create_database("dagster")
            shutil.copy(ROOT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
        else:
            shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
        try:
            projects[name] = child("project", work, args.days, env, label)
        finally:
            if server:
                server.stop()
        print(f"project ({args.storage}, {name}): {projects[name]}", flush=True)
    expected = files_of(work / "reference")
    print(
        "\n| orgs x days | records | files | storage | Dagster | reference | project | ratio | "
        "peak RSS reference | peak RSS project | identical |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, label, _), proj in zip(runs, projects.values(), strict=True):
        made = files_of(work / label)
        ratio = proj["seconds"] / ref["seconds"]
        print(
            f"| {args.orgs} x {args.days} | {rows['contact_records']} | {len(made)} | "
            f"{args.storage} | {name} | "
            f"{ref['seconds']:.1f}s | {proj['seconds']:.1f}s | {ratio:.2f}x | "
            f"{ref['peak_rss_mb']:.0f} MB | {proj['peak_rss_mb']:.0f} MB | {made == expected} |"
        )
    proj = projects["internals"]
    print(f"\nDagster events stored: {proj['events']}; workdir {work}")
    if not os.environ.get("KEEP_WORKDIR") and args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
