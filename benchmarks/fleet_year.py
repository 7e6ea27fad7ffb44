"""The fleet's year, made and delivered in one go: one benchmark, end to end.

Builds a store of N orgs x D days (not measured), then, on a fresh Dagster instance (SQLite, the
embedded default, or PostgreSQL, the production configuration), starts the real
dagster-webserver, dagster-daemon and an OpenSSH server on loopback, and does what an operator
does: adds the org files, waits for their partitions, and launches one backfill of the daily
files over every org and day through the webserver's GraphQL API, as the UI does. The clock
runs from the moment the org files are added until the last run of the backfill or a delivery
ends, once every pair is at the recipient and nothing is pending (no run queued or running, no
published pair without a later ledger entry).

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
from typing import Any

import dagster as dg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.backfill import DAILY_ASSETS  # noqa: E402
from benchmarks.delivery import floor_seconds  # noqa: E402
from benchmarks.exports import add_storage_argument, build_store, org_files  # noqa: E402
from counts_assets.core.orgs.registry import load_registry  # noqa: E402
from counts_assets.defs.delivery.sensors import (  # noqa: E402
    DeliveryState,
    pending_pairs,
    storage_ids,
)
from counts_assets.defs.shared.runs import IN_FLIGHT  # noqa: E402
from counts_tests.dagster_processes import running_dagster  # noqa: E402
from counts_tests.postgres_server import PostgresServer  # noqa: E402
from counts_tests.sftp_server import SftpServer  # noqa: E402

FIRST = dt.date(2025, 1, 1)
LIMIT_GOAL_SECONDS = 600  # 150 orgs x 365 days made and delivered in 10 minutes
EXPORT_RATIO_GOAL = 3.0
DELIVERY_RATIO_GOAL = 5.0
RSS_GOAL_MB = 1024
FINAL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
POLL_SECONDS = 5
TICKS = os.sysconf("SC_CLK_TCK")
COMPUTE_LOG_PATH = re.compile(r"/storage/([0-9a-f-]{36})/compute_logs/")


# -- what every process costs ---------------------------------------------------------------


@dataclass
class Seen:
    root: str  # the kind of the process it descends from: daemon, webserver, sshd, ...
    parent: int = 0
    started: int = 0  # clock ticks since boot: with the pid, names the process (pids recur)
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
    second: its peak resident set (VmHWM: a peak between two samples counts) and its CPU time.
    What a process does in its last half second, and a process that lives less than that, is
    not seen."""

    roots: dict[int, str] = field(default_factory=dict)  # pid -> kind
    seen: dict[tuple[int, int], Seen] = field(default_factory=dict)  # (pid, started) -> ...
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
            started = int(stat[19])
            seen = self.seen.setdefault((pid, started), Seen(root, parent, started))
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

    def run_of_worker(self) -> dict[tuple[int, int], str]:
        """Worker -> run id, read from its compute-log `tail` children's paths (a worker is
        the newest process with the child's parent pid that started before the child)."""
        found = {}
        for child in self.seen.values():
            match = COMPUTE_LOG_PATH.search(child.command)
            if not match or not child.kind.startswith("compute log capture"):
                continue
            parents = [
                key for key in self.seen if key[0] == child.parent and key[1] <= child.started
            ]
            if parents:
                found[max(parents, key=lambda key: key[1])] = match.group(1)
        return found


# -- the floors ------------------------------------------------------------------------------


