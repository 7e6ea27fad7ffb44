"""`delivery_sensor`: delivery from state.

Each tick recomputes the to-do list from the instance: a published pair is pending when its
newest publish is newer than its newest ledger entry, or when its org's target changed since.
Two grouped queries per cadence give the newest storage id of every partition, so nothing
depends on a cursor that could move past work: an outage, a stopped daemon, a crashed run or a
briefly broken org file only delay a pair. The cursor keeps small per-org facts (target and org
file last seen, refusals, when a run was last requested). The sensor launches at most one
delivery run per org at a time, for a bounded batch of its pending pairs, and requests a pair
again every `COUNTS_DELIVERY_RETRY_MINUTES` while it stays pending. A pair published by a run
that ended before recording it (cancelled, or its process lost) is recorded from its publish
journal, and so becomes pending too."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import dagster as dg

from counts_assets.assets.delivery import delivery_job, recovered_records
from counts_assets.assets.exports import DAILY, MONTHLY
from counts_assets.automation.runs import in_flight_runs
from counts_assets.delivery.ledger import delivered_ids, ledger_key, published_versions
from counts_assets.delivery.resource import DeliveryResource
from counts_assets.exports.periods import period_bounds, period_ended, period_label
from counts_assets.pairs.store import PairStore
from counts_assets.partitions import partition_key
from counts_assets.records import latest_ids, metadata_of
from counts_assets.resources import ExportFiles, OrgRegistry

ORG_TAG = "counts/org"
# The sensor is the retry loop of delivery (a pending pair is requested again), so Dagster's
# run retries would only repeat a refusal or hammer a target that is down.
NO_RUN_RETRIES = {"dagster/max_retries": "0"}
# Waiting pairs are announced in the UI a bounded number per tick, the rest on later ticks.
MAX_ANNOUNCED_PER_TICK = 1000


@dataclass
class DeliveryState:
    """What the sensor remembers between ticks (all of it small, per org)."""

    places: dict[str, str] = field(default_factory=dict)
    place_since: dict[str, int] = field(default_factory=dict)
    org_files: dict[str, str] = field(default_factory=dict)
    org_since: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # "cadence|partition" -> storage id
    observed_up_to: int = 0
    requested: dict[str, list] = field(default_factory=dict)  # org -> [epoch, max id, pairs]
    announced: dict[str, int] = field(default_factory=dict)  # org -> newest waiting id shown

    @classmethod
    def load(cls, cursor: str | None) -> DeliveryState:
        return cls(**json.loads(cursor)) if cursor else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class PendingPair:
    cadence: str
    partition: str
    period: str
    published_id: int


def _learn_refusals(instance: dg.DagsterInstance, state: DeliveryState) -> None:
    newest = state.observed_up_to
    for cadence in (DAILY, MONTHLY):
        cursor = None
        while True:
            result = instance.fetch_observations(
                dg.AssetRecordsFilter(
                    asset_key=ledger_key(cadence), after_storage_id=state.observed_up_to
                ),
                limit=1000,
                cursor=cursor,
                ascending=True,
            )
            for record in result.records:
                newest = max(newest, record.storage_id)
                if metadata_of(record).get("status") == "refused":
                    state.refused[f"{cadence.name}|{record.partition_key}"] = record.storage_id
            if not result.has_more:
                break
            cursor = result.cursor
    state.observed_up_to = newest


def storage_ids(instance: dg.DagsterInstance) -> dict[str, tuple[dict, dict]]:
    """Per cadence: newest publish and newest delivery of every partition (storage ids)."""
    return {
        cadence.name: (
            dict(latest_ids(instance, cadence.summary)),
            delivered_ids(instance, cadence),
        )
        for cadence in (DAILY, MONTHLY)
    }


def pending_pairs(
    ids: dict[str, tuple[dict, dict]], state: DeliveryState, orgs: dict, now: dt.datetime
) -> dict[str, list[PendingPair]]:
    """Pending pairs by org: published after their last delivery, or delivered before their
    org's target changed; periods before share_from, unregistered orgs and refused pairs are
    left out (they wait, nothing is dropped)."""
    pending: dict[str, list[PendingPair]] = defaultdict(list)
    for cadence in (DAILY, MONTHLY):
        published, delivered = ids[cadence.name]
        for partition, published_id in published.items():
            period_text, _, org_id = partition.partition("|")
            org = orgs.get(org_id)
            if org is None:
                continue  # not registered (or its file is invalid): it waits, history kept
            delivered_id = delivered.get(partition, 0)
            if delivered_id > published_id and delivered_id > state.place_since.get(org_id, 0):
                continue
            first, last = period_bounds(dt.date.fromisoformat(period_text), cadence.monthly)
            if last < org.share_from or not period_ended(org, last, now):
                continue  # before share_from, or not yet ended: no file
            refused_id = state.refused.get(f"{cadence.name}|{partition}", 0)
            if refused_id > published_id and refused_id > state.org_since.get(org_id, 0):
                continue  # refused until it is published anew or its org file changes
            pending[org_id].append(
                PendingPair(
                    cadence.name, partition, period_label(first, cadence.monthly), published_id
                )
            )
    return pending


def sweep_journals(
    instance: dg.DagsterInstance, store: PairStore, org_ids: list[str], log: logging.Logger
) -> int:
    """Publishes left without their record by a run that ended between the two (cancelled,
    or its process lost): each journal vouches for its pair, which is recorded here, under
    the pair's lock, before the journal goes; it is then pending like any other. A pair whose
    lock is held (a publish in progress) is left to its run. Returns how many were recorded."""
    recorded = 0
    for org_id, cadence_name, period in store.journalled(org_ids):
        where = f"{org_id} {cadence_name} {period}"
        try:
            cadence = MONTHLY if cadence_name == "monthly" else DAILY
            start = dt.date.fromisoformat(period + "-01" if cadence.monthly else period)
            partition = str(partition_key(cadence.monthly, org_id, start))
            with store.locked(org_id, period, wait=False) as pair:
                journal = pair.journal
                if journal is None:
                    continue  # an unfinished journal: the repair rolled the publish back
                disk = pair.read()
                if disk.version != journal:
                    log.warning(
                        f"{where}: the files on disk are not the ones its publish journal "
                        "names (edited since?); journal dropped, the pair waits to be made again"
                    )
                elif published_versions(instance, cadence, [partition]).get(partition) != journal:
                    for record in recovered_records(cadence, partition, disk, "delivery_sensor"):
                        instance.report_runless_asset_event(record)
                    recorded += 1
                pair.recorded()
        except BlockingIOError:
            continue  # a run holds the pair
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning(f"{where}: publish journal left as it is: {exc}")
    return recorded


def _org_fingerprint(org) -> str:
    return hashlib.sha256(org.model_dump_json().encode()).hexdigest()[:16]


def _note_changes(state: DeliveryState, places: dict, orgs: dict, newest: int) -> None:
    """A changed target or org file makes the org's pairs pending again / refusals void."""
    for org_id, place in places.items():
        if state.places.get(org_id, place) != place:
            state.place_since[org_id] = newest
            state.requested.pop(org_id, None)  # due at once
        state.places[org_id] = place
        fingerprint = _org_fingerprint(orgs[org_id])
        if state.org_files.get(org_id, fingerprint) != fingerprint:
            state.org_since[org_id] = newest
            state.requested.pop(org_id, None)
        state.org_files[org_id] = fingerprint


