"""Audit benchmark: `delivery_audit` reading back a fleet's recent pairs over SFTP.

Publishes N orgs x the last D days (and the last 2 months) of pairs, puts them on a real
OpenSSH server on loopback as delivered and records their ledger entries, then materializes
`delivery_audit` in process against that server and prints the time against the 60 s target,
with what the audit found (nothing, unless the delivered copies were altered).

    .venv/bin/python benchmarks/audit.py --orgs 150 --days 35
    .venv/bin/python benchmarks/audit.py --smoke   # a tiny run: it finishes and prints
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.delivery import pair_bytes, write_orgs  # noqa: E402
from counts_assets.core.pairs.store import PairStore  # noqa: E402
from counts_assets.defs.delivery.audit import delivery_audit  # noqa: E402
from counts_assets.defs.delivery.ledger import ledger_key  # noqa: E402
from counts_assets.defs.delivery.resources import DeliveryResource  # noqa: E402
from counts_assets.defs.shared.cadence import DAILY, MONTHLY  # noqa: E402
from counts_assets.defs.shared.resources import ExportFiles, OrgRegistry  # noqa: E402
from counts_tests.sftp_server import SftpServer  # noqa: E402

TARGET_SECONDS = 60


def periods(days: int) -> list[tuple[object, str, str]]:
    """(cadence, period, partition date) of the last `days` days and the last 2 months."""
    today = dt.date.today()
    out = [
        (DAILY, (today - dt.timedelta(days=n)).isoformat(), (today - dt.timedelta(days=n)))
        for n in range(1, days + 1)
    ]
    month = today.replace(day=1)
    for _ in range(2):
        month = (month - dt.timedelta(days=1)).replace(day=1)
        out.append((MONTHLY, month.strftime("%Y-%m"), month))
    return out


def deliver_directly(instance, export_dir: Path, base: Path, destination_of, orgs, days) -> int:
    """Publishes, records, copies to the server and records the ledger, as a delivery would."""
    store = PairStore(export_dir)
    pairs = 0
    for org in orgs:
        (base / org).mkdir(parents=True, exist_ok=True)
        for n, (cadence, period, start) in enumerate(periods(days)):
            with store.locked(org, period) as pair:
                files = {f.kind: f for f in pair.publish(pair_bytes(start, n))}
                partition = f"{start.isoformat()}|{org}"
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(
                        cadence.summary,
                        partition=partition,
                        metadata={
                            "status": "published",
                            "sha256": files["summary"].sha256,
                            "needs_sha256": files["needs"].sha256,
                        },
                    )
                )
                pair.drop_journal()
            for kind in ("needs", "summary"):
                shutil.copy(files[kind].path, base / org / files[kind].path.name)
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    ledger_key(cadence),
                    partition=partition,
                    metadata={
                        "status": "delivered",
                        "target": destination_of(org),
                        "summary_sha256": files["summary"].sha256,
                        "needs_sha256": files["needs"].sha256,
                    },
                )
            )
            pairs += 1
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=150)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--smoke", action="store_true", help="2 orgs x 3 days: it finishes")
    args = parser.parse_args()
    if args.smoke:
        args.orgs, args.days = 2, 3

    with tempfile.TemporaryDirectory(prefix="counts-audit-bench-") as tmp:
        root = Path(tmp)
        server = SftpServer.create(root / "sshd")
        server.start()
        try:
            orgs_dir, export_dir = root / "orgs", root / "exports"
            orgs = write_orgs(orgs_dir, args.orgs)
            base = server.root / "delivered"
            base.mkdir()
            delivery = DeliveryResource(
                url=server.url(str(base)),
                key_file=str(server.client_key),
                known_hosts=str(server.known_hosts),
                audit_days=args.days,
            )
            resources = {
                "delivery": delivery,
                "org_registry": OrgRegistry(orgs_dir=str(orgs_dir), first_date="2024-01-01"),
                "export_files": ExportFiles(export_dir=str(export_dir)),
            }
            (root / "home").mkdir()
            with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
                instance.add_dynamic_partitions("orgs", orgs)
                started = time.perf_counter()
                pairs = deliver_directly(
                    instance,
                    export_dir,
                    base,
                    lambda org: delivery.destination(org),
                    orgs,
                    args.days,
                )
                print(f"setup: {pairs} pairs delivered in {time.perf_counter() - started:.0f}s")
                started = time.perf_counter()
                result = dg.materialize([delivery_audit], instance=instance, resources=resources)
                elapsed = time.perf_counter() - started
                (record,) = result.asset_materializations_for_node("delivery_audit")
                findings = record.metadata["findings"].value
        finally:
            server.stop()
    print("\n| orgs x periods | pairs read back | files | audit | target | findings |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.orgs} x ({args.days} days + 2 months) | {pairs} | {2 * pairs} | "
        f"{elapsed:.1f}s | {TARGET_SECONDS}s ({elapsed / TARGET_SECONDS:.2f}x) | {findings} |"
    )


if __name__ == "__main__":
    main()
