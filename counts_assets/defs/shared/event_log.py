"""Writing many asset records at once: `record_together` hands a run's records to the instance
as one batch, and the embedded instance's event log (Dagster's SQLite storage) writes each
batch in one transaction per database instead of one per event.

A ranged export run records every partition of its range; Dagster hands those records over in
batches when `DAGSTER_EVENT_BATCH_SIZE` is set (`definitions.py` sets it), and its
PostgreSQL storage writes a batch at once. Its SQLite storage has no batch writer and stores
them one by one, each time opening both databases anew (about 10 ms an event). This class adds
the batch writer the way the PostgreSQL storage does it; everything else is Dagster's SQLite
storage, the same files under $DAGSTER_HOME/history/runs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence

import dagster as dg

# Dagster has no public name for its storage classes (a storage is extended by subclassing
# them) nor for writing user records as a batch. These imports, and the helpers used below, are
# pinned by the lock and checked against Dagster's own writer by counts_tests/test_event_log.py.
from dagster._core.events import DagsterEventBatchMetadata
from dagster._core.storage.event_log import SqlEventLogStorageTable, SqliteEventLogStorage
from dagster._serdes import ConfigurableClassData


def record_together(
    context: dg.AssetExecutionContext, materializations: Sequence[dg.AssetMaterialization]
) -> list[dg.DagsterEvent]:
    """Records materializations of one asset as one batch, the way Dagster records a ranged
    output's partitions: one write to the instance when `DAGSTER_EVENT_BATCH_SIZE` is set
    (`definitions.py` sets it), one per record otherwise. They are stored here, when this
    returns, not when the asset yields the events it returns (as `context.log_event` does, so
    they are also in the run's result): callers rely on that to release a pair's lock only
    after its record is stored. A record on its own costs about 10 ms on SQLite, most of a
    short partition's cost."""
    keys = {m.asset_key for m in materializations}
    # A batch updates the asset's newest record from its last event (Dagster's PostgreSQL
    # storage does the same): one asset per batch.
    if len(keys) > 1:
        raise dg.DagsterInvariantViolationError(
            f"one asset per batch, got {sorted(k.to_user_string() for k in keys)}"
        )
    step = context.op_execution_context._step_execution_context  # what log_event uses
    batch_id = str(uuid.uuid4())
    last = len(materializations) - 1
    return [
        dg.DagsterEvent.asset_materialization(
            step, materialization, DagsterEventBatchMetadata(batch_id, n == last)
        )
        for n, materialization in enumerate(materializations)
    ]


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        if base_dir is None:
            # Where Dagster's default instance keeps it, so history made before stays readable.
            home = os.environ.get("DAGSTER_HOME")
            if not home:
                raise dg.DagsterInvariantViolationError(
                    "BatchedSqliteEventLogStorage: set DAGSTER_HOME, or give base_dir in "
                    "dagster.yaml (event_log_storage.config.base_dir)"
                )
            base_dir = os.path.join(home, "history", "runs")
        super().__init__(base_dir=base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict:
        return {"base_dir": dg.Field(dg.StringSource, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: dict
    ) -> BatchedSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events: Sequence[dg.EventLogEntry]) -> None:
        types = {event.get_dagster_event().event_type for event in events}
        run_ids = {event.run_id for event in events}
        if types != {dg.DagsterEventType.ASSET_MATERIALIZATION} or len(run_ids) != 1:
            super().store_event_batch(events)  # one by one, as Dagster does
            return
        insert = self.prepare_insert_event_batch(events)
        with self.run_connection(run_ids.pop()) as conn:
            conn.execute(insert)
        # The cross-run index: the same rows, their tags, and each asset's newest event.
        with self.index_transaction() as conn:
            ids = sorted(
                row[0] for row in conn.execute(insert.returning(SqlEventLogStorageTable.c.id))
            )
            self._store_asset_event_tags(conn, events, ids)
            newest = {
                event.dagster_event.asset_key: (event, event_id)
                for event, event_id in zip(events, ids, strict=True)
            }
            for event, event_id in newest.values():
                self._store_asset_event(conn, event, event_id)