def independent_reference(work: Path, orgs_dir: Path, first: dt.date, last: dt.date) -> dict:
    """The reference in a process of its own (its peak RSS is its own, and it loads nothing of
    the platform); its figures are the last line it prints."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "independent_reference.py")]
        + ["--source", str(work / "store.sqlite"), "--orgs-dir", str(orgs_dir)]
        + ["--first", first.isoformat(), "--last", last.isoformat()]
        + ["--out", str(work / "reference")],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"the independent reference failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def files_under(folder: Path) -> dict[str, Path]:
    """Every CSV below `folder`, by its org folder and file name (the layouts differ below it:
    `<org>/daily/` in an export folder, `<remote_dir>/` at the recipient)."""
    return {f"{p.relative_to(folder).parts[0]}/{p.name}": p for p in folder.rglob("*.csv")}


# -- the platform ----------------------------------------------------------------------------


def covered(intervals: list[tuple[float, float]]) -> float:
    """Seconds inside at least one of the intervals (overlaps counted once)."""
    total, reached = 0.0, float("-inf")
    for start, end in sorted(intervals):
        total += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    return total


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
            continue  # Dagster's copy of the asset and run events of the runs' own shards
        engine = sa.create_engine(f"sqlite:///{shard}")
        with engine.connect() as connection:
            total += connection.exec_driver_sql("SELECT count(*) FROM event_logs").scalar_one()
        engine.dispose()
    return total


@dataclass
class Outcome:
    recipient: Path
    started_at: float = 0.0  # the org files added: the clock starts
    registered_at: float = 0.0
    launched_at: float = 0.0
    stopped_at: float = 0.0  # the last run of the backfill or a delivery ended
    observed_at: float = 0.0  # the poll that saw it all done
    backfill_id: str = ""
    backfill_status: str = ""
    runs: list[dg.RunRecord] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)  # run id -> Dagster's run stats
    script_cpu: float = 0.0  # this script's own CPU while the clock ran (its polling)


def run_the_year(
    args,
    work: Path,
    env: dict,
    instance_file: Path,
    staged_orgs: Path,
    recipient: Path,
    expected: int,
    sampler: ProcessSampler,
) -> Outcome:
    """Starts the platform, adds the org files, launches the backfill as the UI does, and
    waits until the backfill has ended, no run is queued or running, every file is at the
    recipient and no published pair lacks a later ledger entry (or the backfill failed)."""
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
        outcome.started_at = time.time()
        cpu_before = sum(os.times()[:2])
        dagster.wait_for(
            lambda: len(instance.get_dynamic_partitions("orgs")) == args.orgs,
            600,
            "org_registry_sensor to register every org",
        )
        outcome.registered_at = time.time()
        orgs = sorted(p.stem for p in staged_orgs.glob("*.yaml"))
        partitions = [
            f"{FIRST + dt.timedelta(days=d)}|{org}" for d in range(args.days) for org in orgs
        ]
        outcome.launched_at = time.time()
        outcome.backfill_id = dagster.launch_backfill(DAILY_ASSETS, partitions)
        registry = load_registry(orgs_dir, FIRST)

        def done() -> bool:
            # Cheapest first: this poll shares the two cores with what it measures.
            if instance.get_runs_count(dg.RunsFilter(statuses=IN_FLIGHT)):
                return False
            backfill = instance.get_backfill(outcome.backfill_id)
            outcome.backfill_status = backfill.status.value if backfill else "MISSING"
            if outcome.backfill_status not in FINAL_BACKFILL:
                return False
            if outcome.backfill_status != "COMPLETED_SUCCESS":
                return True  # it will not make every file: reported as a failure
            if files_at(recipient) < expected:
                return False  # the delivery sensor has not requested the last runs yet
            now = dt.datetime.now(dt.UTC)
            pending = pending_pairs(storage_ids(instance), DeliveryState(), registry.orgs, now)
            return not any(pending.values())

        dagster.wait_for(done, args.timeout, "every pair delivered", every=POLL_SECONDS)
        outcome.observed_at = time.time()
        outcome.script_cpu = sum(os.times()[:2]) - cpu_before
        outcome.runs = instance.get_run_records()
        outcome.stats = {
            r.dagster_run.run_id: instance.get_run_stats(r.dagster_run.run_id) for r in outcome.runs
        }
    ends = [
        s.end_time
        for r, s in zip(outcome.runs, outcome.stats.values(), strict=True)
        if s.end_time and kind_of_run(r, outcome.backfill_id) != "other"
    ]
    outcome.stopped_at = max(ends, default=outcome.observed_at)
    return outcome


def files_at(recipient: Path) -> int:
    """CSV files under the recipient's org folders."""
    total = 0
    for folder in os.scandir(recipient):
        if folder.is_dir():
            total += sum(1 for e in os.scandir(folder.path) if e.name.endswith(".csv"))
    return total


def kind_of_run(record: dg.RunRecord, backfill_id: str) -> str:
    run = record.dagster_run
    if run.tags.get("dagster/backfill") == backfill_id:
        return "export"
    return "delivery" if run.job_name == "delivery_job" else "other"


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
    rows = build_store(work, profiles, FIRST, last, args.per_day)

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
            # The year is history: the export schedules stay quiet, the backfill makes it.
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
        sampler.start()
        outcome = run_the_year(
            args, work, env, instance_file, staged_orgs, recipient, len(expected), sampler
        )
        sampler.stop()
        with (work / "processes.jsonl").open("w") as out:
            for (pid, _), seen in sampler.seen.items():
                out.write(json.dumps({"pid": pid, "kind": seen.kind, **asdict(seen)}) + "\n")
        events = events_stored(work / "dagster_home", pg_url)
    finally:
        sampler.stopping.set()
        server.stop()
        if postgres:
            postgres.stop()

    succeeded = report(args, work, reference, floor, expected, outcome, sampler, events, rows)
    if os.environ.get("KEEP_WORKDIR") or args.workdir is not None:
        print(f"\nkept {work} (processes.jsonl: every process sampled)")
    else:
        shutil.rmtree(work, ignore_errors=True)
    if not succeeded:
        raise SystemExit(1)


