"""The one module that uses Dagster's non-public surface, each use feature-detected, with
Dagster's public behaviour as the fallback. Everything else in the platform uses Dagster's
public API.

Why: a ranged export run records every pair it publishes, and a record on its own costs about
10 ms (two database transactions); on a fleet's year that is most of the run. Measured on 5
orgs x 365 days, the public path (one write per record) takes the export to 6.25x the
Dagster-free reference on SQLite and about 3x on PostgreSQL; with the batches below, under 2x
(`benchmarks/exports.py --public`).

- `record_together(context, materializations)` hands a batch of one asset's records to the
  instance as Dagster's own ranged outputs do (`DagsterEventBatchMetadata`): one write when
  `DAGSTER_EVENT_BATCH_SIZE` is set (`definitions.py` sets it in every process that runs a
  step). Fallback: `context.log_event` per record. Either way each record is stored when the
  call returns, so a pair's lock is released only after its record is written.
  `record_in_op` does the same for an op (a delivery run's ledger entries), the events kept
  where `context.log_event` keeps them, so they are in an in-process run's result too.
- `latest_storage_ids` reads the newest record id of every partition in one grouped query
  (`DagsterInstance.get_latest_storage_id_by_partition`). Fallback (None): the caller reads
  Dagster's public records, newest first.
- `tag_run` tags a run in flight (`DagsterInstance.add_run_tags`): a delivery run launched by
  hand says its org and destination, and a run that stopped at its batch limit asks for the
  next at once. Fallback: no tag; an untagged run's org is read from its config, its
  destination counts as an old one (the sensor waits for it before settling a change), and the
  next batch goes after the retry interval instead of at once.
- `asset_job_name` is Dagster's name for the job of runs launched from the asset pages.
  Fallback (None): the caller reads the runs of every job and keeps those that select its
  assets.
- `BatchedSqliteEventLogStorage` is Dagster's SQLite event log (the same files under
  $DAGSTER_HOME/history/runs) with the batch writer Dagster's PostgreSQL storage has, and it
  says yes to Dagster's "one planned event per asset for a ranged run" question, so every
  process that loads the instance (daemon, webserver, run worker) creates ranged runs the same
  way. Fallback: Dagster's one-by-one writes and Dagster's own answer. If Dagster no longer
  has the class it extends, naming it in dagster.yaml fails with what to do instead; the rest
  of this module still loads.
- `PlannedPostgresEventLogStorage` is Dagster's PostgreSQL event log with the same answer, for
  `deploy/dagster.postgres.yaml`. Fallback: Dagster's own answer; if dagster-postgres's event
  log takes other settings than this class passes on, naming it fails with what to do.

When an internal differs from what this module was written against (after a Dagster upgrade),
it warns once (`DagsterInternalsWarning`) and falls back. `COUNTS_DAGSTER_INTERNALS=false`
forces the fallback; the test suite runs the export and delivery tests that way."""

from __future__ import annotations

import functools
import inspect
import os
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg

try:
    # Dagster has no public name for its SQLite event log: a storage is extended by subclassing
    # it, and this is the module path Dagster's own documentation gives for it in dagster.yaml.
    from dagster._core.storage.event_log import SqliteEventLogStorage
except ImportError:  # only the storage class below needs it
    SqliteEventLogStorage = None

PLANNED_SUBSET = "supports_partition_subset_in_asset_materialization_planned_events"
_STORAGE_HELPERS = {
    "prepare_insert_event_batch": ["self", "events"],
    "run_connection": ["self", "run_id"],
    "index_transaction": ["self"],
    "_store_asset_event_tags": ["self", "conn", "events", "event_ids"],
    "_store_asset_event": ["self", "conn", "event", "event_id"],
}


class DagsterInternalsWarning(UserWarning):
    """A Dagster internal differs from what the platform expects: Dagster's public behaviour is
    used instead (slower, same results)."""


def internals_allowed() -> bool:
    # Only this variable: the daemon and webserver load this module with the instance, and a
    # wrong value of another setting must not stop them creating runs.
    return os.environ.get("COUNTS_DAGSTER_INTERNALS", "true").strip().casefold() != "false"


def _params(func: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(func).parameters)


@functools.cache
def announce_fallback(what: str) -> None:
    """Says once that an internal differs and what Dagster's public behaviour costs instead."""
    warnings.warn(
        f"Dagster {dg.__version__} differs from what counts_assets expects: {what}. Using "
        "Dagster's public behaviour instead (slower, same results).",
        DagsterInternalsWarning,
        stacklevel=3,
    )


