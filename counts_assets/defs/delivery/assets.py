"""The delivery ledger: `daily_delivery` and `monthly_delivery`, partitioned like the files, one
materialization per pair sent (where, when, both files' size and SHA-256, what it replaced), and
one for a pair that needed no sending (`unchanged`: the destination already holds its bytes;
`no_file`: the period made none). An observation on a partition says why a pair waits (no
permission, target down, refused). The runs that write it are in `jobs.py`."""

import dagster as dg

from counts_assets.defs.delivery.ledger import (
    ledger_key,
)
from counts_assets.defs.shared.cadence import DAILY, MONTHLY, Cadence


def _ledger_spec(cadence: Cadence) -> dg.AssetSpec:
    return dg.AssetSpec(
        ledger_key(cadence),
        deps=[cadence.summary, cadence.needs],
        partitions_def=cadence.partitions_def,
        group_name="delivery",
        description=f"The {cadence.name} pair at 211 Counts: one entry per pair sent (where, "
        "when, size and SHA-256 of both files; `delivered`, or `redelivered` on request), or "
        "needing no sending (`unchanged`, `no_file`). A published pair is pending while its "
        "newest version is not the one last delivered to the current destination; observations say "
        "why it waits (waiting, failed, refused). Its partitions span every org from the "
        "platform's first date: a period before an org's share_from, not yet ended, or of an "
        "org without permission never has an entry, so the partition bar counts it as "
        "missing; fleet_health counts only what is due.",
    )


LEDGER_SPECS = [_ledger_spec(DAILY), _ledger_spec(MONTHLY)]
