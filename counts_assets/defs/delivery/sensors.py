"""`delivery_sensor`: delivery from state.

Each tick finds the organizations with work, cheaply, from the instance: two grouped queries per
cadence give the newest storage id of every partition's publish and ledger entry. A pair is a
candidate when its newest publish is newer than its newest ledger entry, when its org's destination
changed after that entry, or when the audit found the destination no longer holds it. Storage ids
only find work: a delivery run holds a pair's lock from reading its bytes to writing its ledger
entry, and every publish is recorded under the same lock, so a ledger entry newer than the
newest publish always names that publish's version. The run then decides each pair from
versions (`counts_assets.core.delivery.plan`). Nothing depends on a cursor that could move past
work: an outage, a stopped daemon, a crashed run or a briefly broken org file only delay a
pair. The cursor keeps small per-org facts (destination and org file last seen, refusals, the last
request). One delivery run per org at a time; a run that failed is requested again after
`COUNTS_DELIVERY_RETRY_MINUTES`, one that succeeded with more pairs left at once. For each
export run that ended without success (cancelled, failed, its process lost) it requests a
`journal_recovery_job` run for the run's orgs: a pair that run published but did not record is
recorded from its publish journal, and so becomes a candidate too. The tick itself reads only
the instance, never the pair files."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields

import dagster as dg

from counts_assets.core.delivery.plan import DIVERGED, REFUSED, org_fingerprint
from counts_assets.core.files.periods import may_have_file, period_label
from counts_assets.defs.delivery.jobs import delivery_job, redelivery_job
from counts_assets.defs.delivery.ledger import (
    ledger_key,
)
from counts_assets.defs.delivery.recovery import (
    MAX_RECOVERY_ATTEMPTS,
    RECOVERY_ATTEMPT_TAG,
    ended_export_runs,
    failed_recoveries,
    journal_recovery_job,
)
from counts_assets.defs.delivery.resources import DeliveryResource
from counts_assets.defs.shared.cadence import DAILY, MONTHLY
from counts_assets.defs.shared.records import latest_ids, metadata_of
from counts_assets.defs.shared.resources import OrgRegistry
from counts_assets.defs.shared.runs import (
    DESTINATION_TAG,
    MORE_PENDING_TAG,
    ORG_TAG,
    destination_tag,
    in_flight_runs,
    run_org,
)

RUN_KEY_TAG = "dagster/run_key"  # Dagster's tag naming the run request a run came from
# The sensor is the retry loop of delivery (a pending pair is requested again), so Dagster's
# run retries would only repeat a refusal or hammer a target that is down.
NO_RUN_RETRIES = {"dagster/max_retries": "0"}
# Waiting pairs are announced in the UI a bounded number per tick, the rest on later ticks.
MAX_ANNOUNCED_PER_TICK = 1000
# Ledger records read per tick, per ledger and kind: a year of a fleet's entries is learned
# over a few ticks, never in one long one.
LEARNED_PER_TICK = 5000
# Export runs that ended without success are looked for this far back when the sensor starts
# afresh, and each tick looks this much before its previous one (a run's end is committed a
# moment after its time).
RECOVERY_LOOKBACK = dt.timedelta(days=1)
RECOVERY_OVERLAP = dt.timedelta(minutes=5)


@dataclass
class DeliveryState:
    """What the sensor remembers between ticks (all of it small, per org)."""

    destinations: dict[str, str] = field(default_factory=dict)
    destination_since: dict[str, int] = field(default_factory=dict)
    settling: list[str] = field(default_factory=list)  # orgs whose destination changed, old runs on
    org_files: dict[str, str] = field(default_factory=dict)
    refused: dict[str, list] = field(default_factory=dict)  # "cadence|partition" -> [id, org file]
    diverged: dict[str, int] = field(default_factory=dict)  # "cadence|partition" -> storage id
    learned_up_to: dict[str, int] = field(default_factory=dict)  # per ledger and kind of record
    requested: dict[str, list] = field(default_factory=dict)  # org -> [epoch, newest id, run key]
    announced: dict[str, int] = field(default_factory=dict)  # org -> newest waiting id shown
    recovery_checked: float = 0.0  # when ended export runs were last looked for
    recovered_runs: dict[str, float] = field(default_factory=dict)  # run id -> its update

    @classmethod
    def load(cls, cursor: str | None) -> DeliveryState:
        if not cursor:
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(cursor).items() if k in known})

    def dump(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class PendingPair:
    cadence: str
    partition: str
    period: str
    newest_id: int  # the newest record that makes it a candidate: its publish, or an audit


def _learn_from_the_ledger(instance: dg.DagsterInstance, state: DeliveryState) -> None:
    """Reads the ledgers' records written since the last tick, at most LEARNED_PER_TICK of
    each kind per ledger (the rest at the next ticks): refusals (observations), and pairs
    whose newest entry says the destination does not hold them (`diverged`: found by the audit, or
    left half renamed by a broken connection). Each ledger and kind keeps its own cursor, so
    nothing is skipped; a lost cursor means reading them all again."""
    for cadence in (DAILY, MONTHLY):
        for kind, fetch in (
            ("observations", instance.fetch_observations),
            ("materializations", instance.fetch_materializations),
        ):
            name = f"{ledger_key(cadence).to_user_string()} {kind}"
            after = state.learned_up_to.get(name, 0)
            result = fetch(
                dg.AssetRecordsFilter(asset_key=ledger_key(cadence), after_storage_id=after),
                limit=LEARNED_PER_TICK,
                ascending=True,
            )
            for record in result.records:
                key = f"{cadence.name}|{record.partition_key}"
                metadata = metadata_of(record)
                status = metadata.get("status")
                if kind == "observations" and status == REFUSED:
                    state.refused[key] = [record.storage_id, metadata.get("org_file", "")]
                elif kind == "materializations" and status == DIVERGED:
                    state.diverged[key] = record.storage_id
                elif kind == "materializations":
                    state.diverged.pop(key, None)
                after = record.storage_id
            state.learned_up_to[name] = after


def storage_ids(instance: dg.DagsterInstance) -> dict[str, tuple[dict, dict]]:
    """Per cadence: newest publish and newest ledger entry of every partition (storage ids)."""
    return {
        cadence.name: (
            dict(latest_ids(instance, cadence.summary)),
            dict(latest_ids(instance, ledger_key(cadence))),
        )
        for cadence in (DAILY, MONTHLY)
    }


def pending_pairs(
    ids: dict[str, tuple[dict, dict]],
    state: DeliveryState,
    orgs: dict,
    now: dt.datetime,
) -> dict[str, list[PendingPair]]:
    """Candidates by org: published after their last ledger entry, that entry older than the
    org's destination, or saying the destination does not hold the pair (`diverged`). Periods before
    share_from or not yet ended, unregistered orgs and refused pairs are left out (they wait,
    nothing is dropped)."""
    pending: dict[str, list[PendingPair]] = defaultdict(list)
    for cadence in (DAILY, MONTHLY):
        published, delivered = ids[cadence.name]
        for partition, published_id in published.items():
            period_text, _, org_id = partition.partition("|")
            org = orgs.get(org_id)
            if org is None:
                continue  # not registered (or its file is invalid): it waits, history kept
            key = f"{cadence.name}|{partition}"
            delivered_id = delivered.get(partition, 0)
            if (
                delivered_id > published_id
                and delivered_id > state.destination_since.get(org_id, 0)
                and delivered_id > state.diverged.get(key, 0)
            ):
                continue
            start = dt.date.fromisoformat(period_text)
            if not may_have_file(org, start, cadence.monthly, now):
                continue  # before share_from, or not yet ended: no file
            refused_id, refused_under = state.refused.get(key, (0, ""))
            if refused_id > published_id and refused_under == org_fingerprint(org):
                continue  # refused until it is published anew or its org file changes
            pending[org_id].append(
                PendingPair(
                    cadence.name,
                    partition,
                    period_label(start, cadence.monthly),
                    max(published_id, state.diverged.get(key, 0)),
                )
            )
    return pending


def _note_changes(
    state: DeliveryState, destinations: dict, orgs: dict, newest: int, in_flight: list
) -> None:
    """A changed destination makes the org's pairs candidates there. Runs still sending to the old
    destination write entries for it after the change: until none is in flight, each tick moves the
    org's `destination_since` past every entry written so far (the runs in flight are read before
    the storage ids, so the last move covers every entry of a run that ended). A changed org
    file voids its refusals. Either way the org is due at once."""
    old_destination_runs = {
        run_org(run)
        for run in in_flight
        if run.tags.get(DESTINATION_TAG)
        != destination_tag(destinations.get(run_org(run) or "", ""))
    }
    for org_id, destination in destinations.items():
        if state.destinations.get(org_id, destination) != destination:
            state.requested.pop(org_id, None)
            if org_id not in state.settling:
                state.settling.append(org_id)
        if org_id in state.settling:
            state.destination_since[org_id] = newest
            if org_id not in old_destination_runs:
                state.settling.remove(org_id)
        state.destinations[org_id] = destination
        fingerprint = org_fingerprint(orgs[org_id])
        if state.org_files.get(org_id, fingerprint) != fingerprint:
            state.requested.pop(org_id, None)
        state.org_files[org_id] = fingerprint


def _last_run_outcome(instance: dg.DagsterInstance, run_key: str) -> dg.DagsterRun | None:
    records = instance.get_run_records(dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1)
    return records[0].dagster_run if records else None


def _due(
    instance: dg.DagsterInstance, last: list | None, newest_pair: int, now: float, retry: float
) -> bool:
    """Never requested, something newer published, the retry interval passed, or the last run
    succeeded and stopped at its batch limit. A run that failed waits the interval, whatever
    its batch size."""
    if last is None:
        return True
    requested_at, newest_requested, run_key = last
    if newest_pair > newest_requested or now - requested_at >= retry:
        return True
    run = _last_run_outcome(instance, run_key) if run_key else None
    return (
        run is not None
        and run.status == dg.DagsterRunStatus.SUCCESS
        and run.tags.get(MORE_PENDING_TAG) == "true"
    )


@dg.sensor(
    name="delivery_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[delivery_job, journal_recovery_job],
    description="Finds every published pair not yet delivered to the current target and "
    "launches one delivery run per organization for a batch of them; a pair stays pending, "
    "and is requested again, until the ledger records it delivered. For each export run that "
    "ended without success it launches a journal_recovery_job run for the run's orgs, and "
    "again for a recovery run that failed because a pair stayed locked (at most "
    f"{MAX_RECOVERY_ATTEMPTS} attempts).",
)
def delivery_sensor(
    context: dg.SensorEvaluationContext,
    delivery: DeliveryResource,
    org_registry: OrgRegistry,
):
    instance = context.instance
    state = DeliveryState.load(context.cursor)
    orgs = org_registry.load().orgs
    recoveries = _journal_recoveries(instance, state, sorted(orgs))
    _learn_from_the_ledger(instance, state)
    # Runs in flight are read before the storage ids: an entry an old-destination run writes after
    # this tick's ids is covered by the next tick, when the run is still in flight.
    in_flight = [
        run for job in (delivery_job, redelivery_job) for run in in_flight_runs(instance, job.name)
    ]
    ids = storage_ids(instance)
    newest = max((i for maps in ids.values() for m in maps for i in m.values()), default=0)
    destinations = {org_id: delivery.destination(org.remote_dir) for org_id, org in orgs.items()}
    newest = max(newest, *state.learned_up_to.values(), 0)
    _note_changes(state, destinations, orgs, newest, in_flight)
    now_utc = dt.datetime.now(dt.UTC)
    pending = pending_pairs(ids, state, orgs, now_utc)
    busy = {run_org(run) for run in in_flight}
    now = time.time()
    requests, events = [], []
    for org_id, pairs in sorted(pending.items()):
        blocked = orgs[org_id].delivery_blocked(now_utc)
        if blocked:
            shown = state.announced.get(org_id, 0)
            room = MAX_ANNOUNCED_PER_TICK - len(events)
            fresh = sorted((p for p in pairs if p.newest_id > shown), key=lambda p: p.newest_id)[
                : max(room, 0)
            ]
            events += [
                dg.AssetObservation(
                    asset_key=ledger_key(DAILY if p.cadence == "daily" else MONTHLY),
                    partition=p.partition,
                    metadata={"status": "waiting", "reason": blocked},
                )
                for p in fresh
            ]
            if fresh:
                state.announced[org_id] = max(p.newest_id for p in fresh)
                context.log.info(f"{org_id}: {len(pairs)} pairs wait: {blocked}")
            continue
        if org_id in busy:
            continue
        newest_pair = max(p.newest_id for p in pairs)
        if not _due(
            instance, state.requested.get(org_id), newest_pair, now, delivery.retry_minutes * 60
        ):
            continue
        run_key = f"{org_id}|{int(now)}"
        state.requested[org_id] = [now, newest_pair, run_key]
        requests.append(
            dg.RunRequest(
                job_name=delivery_job.name,
                run_key=run_key,
                run_config=dg.RunConfig(
                    ops={
                        "deliver_pairs": {
                            "config": {
                                "org_id": org_id,
                                "destination_since": state.destination_since.get(org_id, 0),
                            }
                        }
                    }
                ),
                tags={
                    ORG_TAG: org_id,
                    DESTINATION_TAG: destination_tag(destinations[org_id]),
                    **NO_RUN_RETRIES,
                },
            )
        )
    if requests:
        context.log.info(
            f"{sum(len(p) for p in pending.values())} pairs to look at; "
            f"{len(requests)} delivery runs requested"
        )
    return dg.SensorResult(
        run_requests=recoveries + requests, asset_events=events, cursor=state.dump()
    )


def _journal_recoveries(
    instance: dg.DagsterInstance, state: DeliveryState, registered: list[str]
) -> list[dg.RunRequest]:
    """A `journal_recovery_job` request for each export run that ended without success since
    the previous tick (each once): the run may have published pairs it did not record. A
    recovery run that failed because a pair's lock stayed held is requested again, up to
    MAX_RECOVERY_ATTEMPTS attempts in all."""
    now = dt.datetime.now(dt.UTC)
    if state.recovery_checked:
        since = dt.datetime.fromtimestamp(state.recovery_checked, dt.UTC) - RECOVERY_OVERLAP
    else:
        since = now - RECOVERY_LOOKBACK
    requests = []
    due = ended_export_runs(instance, since, state.recovered_runs)
    due += failed_recoveries(instance, since, state.recovered_runs)
    for recovery in due:
        state.recovered_runs[recovery.run_id] = recovery.updated_at
        requests.append(
            dg.RunRequest(
                job_name=journal_recovery_job.name,
                run_key=f"journals|{recovery.run_id}",
                run_config=dg.RunConfig(
                    ops={
                        "recover_journals": {"config": {"org_ids": recovery.org_ids or registered}}
                    }
                ),
                tags=NO_RUN_RETRIES | {RECOVERY_ATTEMPT_TAG: str(recovery.attempt)},
            )
        )
    # A run that ended before `since` is never found again.
    state.recovered_runs = {
        run_id: updated_at
        for run_id, updated_at in state.recovered_runs.items()
        if updated_at >= since.timestamp()
    }
    state.recovery_checked = now.timestamp()
    return requests
