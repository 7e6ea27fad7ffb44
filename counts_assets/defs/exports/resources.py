"""The export domain's resource: the contact-record store it reads."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from pydantic import PrivateAttr

from counts_assets.core.orgs.models import Organization
from counts_assets.core.source.reader import SourceStore, source_engine
from counts_assets.core.source.tables import SourceTables


class SourceReader(dg.ConfigurableResource):
    """The contact-record store (`COUNTS_SOURCE_URL`)."""

    url: str
    _store: SourceStore | None = PrivateAttr(default=None)

    def store(self) -> SourceStore:
        if self._store is None:
            self._store = SourceStore(source_engine(self.url))
        return self._store

    def read(self, org: Organization, first: dt.date, last: dt.date) -> SourceTables:
        return self.store().read(org, first, last)
