"""The fleet's year, made and delivered in one go: one benchmark, end to end.

Builds a store of N orgs x D days (not measured), then, on a fresh Dagster instance (SQLite, the
embedded default, or PostgreSQL, the production configuration), starts the real
dagster-webserver, dagster-daemon and an OpenSSH server on loopback, and does what an operator
does: adds the org files, waits for their partitions, and launches one backfill of the daily
files over every org and day through the webserver's GraphQL API, as the UI does. The clock
runs from the moment the org files are added until every pair is at the recipient and nothing
is pending (no run queued or running, no published pair without a later ledger entry).

In the same invocation it measures the two floors the machine's limit is made of:

- the export work: an independent, Dagster-free computation of the same daily files with
  pandas + DuckDB (`benchmarks/independent_reference.py`), written from the file format, not
  from the platform's build code;
- the delivery work: one paramiko session putting every file of the reference (temporary name,
  read back by size, posix-rename), the way a delivery run sends a pair.

Every file the platform made, and every file at the recipient, is compared byte for byte with
the reference. Prints the time split (registering the orgs, exports, delivery, both at once,
idle), the runs, the events stored, the peak RSS and CPU time of every kind of process, and the
ratios: exports to the reference, delivery to its floor, the whole to the limit (reference +
delivery floor).

    .venv/bin/python benchmarks/fleet_year.py --orgs 150 --days 365
    .venv/bin/python benchmarks/fleet_year.py --orgs 20 --days 365 --storage postgresql
    .venv/bin/python benchmarks/fleet_year.py --smoke   # a tiny run: it finishes and prints
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.delivery import floor_seconds  # noqa: E402
from benchmarks.exports import add_storage_argument, org_files  # noqa: E402
from counts_assets.core.orgs.registry import load_registry  # noqa: E402
from counts_assets.defs.delivery.sensors import (  # noqa: E402
    DeliveryState,
    pending_pairs,
    storage_ids,
)
from counts_assets.demo.store import generate_store  # noqa: E402
from counts_tests.dagster_processes import running_dagster  # noqa: E402
from counts_tests.postgres_server import PostgresServer  # noqa: E402
from counts_tests.sftp_server import SftpServer  # noqa: E402

FIRST = dt.date(2025, 1, 1)
LIMIT_GOAL_SECONDS = 600  # 150 orgs x 365 days made and delivered in 10 minutes
EXPORT_RATIO_GOAL = 3.0
DELIVERY_RATIO_GOAL = 5.0
RSS_GOAL_MB = 1024
DAILY_ASSETS = [
    "daily_raw_contacts",
    "daily_mapped_demographics",
    "daily_summary_file",
    "daily_needs_file",
]
JOB_LABELS = {"delivery_job": "delivery"}
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
TICKS = os.sysconf("SC_CLK_TCK")
RUN_STORAGE = re.compile(r"/storage/([0-9a-f-]{36})/compute_logs/")


# -- what every process costs ---------------------------------------------------------------


@dataclass
class Seen:
    root: str  # the kind of the process it descends from: daemon, webserver, sshd, ...
    parent: int = 0
    command: str = ""
    peak_kb: int = 0
    cpu_ticks: int = 0

    @property
    def kind(self) -> str:
        """What the process is, by its command line: a code server starts each run's worker
        as a multiprocessing child, and the worker captures each step's output with `tail`
        processes and a watcher (Dagster's local compute logs)."""
        for marker, kind in (
            ("spawn_main", "run worker"),
            ("resource_tracker", "multiprocessing resource tracker"),
            ("compute_logs", "compute log capture (tail)"),
            ("watch_orphans", "compute log capture (watcher)"),
            ("api grpc", "code server"),
        ):
            if marker in self.command:
                return kind
        return self.root


@dataclass
class ProcessSampler:
    """Every process under the given roots (and their descendants), read from /proc twice a
    second: its peak resident set (VmHWM, so a peak between two samples is not missed) and its
    CPU time. A process that ends between two samples loses at most its last half second of
    CPU."""

    roots: dict[int, str] = field(default_factory=dict)  # pid -> kind
    seen: dict[int, Seen] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self.stopping.wait(0.5):
            self.sample()

    def sample(self) -> None:
        parents: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    stat = Path(f"/proc/{name}/stat").read_text()
                except OSError:
                    continue
                parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
        for pid, parent in parents.items():
            root = self._root(pid, parents)
            if root is None:
                continue
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue  # it ended: what was read of it before stands
            peak = next(
                (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")),
                0,
            )
            seen = self.seen.setdefault(pid, Seen(root, parent))
            # Read each time: a root is named after it starts, a child execs after its fork.
            seen.root = root
            if command:  # empty once it has ended, until its parent reaps it
                seen.command = command.replace(b"\0", b" ").decode(errors="replace")[:200]
            seen.peak_kb = max(seen.peak_kb, peak)
            seen.cpu_ticks = max(seen.cpu_ticks, int(stat[11]) + int(stat[12]))

    def _root(self, pid: int, parents: dict[int, int]) -> str | None:
        here = pid
        for _ in range(20):
            if here in self.roots:
                return self.roots[here]
            here = parents.get(here, 0)
            if here <= 1:
                return None
        return None

    def run_of_worker(self) -> dict[int, str]:
        """Worker pid -> run id, read from its compute-log `tail` children's paths."""
        found = {}
        for seen in self.seen.values():
            match = RUN_STORAGE.search(seen.command)
            if match and seen.kind.startswith("compute log capture"):
                found[seen.parent] = match.group(1)
        return found


# -- the floors ------------------------------------------------------------------------------

REFERENCE_CHILD = """
import datetime as dt, json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from benchmarks.independent_reference import make_daily_files
figures = make_daily_files(Path({source!r}), Path({orgs!r}), dt.date.fromisoformat({first!r}),
                           dt.date.fromisoformat({last!r}), Path({out!r}))
status = Path("/proc/self/status").read_text().splitlines()
figures["peak_rss_mb"] = next(int(s.split()[1]) for s in status if s.startswith("VmHWM")) / 1024
print(json.dumps(figures))
"""


def independent_reference(work: Path, orgs_dir: Path, first: dt.date, last: dt.date) -> dict:
    """The reference in a child process of its own, so that its peak RSS is its own."""
    code = REFERENCE_CHILD.format(
        root=str(ROOT),
        source=str(work / "store.sqlite"),
        orgs=str(orgs_dir),
        first=first.isoformat(),
        last=last.isoformat(),
        out=str(work / "reference"),
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def files_under(folder: Path) -> dict[str, Path]:
    """Every CSV below `folder`, by file name (the names hold the org and the period)."""
    return {p.name: p for p in folder.rglob("*.csv")}


# -- the platform ----------------------------------------------------------------------------


def interval_union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def covered(intervals: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in interval_union(intervals))


def events_stored(home: Path, pg_url: str | None) -> int:
    """Rows of Dagster's event log, wherever the instance keeps them."""
    if pg_url:
        engine = sa.create_engine(pg_url)
        with engine.connect() as connection:
            count = connection.exec_driver_sql("SELECT count(*) FROM event_logs").scalar_one()
        engine.dispose()
        return int(count)
    total = 0
    for shard in (home / "history" / "runs").glob("*.db"):
        if shard.name == "index.db":
            continue
        engine = sa.create_engine(f"sqlite:///{shard}")
        with engine.connect() as connection:
            total += connection.exec_driver_sql("SELECT count(*) FROM event_logs").scalar_one()
        engine.dispose()
    return total


@dataclass
class Outcome:
    recipient: Path = Path()
    registered_at: float = 0.0
    launched_at: float = 0.0
    stopped_at: float = 0.0
    backfill_status: str = ""
    runs: list = field(default_factory=list)
    pending: int = 0


def run_the_year(
    args,
    work: Path,
    env: dict,
    instance_file: Path,
    staged_orgs: Path,
    recipient: Path,
    expected: int,
    sampler: ProcessSampler,
    started: list[float],
) -> Outcome:
    """Starts the platform, adds the org files, launches the backfill as the UI does, and
    waits until every file is at the recipient and nothing is pending."""
    home = work / "dagster_home"
    orgs_dir = Path(env["COUNTS_ORGS_DIR"])
    outcome = Outcome(recipient)
    with (
        running_dagster(home, env, instance_file) as dagster,
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        for process in dagster.processes:
            sampler.roots[process.pid] = (
                "daemon" if process is dagster.processes[0] else "webserver"
            )
        for org_file in sorted(staged_orgs.glob("*.yaml")):
            shutil.copy(org_file, orgs_dir / org_file.name)
        started.append(time.time())
        dagster.wait_for(
            lambda: len(instance.get_dynamic_partitions("orgs")) == args.orgs,
            600,
            "org_registry_sensor to register every org",
        )
        outcome.registered_at = time.time()
        partitions = [
            f"{FIRST + dt.timedelta(days=d)}|{org}"
            for d in range(args.days)
            for org in sorted(p.stem for p in staged_orgs.glob("*.yaml"))
        ]
        outcome.launched_at = time.time()
        backfill_id = dagster.launch_backfill(DAILY_ASSETS, partitions)
        registry = load_registry(orgs_dir, FIRST)

        def delivered_and_settled() -> bool:
            status = dagster.backfill_status(backfill_id)
            if status in ("REQUESTED", "IN_PROGRESS"):
                return False
            outcome.backfill_status = status
            at_recipient = sum(1 for _ in recipient.rglob("*.csv"))
            if at_recipient < expected:
                return False
            if instance.get_runs_count(dg.RunsFilter(statuses=UNFINISHED)):
                return False
            now = dt.datetime.now(dt.UTC)
            pending = pending_pairs(storage_ids(instance), DeliveryState(), registry.orgs, now)
            outcome.pending = sum(len(p) for p in pending.values())
            return outcome.pending == 0

        dagster.wait_for(delivered_and_settled, args.timeout, "every pair delivered", every=2)
        outcome.stopped_at = time.time()
        outcome.runs = instance.get_run_records()
    return outcome


# -- the report ------------------------------------------------------------------------------


def compare(expected: dict[str, Path], folder: Path) -> dict[str, int]:
    """lost (absent), different (other bytes) and extra (a file the reference does not have)."""
    found = files_under(folder)
    lost = sum(1 for name in expected if name not in found)
    different = sum(
        1
        for name, path in expected.items()
        if name in found and found[name].read_bytes() != path.read_bytes()
    )
    extra = sum(1 for name in found if name not in expected)
    return {"lost": lost, "different": different, "extra": extra, "files": len(found)}


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=150)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=10, help="contacts per org and day")
    parser.add_argument("--timeout", type=float, default=4 * 3600)
    parser.add_argument("--workdir", type=Path, default=None)
    add_storage_argument(parser)
    parser.add_argument("--smoke", action="store_true", help="2 orgs x 3 days: it finishes")
    args = parser.parse_args()
    if args.smoke:
        args.orgs, args.days, args.per_day = 2, 3, 3

    work = args.workdir or Path(tempfile.mkdtemp(prefix="counts-fleet-year-"))
    last = FIRST + dt.timedelta(days=args.days - 1)
    staged_orgs = work / "org_files"
    profiles = org_files(staged_orgs, args.orgs, FIRST)
    clock = time.monotonic()
    rows = generate_store(
        sa.create_engine(f"sqlite:///{work / 'store.sqlite'}"),
        FIRST,
        last,
        args.per_day,
        profiles=profiles,
    )
    print(f"store: {rows} in {time.monotonic() - clock:.0f}s (not measured)", flush=True)

    reference = independent_reference(work, staged_orgs, FIRST, last)
    expected = files_under(work / "reference")
    print(f"independent reference: {reference}", flush=True)

    server = SftpServer.create(work / "sshd")
    server.start()
    postgres = None
    sampler = ProcessSampler()
    try:
        floor_base = server.root / "floor"
        floor_base.mkdir()
        floor_files = [(path.parent.parent.name, path) for path in expected.values()]
        floor = floor_seconds(server, floor_base, floor_files)
        print(f"delivery floor (one session, {len(floor_files)} files): {floor:.1f}s", flush=True)
        shutil.rmtree(floor_base)

        recipient = server.root / "recipient"
        recipient.mkdir()
        (work / "orgs").mkdir()
        env = {
            "COUNTS_SOURCE_URL": f"sqlite:///{work / 'store.sqlite'}",
            "COUNTS_ORGS_DIR": str(work / "orgs"),
            "COUNTS_EXPORT_DIR": str(work / "exports"),
            "COUNTS_FIRST_DATE": FIRST.isoformat(),
            "COUNTS_DELIVERY_URL": server.url(str(recipient)),
            "COUNTS_SFTP_KEY_FILE": str(server.client_key),
            "COUNTS_SFTP_KNOWN_HOSTS": str(server.known_hosts),
            # The year is history: the schedules stay quiet, the backfill makes it.
            "COUNTS_GRACE_MINUTES": str(60 * 24 * 3650),
        }
        instance_file = ROOT / "dagster.yaml"
        pg_url = None
        if args.storage == "postgresql":
            postgres = PostgresServer.create()
            postgres.start()
            pg_url = postgres.create_database("dagster")
            env["COUNTS_DAGSTER_PG_URL"] = os.environ["COUNTS_DAGSTER_PG_URL"] = pg_url
            instance_file = ROOT / "deploy" / "dagster.postgres.yaml"
            postmaster = int((postgres.folder / "data" / "postmaster.pid").read_text().split()[0])
            sampler.roots[postmaster] = "postgres"
        assert server.process is not None
        sampler.roots[server.process.pid] = "sshd"
        sampler.roots[os.getpid()] = "this script"
        sampler.start()
        started: list[float] = []
        outcome = run_the_year(
            args, work, env, instance_file, staged_orgs, recipient, len(expected), sampler, started
        )
        sampler.stop()
        with (work / "processes.jsonl").open("w") as out:
            for pid, seen in sampler.seen.items():
                out.write(json.dumps({"pid": pid, "kind": seen.kind, **asdict(seen)}) + "\n")
        events = events_stored(work / "dagster_home", pg_url)
    finally:
        if not sampler.stopping.is_set():
            sampler.stopping.set()
        server.stop()
        if postgres:
            postgres.stop()

    report(args, work, reference, floor, expected, outcome, started[0], sampler, events, rows)
    if not os.environ.get("KEEP_WORKDIR") and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


def report(args, work, reference, floor, expected, outcome, t0, sampler, events, rows) -> None:
    by_job: dict[str, list] = defaultdict(list)
    for record in outcome.runs:
        by_job[record.dagster_run.job_name].append(record)
    spans = {
        job: [(r.start_time, r.end_time) for r in records if r.start_time and r.end_time]
        for job, records in by_job.items()
    }
    export_spans = [s for job, ss in spans.items() if job != "delivery_job" for s in ss]
    delivery_spans = spans.get("delivery_job", [])
    wall = outcome.stopped_at - t0
    exports_end = max(end for _, end in export_spans)
    exports_wall = exports_end - outcome.launched_at
    busy_exports, busy_delivery = covered(export_spans), covered(delivery_spans)
    busy_any = covered(export_spans + delivery_spans)
    both = busy_exports + busy_delivery - busy_any
    idle = wall - busy_any
    made = compare(expected, work / "exports")
    at_recipient = compare(expected, outcome.recipient)
    limit = reference["seconds"] + floor
    pairs = len(expected) // 2

    print(f"\nbackfill: {outcome.backfill_status}; pending after: {outcome.pending}")
    print(
        "\n| orgs x days | storage | records | pairs | wall | limit (reference + floor) | "
        "wall / limit | goal |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.orgs} x {args.days} | {args.storage} | {rows['contact_records']} | {pairs} | "
        f"{wall:.0f} s | {reference['seconds']:.1f} + {floor:.1f} = {limit:.1f} s | "
        f"{wall / limit:.2f}x | {LIMIT_GOAL_SECONDS} s at 150 x 365 |"
    )
    print("\n| part | measured | floor | ratio | goal |")
    print("|---|---|---|---|---|")
    print(
        f"| exports (backfill launched -> last export run ended) | {exports_wall:.1f} s | "
        f"{reference['seconds']:.1f} s (independent reference) | "
        f"{exports_wall / reference['seconds']:.2f}x | <= {EXPORT_RATIO_GOAL:.0f}x |"
    )
    print(
        f"| delivery (delivery runs busy, union) | {busy_delivery:.1f} s | "
        f"{floor:.1f} s (one SFTP session) | {busy_delivery / floor:.2f}x | "
        f"<= {DELIVERY_RATIO_GOAL:.0f}x at 7,300 pairs |"
    )
    print("\n| time split (from adding the org files) | seconds | share |")
    print("|---|---|---|")
    for label, seconds in (
        ("registering the orgs (files added -> every partition)", outcome.registered_at - t0),
        ("exports only", busy_exports - both),
        ("exports and delivery at once", both),
        ("delivery only", busy_delivery - both),
        ("no run in progress (queue, sensor intervals, registering)", idle),
        ("after the last export run (delivery tail)", outcome.stopped_at - exports_end),
        ("wall", wall),
    ):
        print(f"| {label} | {seconds:.1f} | {100 * seconds / wall:.0f}% |")
    print("\n| runs | count | failed | mean run (start -> end) | mean wait (created -> start) |")
    print("|---|---|---|---|---|")
    for job, records in sorted(by_job.items()):
        failed = sum(r.dagster_run.status != dg.DagsterRunStatus.SUCCESS for r in records)
        durations = [b - a for a, b in spans[job]]
        waits = [r.start_time - r.create_timestamp.timestamp() for r in records if r.start_time]
        print(
            f"| {job} | {len(records)} | {failed} | {mean(durations):.1f} s | {mean(waits):.1f} s |"
        )
    print(f"\nDagster events stored: {events} ({events / pairs:.1f} per pair)")

    jobs = {r.dagster_run.run_id: r.dagster_run.job_name for r in outcome.runs}
    run_of_worker = sampler.run_of_worker()
    kinds: dict[str, list[Seen]] = defaultdict(list)
    for pid, seen in sampler.seen.items():
        kind = seen.kind
        if kind == "run worker":
            job = jobs.get(run_of_worker.get(pid, ""), "")
            kind = f"run worker ({JOB_LABELS.get(job, 'export' if job else 'run not known')})"
        kinds[kind].append(seen)
    print("\n| process | count | peak RSS (largest) | CPU time (sum) |")
    print("|---|---|---|---|")
    for kind, seen in sorted(kinds.items()):
        peak = max(s.peak_kb for s in seen) / 1024
        cpu = sum(s.cpu_ticks for s in seen) / TICKS
        flag = "" if peak <= RSS_GOAL_MB else f" (over {RSS_GOAL_MB} MB)"
        print(f"| {kind} | {len(seen)} | {peak:.0f} MB{flag} | {cpu:.1f} s |")
    print(
        f"| independent reference (child, before the platform) | 1 | "
        f"{reference['peak_rss_mb']:.0f} MB | {reference['seconds']:.1f} s (wall) |"
    )

    print("\n| files | expected | present | lost | different | extra |")
    print("|---|---|---|---|---|---|")
    for label, found in (("made (export folder)", made), ("at the recipient", at_recipient)):
        print(
            f"| {label} | {len(expected)} | {found['files']} | {found['lost']} | "
            f"{found['different']} | {found['extra']} |"
        )
    identical = all(
        found[k] == 0 for found in (made, at_recipient) for k in ("lost", "different", "extra")
    )
    print(f"\nevery file identical to the independent reference, made and delivered: {identical}")
    if not identical or outcome.pending:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