@functools.cache
def _batch_metadata_type() -> type | None:
    """Dagster's DagsterEventBatchMetadata when step events are batched the way this module
    expects, else None (warned once)."""
    try:
        from dagster._core.events import DagsterEventBatchMetadata
    except ImportError:
        announce_fallback("no DagsterEventBatchMetadata: records are written one by one")
        return None
    if tuple(getattr(DagsterEventBatchMetadata, "_fields", ())) != ("id", "is_end"):
        announce_fallback(
            "DagsterEventBatchMetadata is not (id, is_end): records are written one by one"
        )
        return None
    for name, func in (
        ("DagsterEvent.asset_materialization", dg.DagsterEvent.asset_materialization),
        ("DagsterInstance.handle_new_event", dg.DagsterInstance.handle_new_event),
    ):
        if "batch_metadata" not in _params(func):
            announce_fallback(f"{name} takes no batch_metadata: records are written one by one")
            return None
    return DagsterEventBatchMetadata


@functools.cache
def _storage_batches() -> bool:
    changed = [
        name
        for name, params in _STORAGE_HELPERS.items()
        if getattr(SqliteEventLogStorage, name, None) is None
        or _params(getattr(SqliteEventLogStorage, name))[: len(params)] != params
    ]
    try:
        from dagster._core.storage.event_log import SqlEventLogStorageTable  # noqa: F401
    except ImportError:
        changed.append("SqlEventLogStorageTable")
    if changed:
        announce_fallback(
            f"the SQLite event log's {', '.join(changed)} changed: batches written one by one"
        )
    return not changed


def record_together(
    context: dg.AssetExecutionContext, materializations: Sequence[dg.AssetMaterialization]
) -> list[dg.DagsterEvent]:
    """Records materializations of one asset, stored when this returns: as one batch (the
    events returned are for the asset to yield, so they are in the run's result too), or
    through `context.log_event`, one by one (nothing to yield)."""
    keys = {m.asset_key for m in materializations}
    # A batch updates the asset's newest record from its last event (Dagster's PostgreSQL
    # storage does the same): one asset per batch.
    if len(keys) > 1:
        raise dg.DagsterInvariantViolationError(
            f"one asset per batch, got {sorted(k.to_user_string() for k in keys)}"
        )
    batch_metadata = _batch_metadata_type() if internals_allowed() else None
    step = getattr(context.op_execution_context, "_step_execution_context", None)
    if batch_metadata is not None and step is None:
        announce_fallback(
            "the op context has no _step_execution_context: records are written one by one"
        )
    if batch_metadata is None or step is None:
        for materialization in materializations:
            context.log_event(materialization)
        return []
    batch_id = str(uuid.uuid4())
    last = len(materializations) - 1
    return [
        dg.DagsterEvent.asset_materialization(
            step, materialization, batch_metadata(batch_id, n == last)
        )
        for n, materialization in enumerate(materializations)
    ]


def record_in_op(
    context: dg.OpExecutionContext, materializations: Sequence[dg.AssetMaterialization]
) -> None:
    """`record_together` for an op, which yields nothing: one batch per asset, stored when this
    returns. The events join those the op logged, where `context.log_event` keeps them (the
    context's `_events`), so they are in the run's result as logged events are."""
    by_asset: dict[dg.AssetKey, list[dg.AssetMaterialization]] = {}
    for materialization in materializations:
        by_asset.setdefault(materialization.asset_key, []).append(materialization)
    for batch in by_asset.values():
        events = record_together(context, batch)
        logged = getattr(context, "_events", None)
        if not events:
            continue
        if isinstance(logged, list):
            logged.extend(events)
        else:
            announce_fallback(
                "the op context keeps no _events: records are stored, but not in an in-process "
                "run's result"
            )


_NOT_CALLED = object()


def _call_instance(instance: dg.DagsterInstance, method: str, fallback: str, *args: Any) -> Any:
    """Calls a non-public instance method where the internals are allowed; `_NOT_CALLED` where
    they are off, or the method is missing or changed (said once, with `fallback`)."""
    call = getattr(instance, method, None)
    if call is None or not internals_allowed():
        if call is None:
            announce_fallback(f"no DagsterInstance.{method}: {fallback}")
        return _NOT_CALLED
    try:
        return call(*args)
    except TypeError:
        announce_fallback(f"DagsterInstance.{method} changed: {fallback}")
        return _NOT_CALLED


def latest_storage_ids(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: set[str] | None
) -> Mapping[str, int] | None:
    """The storage id of the newest materialization of every partition (or of those named) in
    one grouped query, or None: read them with Dagster's public record reads instead."""
    ids = _call_instance(
        instance,
        "get_latest_storage_id_by_partition",
        "records read in pages",
        asset_key,
        dg.DagsterEventType.ASSET_MATERIALIZATION,
        partitions,
    )
    return None if ids is _NOT_CALLED else ids


def tag_run(instance: dg.DagsterInstance, run_id: str, tags: Mapping[str, str]) -> bool:
    """Adds tags to a run in flight (Dagster has no public way); False where it cannot."""
    done = _call_instance(
        instance, "add_run_tags", "delivery runs are not tagged", run_id, dict(tags)
    )
    return done is not _NOT_CALLED


