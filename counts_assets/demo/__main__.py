"""`python -m counts_assets.demo`: demo store -> daily and monthly files for every demo org.

Runs on the embedded defaults (SQLite store, ./organizations, ./data/exports) against the
persistent Dagster instance in $DAGSTER_HOME, so the UI (`scripts/ui.sh`) shows the runs
afterwards."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from counts_assets.core import settings
from counts_assets.core.delivery.targets import OutboxTarget
from counts_assets.core.health import due_periods
from counts_assets.core.orgs.models import Organization
from counts_assets.core.orgs.registry import load_registry
from counts_assets.definitions import default_resources, defs
from counts_assets.defs.health.view import fleet_health, health_cache, report
from counts_assets.defs.shared.partitions import ORGS_PARTITION_SET, partition_key
from counts_assets.defs.shared.runs import RANGE_END_TAG, RANGE_START_TAG
from counts_assets.demo.store import apply_late_edits, generate_store
from counts_assets.status import destination_from_settings

DEMO_FIRST = dt.date(2026, 8, 1)
DEMO_LAST = dt.date(2026, 11, 24)
# The terminal shows warnings and the summary; every event is still in the instance and the UI.
QUIET = {"console": {"config": {"log_level": "WARNING"}}}


def ensure_store(url: str, fresh: bool) -> bool:
    """True when a new store was generated."""
    engine = sa.create_engine(url)
    database = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and database:
        path = Path(database)
        if fresh:
            path.unlink(missing_ok=True)
        if path.exists():
            print(f"demo store: {path} (kept; --fresh makes a new one)")
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
    counts = generate_store(engine, DEMO_FIRST, DEMO_LAST)
    print(f"demo store: {url}: " + ", ".join(f"{n:,} {table}" for table, n in counts.items()))
    return True


def last_due(orgs: Iterable[Organization]) -> tuple[dt.date, dt.date]:
    """The newest day and month due for any of the orgs now."""
    now = dt.datetime.now(dt.UTC)
    grace = dt.timedelta(minutes=settings.current().grace_minutes)
    days, months = [DEMO_LAST], [DEMO_LAST.replace(day=1)]
    for org in orgs:
        days += due_periods(org, now, grace, settings.current().first_date, monthly=False)[-1:]
        months += due_periods(org, now, grace, settings.current().first_date, monthly=True)[-1:]
    return max(days), max(months)


def run_range(
    instance: dg.DagsterInstance, job_name: str, start: str, end: str, orgs: list[str]
) -> None:
    """One ranged run, making only the registered orgs (`orgs`) of the range: an org whose
    file was removed stays in the `orgs` partitions, and is left alone."""
    job = defs.resolve_job_def(job_name)
    (step,) = [node.name for node in job.nodes]
    result = job.execute_in_process(
        instance=instance,
        run_config=dg.RunConfig(loggers=QUIET, ops={step: {"config": {"orgs": orgs}}}),
        tags={RANGE_START_TAG: start, RANGE_END_TAG: end},
        raise_on_error=False,
    )
    print(
        f"{job_name} {start} .. {end}: {'succeeded' if result.success else 'FAILED'}"
        f" (run {result.run_id})"
    )


def register_orgs(instance: dg.DagsterInstance) -> None:
    """org_registry_sensor's tick, its runs executed here instead of by the daemon: the orgs
    become partitions, and the periods before each org's share_from are recorded (no file), so
    the UI's partition view shows only real gaps. The registry's own observations are left to
    the daemon's sensor, which records them when the UI starts."""
    context = dg.build_sensor_context(instance=instance, resources=default_resources())
    result = defs.get_sensor_def("org_registry_sensor")(context)
    if not isinstance(result, dg.SensorResult):
        return
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    for request in result.run_requests:
        started = time.perf_counter()
        run = defs.resolve_job_def(request.job_name).execute_in_process(
            instance=instance,
            run_config=dg.RunConfig(loggers=QUIET),
            tags=request.tags,
            raise_on_error=False,
        )
        first, last = request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]
        print(
            f"before share_from, recorded as writing no file: {first} .. {last} "
            f"({time.perf_counter() - started:.0f}s"
            + (")" if run.success else ", run FAILED: see the UI)")
        )


def show_health(instance: dg.DagsterInstance) -> None:
    """Makes the fleet_health asset (the UI's per-organization table) and prints the table."""
    defs.resolve_job_def("fleet_health_job").execute_in_process(
        instance=instance, run_config=dg.RunConfig(loggers=QUIET)
    )
    rows = fleet_health(
        instance,
        load_registry(settings.current().orgs_dir, settings.current().first_date),
        dt.datetime.now(dt.UTC),
        destination_from_settings(),
        cache_dir=health_cache(instance),
    )
    print("\nfleet_health (also in the UI, made again every hour):")
    for line in report(rows):
        print(f"  {line}".rstrip())