@dg.sensor(
    name="delivery_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    job=delivery_job,
    description="Finds every published pair not yet delivered to the current target and "
    "launches one delivery run per organization for a batch of them; a pair stays pending, "
    "and is requested again, until the ledger records it delivered.",
)
def delivery_sensor(
    context: dg.SensorEvaluationContext,
    delivery: DeliveryResource,
    org_registry: OrgRegistry,
    export_files: ExportFiles,
):
    instance = context.instance
    state = DeliveryState.load(context.cursor)
    orgs = org_registry.load().orgs
    recovered = sweep_journals(instance, PairStore(export_files.root), sorted(orgs), context.log)
    if recovered:
        context.log.info(f"{recovered} pairs recorded from their publish journals")
    _learn_refusals(instance, state)
    ids = storage_ids(instance)
    newest = max((i for maps in ids.values() for m in maps for i in m.values()), default=0)
    places = {org_id: delivery.place(org.remote_dir) for org_id, org in orgs.items()}
    _note_changes(state, places, orgs, max(newest, state.observed_up_to))
    now_utc = dt.datetime.now(dt.UTC)
    pending = pending_pairs(ids, state, orgs, now_utc)
    busy = {run.tags.get(ORG_TAG) for run in in_flight_runs(instance, delivery_job.name)}
    now = time.time()
    retry_seconds = delivery.retry_minutes * 60
    requests, events = [], []
    for org_id, pairs in sorted(pending.items()):
        blocked = orgs[org_id].delivery_blocked(now_utc)
        if blocked:
            shown = state.announced.get(org_id, 0)
            room = MAX_ANNOUNCED_PER_TICK - len(events)
            fresh = sorted(
                (p for p in pairs if p.published_id > shown), key=lambda p: p.published_id
            )[: max(room, 0)]
            events += [
                dg.AssetObservation(
                    asset_key=ledger_key(DAILY if p.cadence == "daily" else MONTHLY),
                    partition=p.partition,
                    metadata={"status": "waiting", "reason": blocked},
                )
                for p in fresh
            ]
            if fresh:
                state.announced[org_id] = max(p.published_id for p in fresh)
                context.log.info(f"{org_id}: {len(pairs)} pairs wait: {blocked}")
            continue
        if org_id in busy:
            continue
        newest_pair = max(p.published_id for p in pairs)
        last = state.requested.get(org_id)
        if last is not None:
            requested_at, newest_requested, batch_size = last
            due = (
                now - requested_at >= retry_seconds
                or newest_pair > newest_requested
                or batch_size >= delivery.batch_pairs  # the last run took a full batch
            )
            if not due:
                continue
        batch = sorted(pairs, key=lambda p: (p.cadence, p.period))[: delivery.batch_pairs]
        state.requested[org_id] = [now, newest_pair, len(batch)]
        requests.append(
            dg.RunRequest(
                run_key=f"{org_id}|{int(now)}",
                run_config=dg.RunConfig(
                    ops={
                        "deliver_pairs": {
                            "config": {
                                "org_id": org_id,
                                "pairs": [f"{p.cadence}/{p.period}" for p in batch],
                            }
                        }
                    }
                ),
                tags={ORG_TAG: org_id, **NO_RUN_RETRIES},
            )
        )
    if requests:
        context.log.info(
            f"{sum(len(p) for p in pending.values())} pairs pending; "
            f"{len(requests)} delivery runs requested"
        )
    return dg.SensorResult(run_requests=requests, asset_events=events, cursor=state.dump())