def asset_job_name() -> str | None:
    """The name of Dagster's job for the runs launched from the asset pages (a
    materialization, a backfill), or None where it cannot be read."""
    if not internals_allowed():
        return None
    try:
        from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
    except ImportError:
        announce_fallback("no IMPLICIT_ASSET_JOB_NAME: the runs of every job are read")
        return None
    return IMPLICIT_ASSET_JOB_NAME


class _PlansRangedRunsPerAsset:
    """Says yes to Dagster's "one planned event per asset for a ranged run" question, asked in
    whichever process creates a run; Dagster's own answer is the
    DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS variable, which only the processes given
    it see. The price, in Dagster's words: the partitions of a failed run show as missing, not
    failed (the run and the checks still say why)."""

    @property
    def supports_partition_subset_in_asset_materialization_planned_events(self) -> bool:
        if internals_allowed():
            return True
        return super().supports_partition_subset_in_asset_materialization_planned_events


def _plans_per_asset(storage_class: type) -> None:
    if not hasattr(storage_class, PLANNED_SUBSET):
        announce_fallback(f"no {PLANNED_SUBSET}: a ranged run plans one event per partition")


# The storage classes Dagster's installed version cannot give, and what to do instead: naming
# one in dagster.yaml fails with that, the rest of this module still loads.
_UNAVAILABLE: dict[str, str] = {}


def __getattr__(name: str) -> Any:
    if name in _UNAVAILABLE:
        raise ImportError(_UNAVAILABLE[name])
    if name == "PlannedPostgresEventLogStorage":
        return _planned_postgres_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if SqliteEventLogStorage is None:
    _UNAVAILABLE["BatchedSqliteEventLogStorage"] = (
        f"Dagster {dg.__version__} has no SqliteEventLogStorage where counts_assets expects it: "
        "remove event_log_storage from $DAGSTER_HOME/dagster.yaml to use Dagster's own event "
        "log (records then written one by one)"
    )
else:

    class BatchedSqliteEventLogStorage(_PlansRangedRunsPerAsset, SqliteEventLogStorage):
        def __init__(self, base_dir: str | None = None, inst_data: Any = None) -> None:
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
            _plans_per_asset(SqliteEventLogStorage)

        @classmethod
        def config_type(cls) -> dict:
            return {"base_dir": dg.Field(dg.StringSource, is_required=False)}

        @classmethod
        def from_config_value(
            cls, inst_data: Any, config_value: dict
        ) -> BatchedSqliteEventLogStorage:
            return cls(inst_data=inst_data, **config_value)

        def store_event_batch(self, events: Sequence[dg.EventLogEntry]) -> None:
            types = {event.get_dagster_event().event_type for event in events}
            run_ids = {event.run_id for event in events}
            if (
                types != {dg.DagsterEventType.ASSET_MATERIALIZATION}
                or len(run_ids) != 1
                or not internals_allowed()
                or not _storage_batches()
            ):
                super().store_event_batch(events)  # one by one, as Dagster does
                return
            from dagster._core.storage.event_log import SqlEventLogStorageTable

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


_POSTGRES_SETTINGS = [
    "self",
    "postgres_url",
    "should_autocreate_tables",
    "inst_data",
    "token_provider",
]


@functools.cache
def _planned_postgres_class() -> type:
    """Built when dagster.yaml first names it: importing dagster-postgres costs every process
    about a quarter of a second, and only the PostgreSQL instance needs it."""
    try:
        from dagster_postgres import PostgresEventLogStorage
        from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

        # A setting Dagster adds to its event log would be dropped by from_config_value below.
        differs = _params(PostgresEventLogStorage.__init__) != _POSTGRES_SETTINGS
    except ImportError:
        differs = True
    if differs:
        raise ImportError(
            f"dagster-postgres for Dagster {dg.__version__} differs from what counts_assets "
            "expects: in $DAGSTER_HOME/dagster.yaml, replace the three storages with Dagster's "
            "own (storage: postgres: postgres_url: env: COUNTS_DAGSTER_PG_URL) and set "
            "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true for every Dagster process"
        )

    class PlannedPostgresEventLogStorage(_PlansRangedRunsPerAsset, PostgresEventLogStorage):
        """Dagster's PostgreSQL event log (it writes batches itself), planning a ranged run with
        one event per asset in every process that loads the instance, as the embedded one
        does."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            _plans_per_asset(PostgresEventLogStorage)

        @classmethod
        def from_config_value(
            cls, inst_data: Any, config_value: dict
        ) -> PlannedPostgresEventLogStorage:
            # Dagster's own builds its base class by name; the same settings, this class.
            return cls(
                inst_data=inst_data,
                postgres_url=pg_url_from_config(config_value),
                should_autocreate_tables=config_value.get("should_autocreate_tables", True),
                token_provider=get_token_provider_from_config(config_value),
            )

    PlannedPostgresEventLogStorage.__module__ = __name__
    PlannedPostgresEventLogStorage.__qualname__ = "PlannedPostgresEventLogStorage"
    return PlannedPostgresEventLogStorage
