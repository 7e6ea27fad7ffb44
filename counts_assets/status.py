"""`python -m counts_assets.status`: is every centre fine today? A summary line, what needs
attention (each org's problems and what to do), then one line per organization file: fine or
not, the newest daily and monthly pair made and the newest daily pair its destination holds, the
data-quality findings of its last 7 Call Dates, what the newest delivery audit verified, and
its permission. An org is fine when every period that is due (from share_from through the last
ended one, plus the grace period) has its published pair, the current destination holds it (or it
waits for permission, said so), no period's latest run failed and the audit found nothing. A
rejected organization file is a line that is not fine. Reads the Dagster instance in
$DAGSTER_HOME (and keeps a cache of what it read beside it); exits 1 when any line is not
fine."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import dagster as dg

from counts_assets.core import settings
from counts_assets.core.orgs.models import Organization
from counts_assets.core.orgs.registry import load_registry
from counts_assets.definitions import default_resources
from counts_assets.defs.health.view import fleet_health, health_cache, report


def destination_from_settings() -> Callable[[Organization], str]:
    """Where each org's pairs go now, by COUNTS_DELIVERY_URL, as the platform reads it."""
    delivery = default_resources()["delivery"].process_config_and_initialize()
    return lambda org: delivery.destination(org.remote_dir)


def main() -> int:
    registry = load_registry(settings.current().orgs_dir, settings.current().first_date)
    with dg.DagsterInstance.get() as instance:
        rows = fleet_health(
            instance,
            registry,
            dt.datetime.now(dt.UTC),
            destination_from_settings(),
            cache_dir=health_cache(instance),
        )
    print("\n".join(report(rows)))
    return 0 if all(r.fine for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