def deliver_pending(instance: dg.DagsterInstance) -> None:
    """delivery_sensor's ticks, their runs executed here instead of by the daemon, until no
    pair is pending."""
    resources = default_resources()
    # Initialized: COUNTS_DELIVERY_URL, when set, is an EnvVar until then.
    outbox = resources["delivery"].process_config_and_initialize().target()
    if isinstance(outbox, OutboxTarget):
        outbox.base.mkdir(parents=True, exist_ok=True)  # the demo's own outbox
    cursor, failed = None, 0
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    while True:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        result = defs.get_sensor_def("delivery_sensor")(context)
        cursor = result.cursor
        if not result.run_requests:
            break
        for request in result.run_requests:
            run = defs.resolve_job_def(request.job_name).execute_in_process(
                instance=instance,
                run_config={**request.run_config, "loggers": QUIET},
                tags=request.tags,
                raise_on_error=False,
            )
            failed += not run.success
            if request.job_name != "delivery_job":  # a journal recovery
                continue
            org_id = request.run_config["ops"]["deliver_pairs"]["config"]["org_id"]
            statuses = Counter(
                m.metadata["status"].value
                for m in run.asset_materializations_for_node("deliver_pairs")
            )
            outcomes += statuses
            print(
                f"delivery: {org_id}: {statuses['delivered']} pairs delivered, "
                f"{statuses['unchanged']} already there"
                + ("" if run.success else " (run FAILED: see the UI)")
            )
        if failed:
            break  # what failed stays pending; the daemon's sensor retries it
    print(
        f"delivery: {outcomes['delivered']} pairs ({2 * outcomes['delivered']} files) sent to "
        f"{outbox.describe()}, {outcomes['unchanged']} already there, "
        f"in {time.perf_counter() - started:.1f}s; {failed} runs failed"
    )


def show_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> None:
    """Prints a materialization's metadata as the UI lists it."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]),
        limit=1,
    ).records
    if not records:
        return
    print(f"\n{asset} {partition}:")
    for name, value in records[0].asset_materialization.metadata.items():
        text = str(value.value)
        print(f"  {name}: " + ("\n    " + text.replace("\n", "\n    ") if "\n" in text else text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fresh", action="store_true", help="regenerate the demo store")
    args = parser.parse_args()

    url = settings.current().source_url
    new_store = ensure_store(url, args.fresh)
    registry = load_registry(settings.current().orgs_dir, settings.current().first_date)
    for error in registry.errors:
        print(f"organization file rejected: {error}")
    instance = dg.DagsterInstance.get()
    register_orgs(instance)
    ordered = [o for o in instance.get_dynamic_partitions(ORGS_PARTITION_SET) if o in registry.orgs]
    first_org, last_org = ordered[0], ordered[-1]

    first = min(org.share_from for org in registry.orgs.values())
    # Through the last period due, as automation would: the store has contacts up to DEMO_LAST,
    # and the days after it are files without records.
    last_day, last_month = last_due(registry.orgs.values())
    run_range(
        instance,
        "daily_export_job",
        partition_key(False, first_org, first),
        partition_key(False, last_org, last_day),
        ordered,
    )
    if new_store:
        edits = apply_late_edits(sa.create_engine(url))
        print(
            "late changes after the daily files were made (the monthly files restate them): "
            + ", ".join(f"{n} records {change}" for change, n in edits.items())
        )
    run_range(
        instance,
        "monthly_reconciliation_job",
        partition_key(True, first_org, first.replace(day=1)),
        partition_key(True, last_org, last_month),
        ordered,
    )
    deliver_pending(instance)
    export_dir = settings.current().export_dir
    files = sorted(export_dir.rglob("*.csv"))
    print(f"\n{len(files)} files in {export_dir.resolve()}:")
    for org_dir in sorted(p for p in export_dir.iterdir() if p.is_dir() and p.name[0] != "."):
        for cadence in ("daily", "monthly"):
            made = sorted((org_dir / cadence).glob("*.csv"))
            if made:
                print(
                    f"  {org_dir.name}/{cadence}: {len(made)} files, "
                    f"{made[0].name} .. {made[-1].name}"
                )
    show_metadata(instance, "daily_summary_file", partition_key(False, "gateway211", DEMO_LAST))
    show_metadata(
        instance, "monthly_summary_file", partition_key(True, "gateway211", dt.date(2026, 10, 1))
    )
    show_health(instance)
    print("\nOpen the UI: ./scripts/ui.sh  (then http://127.0.0.1:3000)")


if __name__ == "__main__":
    main()
