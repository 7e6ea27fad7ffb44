"""Delivery benchmark on the daemon path, against its floor, in one invocation.

Publishes N orgs x D days of daily pairs (written through the pair store and recorded as file
materializations, as an export run records them), starts a real OpenSSH server on loopback,
then measures:

- the floor: one paramiko session putting the same files (temporary name, then posix-rename);
- one in-process evaluation of `delivery_sensor` with every pair pending;
- the platform: dagster-daemon (with dagster-webserver) delivering every pair through
  `delivery_sensor` and its delivery runs, from daemon start until the last file is in place
  and every delivery run has finished; peak RSS of any dagster process, sampled each second.

    .venv/bin/python benchmarks/delivery.py --orgs 20 --days 365
    .venv/bin/python benchmarks/delivery.py --smoke   # a tiny run: it finishes and prints
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
import paramiko

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from counts_assets.core.pairs.store import PairStore  # noqa: E402
from counts_assets.defs.delivery.resources import DeliveryResource  # noqa: E402
from counts_assets.defs.delivery.sensors import delivery_sensor  # noqa: E402
from counts_assets.defs.shared.cadence import DAILY  # noqa: E402
from counts_assets.defs.shared.resources import ExportFiles, OrgRegistry  # noqa: E402
from counts_tests.dagster_processes import dagster_home, running_dagster  # noqa: E402
from counts_tests.sftp_server import SftpServer  # noqa: E402

FIRST = dt.date(2025, 1, 1)
SUMMARY_HEADER = "Call Date,Total Calls,Total Services,Report Version\n"
NEEDS_HEADER = (
    "Call Date,Zip Code,Taxonomy Code,Count,Need Was Unmet,Age,Gender,Ethnicity,"
    "Children In Household,Income Level,Source,Call Report Num\n"
)


def write_orgs(directory: Path, count: int) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    orgs = [f"org{n:03d}" for n in range(count)]
    for org in orgs:
        (directory / f"{org}.yaml").write_text(
            f"id: {org}\nname: Benchmark {org}\ntimezone: America/Chicago\n"
            f"share_from: {FIRST}\ncontact_forms: [211 Contact]\n"
            "interaction_filter:\n  all_211: true\n"
            "permission:\n  signed_on: 2024-12-01\n  document: LTR-BENCH\n  prior_years: true\n"
        )
    return orgs


def pair_bytes(day: dt.date, n: int) -> dict[str, tuple[bytes, int]]:
    calls = 1 + n % 7
    summary = SUMMARY_HEADER + f"{day},{calls},{n % 3},v2\n"
    needs = NEEDS_HEADER + "".join(
        f"{day},60601,BD-1800.2000,1,False,,,,,,,R{n}-{i}\n" for i in range(calls)
    )
    return {"summary": (summary.encode(), 1), "needs": (needs.encode(), calls)}


def publish_all(instance, export_dir: Path, orgs: list[str], days: int) -> list[tuple]:
    """Writes every pair and records it the way an export run does (the summary file's record
    names the pair)."""
    store = PairStore(export_dir)
    published = []
    for org in orgs:
        for offset in range(days):
            day = FIRST + dt.timedelta(days=offset)
            contents = pair_bytes(day, offset)
            with store.locked(org, day.isoformat()) as pair:
                files = {f.kind: f for f in pair.publish(contents)}
                partition = f"{day}|{org}"
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(
                        DAILY.summary,
                        partition=partition,
                        metadata={
                            "status": "published",
                            "path": str(files["summary"].path),
                            "sha256": files["summary"].sha256,
                            "size_bytes": files["summary"].size,
                            "needs_sha256": files["needs"].sha256,
                        },
                    )
                )
                pair.drop_journal()
            published += [(org, files["needs"].path), (org, files["summary"].path)]
    return published


def floor_seconds(server: SftpServer, base: Path, files: list[tuple]) -> float:
    """One paramiko session putting every file under a temporary name, then renaming it."""
    start = time.perf_counter()
    client = paramiko.SSHClient()
    client.load_host_keys(str(server.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1",
        port=server.port,
        username=server.user,
        key_filename=str(server.client_key),
        look_for_keys=False,
        allow_agent=False,
    )
    sftp = client.open_sftp()
    made = set()
    for org, path in files:
        folder = f"{base}/{org}"
        if folder not in made:
            sftp.mkdir(folder)
            made.add(folder)
        temp = f"{folder}/.{path.name}.part"
        sftp.put(str(path), temp)
        sftp.posix_rename(temp, f"{folder}/{path.name}")
    client.close()
    return time.perf_counter() - start


def dagster_rss_mb() -> float:
    """Largest resident set among the running dagster processes (daemon, webserver, runs)."""
    largest = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"dagster" not in cmdline:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    largest = max(largest, int(line.split()[1]))
        except OSError:
            continue
    return largest / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orgs", type=int, default=10)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--smoke", action="store_true", help="2 orgs x 3 days")
    args = parser.parse_args()
    if args.smoke:
        args.orgs, args.days = 2, 3

    with tempfile.TemporaryDirectory(prefix="counts-delivery-bench-") as tmp:
        root = Path(tmp)
        server = SftpServer.create(root / "sshd")
        server.start()
        try:
            orgs_dir, export_dir = root / "orgs", root / "exports"
            orgs = write_orgs(orgs_dir, args.orgs)
            home = root / "dagster_home"
            home.mkdir()
            (home / "dagster.yaml").write_text(
                (Path(__file__).resolve().parent.parent / "dagster.yaml").read_text()
            )
            started = time.perf_counter()
            with dagster_home(home), dg.DagsterInstance.from_config(str(home)) as instance:
                instance.add_dynamic_partitions("orgs", orgs)
                files = publish_all(instance, export_dir, orgs, args.days)
                print(
                    f"setup: {len(files) // 2} pairs published in "
                    f"{time.perf_counter() - started:.0f}s (not measured)"
                )

                floor_base = server.root / "floor"
                floor_base.mkdir()
                floor = floor_seconds(server, floor_base, files)

                base = server.root / "delivered"
                base.mkdir()
                url = server.url(str(base))
                resources = {
                    "delivery": DeliveryResource(
                        url=url,
                        key_file=str(server.client_key),
                        known_hosts=str(server.known_hosts),
                    ),
                    "org_registry": OrgRegistry(orgs_dir=str(orgs_dir), first_date=str(FIRST)),
                    "export_files": ExportFiles(export_dir=str(export_dir)),
                }
                tick_start = time.perf_counter()
                result = delivery_sensor(
                    dg.build_sensor_context(instance=instance, resources=resources)
                )
                tick = time.perf_counter() - tick_start
                print(
                    f"sensor evaluation with {len(files) // 2} pending pairs: {tick:.2f}s, "
                    f"{len(result.run_requests)} runs requested"
                )

            env = {
                "COUNTS_ORGS_DIR": str(orgs_dir),
                "COUNTS_EXPORT_DIR": str(export_dir),
                "COUNTS_FIRST_DATE": str(FIRST),
                "COUNTS_DELIVERY_URL": url,
                "COUNTS_SFTP_KEY_FILE": str(server.client_key),
                "COUNTS_SFTP_KNOWN_HOSTS": str(server.known_hosts),
                "COUNTS_SOURCE_URL": f"sqlite:///{root / 'unused.sqlite'}",
                # No export is due for these orgs' history: keep the schedules quiet.
                "COUNTS_GRACE_MINUTES": str(60 * 24 * 3650),
            }
            peak = 0.0
            start = time.perf_counter()
            with (
                running_dagster(home, env) as dagster,
                dg.DagsterInstance.from_config(str(home)) as instance,
            ):

                def done():
                    nonlocal peak
                    peak = max(peak, dagster_rss_mb())
                    delivered = sum(1 for p in base.rglob("*.csv"))
                    if delivered < len(files):
                        return None
                    runs = instance.get_runs(dg.RunsFilter(job_name="delivery_job"))
                    finished = all(r.is_finished for r in runs)
                    return runs if finished else None

                runs = dagster.wait_for(done, args.timeout, "every pair delivered", 1)
                elapsed = time.perf_counter() - start
            same = all(
                (base / org / path.name).read_bytes() == path.read_bytes() for org, path in files
            )
            failed = sum(r.status != dg.DagsterRunStatus.SUCCESS for r in runs)
        finally:
            server.stop()

    pairs = len(files) // 2
    print("\n| orgs x days | pairs | files | floor (1 session) | daemon + sensor | ratio |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.orgs} x {args.days} | {pairs} | {len(files)} | {floor:.1f}s | "
        f"{elapsed:.1f}s | {elapsed / floor:.1f}x |"
    )
    print(
        f"\ndelivery runs: {len(runs)} ({failed} failed); per 1,000 pairs: "
        f"{1000 * elapsed / pairs:.1f}s; peak RSS of a dagster process: {peak:.0f} MB; "
        f"every file byte-identical at the recipient: {same}"
    )


if __name__ == "__main__":
    main()