def report(
    args: argparse.Namespace,
    work: Path,
    reference: dict,
    floor: float,
    expected: dict[str, Path],
    outcome: Outcome,
    sampler: ProcessSampler,
    events: int,
    rows: dict,
) -> bool:
    """Prints the tables; True when the backfill and every delivery run succeeded and every
    file, made and delivered, is the reference's."""
    t0, stop = outcome.started_at, outcome.stopped_at
    by_kind: dict[str, list[dg.RunRecord]] = defaultdict(list)
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    waits: dict[str, list[float]] = defaultdict(list)
    for record in outcome.runs:
        kind = kind_of_run(record, outcome.backfill_id)
        by_kind[kind].append(record)
        stats = outcome.stats[record.dagster_run.run_id]
        # From the worker's launch (its process start and code load count as the run's).
        begin = stats.launch_time or stats.start_time
        if begin and stats.end_time:
            spans[kind].append((max(begin, t0), min(stats.end_time, stop)))
        if begin and stats.enqueued_time:
            waits[kind].append(begin - stats.enqueued_time)
    wall = stop - t0
    exports_end = max((end for _, end in spans["export"]), default=stop)
    exports_wall = exports_end - outcome.launched_at
    busy_exports, busy_delivery = covered(spans["export"]), covered(spans["delivery"])
    busy_any = covered(spans["export"] + spans["delivery"] + spans["other"])
    both = busy_exports + busy_delivery - covered(spans["export"] + spans["delivery"])
    made = compare(expected, work / "exports")
    at_recipient = compare(expected, outcome.recipient)
    limit = reference["seconds"] + floor
    pairs = len(expected) // 2

    print(f"\nbackfill {outcome.backfill_id}: {outcome.backfill_status}")
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
        f"| delivery (time any delivery run was in progress) | {busy_delivery:.1f} s | "
        f"{floor:.1f} s (one SFTP session, same files) | {busy_delivery / floor:.2f}x | "
        f"<= {DELIVERY_RATIO_GOAL:.0f}x (set for 20 x 365) |"
    )
    print("\n| time split (org files added -> last run ended) | seconds | share |")
    print("|---|---|---|")
    for label, seconds in (
        ("exports only", busy_exports - both),
        ("exports and delivery at once", both),
        ("delivery only", busy_delivery - both),
        (
            "other runs only (schedules of the health view, the audit)",
            busy_any - covered(spans["export"] + spans["delivery"]),
        ),
        ("no run in progress", wall - busy_any),
        (
            "  of which registering the orgs (files added -> every partition)",
            outcome.registered_at - t0,
        ),
        ("wall", wall),
        ("after the last export run (the delivery tail, within the above)", stop - exports_end),
    ):
        print(f"| {label} | {seconds:.1f} | {100 * seconds / wall:.0f}% |")
    print(
        f"\n(the poll saw it done {outcome.observed_at - stop:.1f} s after the last run ended; "
        f"this script used {outcome.script_cpu:.1f} s of CPU while the clock ran)"
    )

    print(
        "\n| runs | count | failed | mean run (launched -> end) | mean wait (queued -> launched) |"
    )
    print("|---|---|---|---|---|")
    failed = 0
    for kind, records in sorted(by_kind.items()):
        failures = sum(r.dagster_run.status != dg.DagsterRunStatus.SUCCESS for r in records)
        if kind != "other":
            failed += failures
        durations = [b - a for a, b in spans[kind]]
        jobs = ", ".join(sorted({r.dagster_run.job_name for r in records}))
        print(
            f"| {kind} ({jobs}) | {len(records)} | {failures} | {mean(durations):.1f} s | "
            f"{mean(waits[kind]):.1f} s |"
        )
    print(f"\nDagster events stored: {events} ({events / pairs:.1f} per pair)")

    kinds_of_run = {r.dagster_run.run_id: kind_of_run(r, outcome.backfill_id) for r in outcome.runs}
    run_of_worker = sampler.run_of_worker()
    processes: dict[str, list[Seen]] = defaultdict(list)
    for key, seen in sampler.seen.items():
        kind = seen.kind
        if kind == "run worker":
            kind += f" ({kinds_of_run.get(run_of_worker.get(key, ''), 'run not known')})"
        elif kind == "code server":
            kind += f" (of the {seen.root})"
        processes[kind].append(seen)
    print("\n| process | count | peak RSS (largest) | CPU time (sum) |")
    print("|---|---|---|---|")
    for kind, seen in sorted(processes.items()):
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
    succeeded = (
        identical
        and not failed
        and outcome.backfill_status == "COMPLETED_SUCCESS"
        and not reference["rejected_org_files"]
    )
    print(
        f"\nevery file identical to the independent reference, made and delivered: {identical}; "
        f"failed backfill or delivery runs: {failed}; succeeded: {succeeded}"
    )
    return succeeded


if __name__ == "__main__":
    main()
