"""Configurable resources: where the organization files are, where the files are written.
The source reader lives with the source (`counts_assets.source.reader`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg

from counts_assets.orgs.registry import Registry, load_registry


class OrgRegistry(dg.ConfigurableResource):
    """The organization YAML files (`COUNTS_ORGS_DIR`)."""

    orgs_dir: str
    first_date: str

    def load(self) -> Registry:
        return load_registry(Path(self.orgs_dir), dt.date.fromisoformat(self.first_date))


class ExportFiles(dg.ConfigurableResource):
    """Where published files live (`COUNTS_EXPORT_DIR`)."""

    export_dir: str

    @property
    def root(self) -> Path:
        return Path(self.export_dir)
