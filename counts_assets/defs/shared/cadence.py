"""The two cadences of the export: daily (`date` x `org`) and monthly (`month` x `org`), each
with its four assets and its partitions. Every domain names the export's assets through them."""

from __future__ import annotations

import dagster as dg

from counts_assets.defs.shared.partitions import daily_partitions, monthly_partitions


class Cadence:
    def __init__(self, name: str, partitions_def: dg.MultiPartitionsDefinition) -> None:
        self.name = name
        self.monthly = name == "monthly"
        self.partitions_def = partitions_def
        self.raw = dg.AssetKey(f"{name}_raw_contacts")
        self.mapped = dg.AssetKey(f"{name}_mapped_demographics")
        self.summary = dg.AssetKey(f"{name}_summary_file")
        self.needs = dg.AssetKey(f"{name}_needs_file")


DAILY = Cadence("daily", daily_partitions)
MONTHLY = Cadence("monthly", monthly_partitions)
