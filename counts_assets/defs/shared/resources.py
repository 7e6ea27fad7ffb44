"""Configurable resources: where the organization files are, where the files are written.
The contact-record store's resource lives with the exports (`defs/exports/resources.py`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg

from counts_assets.core.orgs.registry import Registry, load_registry
from counts_assets.core.pairs.store import PairStore


class OrgRegistry(dg.ConfigurableResource):
    """The organization YAML files (`COUNTS_ORGS_DIR`)."""

    orgs_dir: str
    first_date: str

    def load(self) -> Registry:
        return load_registry(Path(self.orgs_dir), dt.date.fromisoformat(self.first_date))


class ExportFiles(dg.ConfigurableResource):
    """Where published files live (`COUNTS_EXPORT_DIR`), and how long a run waits for a
    pair's lock (`COUNTS_LOCK_WAIT_SECONDS`) before that pair fails alone."""

    export_dir: str
    lock_wait_seconds: float = 60.0

    @property
    def root(self) -> Path:
        return Path(self.export_dir)

    def store(self, holder: str = "") -> PairStore:
        """The pairs, locked on behalf of `holder` (a run), waits bounded."""
        return PairStore(self.root, self.lock_wait_seconds, holder)
