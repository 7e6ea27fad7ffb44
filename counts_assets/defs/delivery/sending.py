"""Sending an organization's pairs. Each pair is decided from versions
(`counts_assets.core.delivery.plan`): the newest published version against the version last
delivered to the current destination. Then, over one connection, for up to a batch of pairs:
each re-read under its lock and checked against the version published, all re-validated in one
pass, and each sent while its lock is held, from reading its bytes again to writing its ledger
entry, so a newer publish can never hide behind an older delivery. Locks are held a batch at a
time and the batch's entries written together, in one write to the instance."""

import contextlib
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from counts_assets.core.delivery.plan import (
    DELIVERED,
    NO_FILE,
    REDELIVERED,
    REFUSED,
    UNCHANGED,
    Action,
    LedgerEntry,
    Published,
    Refusal,
    next_action,
    org_fingerprint,
)
from counts_assets.core.delivery.retry import Session, with_retries
from counts_assets.core.delivery.targets import Connection, DeliveryError, HalfRenamed, Receipt
from counts_assets.core.files.periods import may_have_file, period_bounds
from counts_assets.core.orgs.models import Organization
from counts_assets.core.pairs.store import (
    PairBytes,
    PairHandle,
    PairLockTimeout,
    PairStore,
    disk_failure,
)
from counts_assets.core.validation.gate import PairOnDisk, validate_published_pairs
from counts_assets.defs.delivery.ledger import (
    diverged_entry,
    latest_refusals,
    ledger_entries,
    ledger_key,
    published_pairs,
)
from counts_assets.defs.delivery.recovery import record_journalled_pairs, recovered_records
from counts_assets.defs.delivery.resources import DeliveryResource
from counts_assets.defs.exports.checks import CHECK_INTACT
from counts_assets.defs.shared.cadence import DAILY, MONTHLY, Cadence
from counts_assets.defs.shared.dagster_internals import record_in_op, tag_run
from counts_assets.defs.shared.records import latest_ids, latest_records, metadata_of
from counts_assets.defs.shared.resources import OrgRegistry
from counts_assets.defs.shared.runs import (
    DESTINATION_TAG,
    MORE_PENDING_TAG,
    ORG_TAG,
    destination_tag,
)

# A pair that cannot be read from disk is read again this many times within the run before it
# fails for this run (a local read error may pass: it is never a refusal).
LOCAL_READS = 3
# The most pairs a run holds locked at once while it sends or records them: their ledger
# entries are written together before the locks are let go (a write per entry costs more than
# sending the pair). A run killed in the middle of a batch sends at most this many pairs again,
# the same bytes, since their entries were never written.
LEDGER_BATCH = 100
# And the longest a batch holds its first lock before it is written (a quarter of the lock wait
# at most): over a slow link an export of those periods waits about as long as for one pair.
LEDGER_BATCH_SECONDS = 2.0


@dataclass
class PairToSend:
    """One pair of a run, with what the instance and the disk say about it."""

    org_id: str
    cadence: Cadence
    partition: str
    period: str
    first_day: dt.date
    last_day: dt.date
    published: Published | None
    delivered: LedgerEntry | None
    refusal: Refusal | None
    action: Action = Action.NOTHING
    disk: PairBytes | None = None


def pairs_to_send(
    instance: dg.DagsterInstance,
    org: Organization,
    destination: str,
    now: dt.datetime,
    wanted: Callable[[Cadence, dt.date], bool] = lambda cadence, start: True,
    destination_since: int = 0,
) -> list[PairToSend]:
    """Every pair of the org that may have a file, with its action decided from versions:
    daily then monthly, oldest first. A few bulk reads per cadence, never one per pair."""
    fingerprint = org_fingerprint(org)
    jobs = []
    for cadence in (DAILY, MONTHLY):
        starts = {}
        suffix = f"|{org.id}"
        for partition in latest_ids(instance, cadence.summary):
            if not partition.endswith(suffix):
                continue
            start = dt.date.fromisoformat(partition.removesuffix(suffix))
            if may_have_file(org, start, cadence.monthly, now) and wanted(cadence, start):
                starts[partition] = start
        published = published_pairs(instance, cadence, starts)
        delivered = ledger_entries(instance, cadence, starts)
        refusals = latest_refusals(instance, cadence, starts)
        for partition, start in sorted(starts.items(), key=lambda item: item[1]):
            first, last = period_bounds(start, cadence.monthly)
            job = PairToSend(
                org.id,
                cadence,
                partition,
                start.strftime("%Y-%m") if cadence.monthly else start.isoformat(),
                max(first, org.share_from),
                last,
                published.get(partition),
                delivered.get(partition),
                refusals.get(partition),
            )
            job.action = next_action(
                job.published,
                job.delivered,
                job.refusal,
                destination,
                fingerprint,
                destination_since,
            )
            jobs.append(job)
    return jobs


def _observe(context, job: PairToSend, status: str, reason: str, previous: dict, **extra) -> None:
    """An observation on the pair's ledger partition, only when its state changes (the same
    state about a newer publish is a change)."""
    state = {
        "status": status,
        "reason": reason,
        "published_id": job.published.storage_id if job.published else 0,
        **extra,
    }
    last = previous.get((job.cadence.name, job.partition)) or {}
    if all(last.get(k) == v for k, v in state.items()):
        return
    metadata = state | {"since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    context.log_event(
        dg.AssetObservation(
            asset_key=ledger_key(job.cadence), partition=job.partition, metadata=metadata
        )
    )
    previous[(job.cadence.name, job.partition)] = metadata


def _latest_observations(context, jobs: list[PairToSend]) -> dict:
    out = {}
    for cadence in (DAILY, MONTHLY):
        partitions = [j.partition for j in jobs if j.cadence is cadence]
        if partitions:
            records = latest_records(
                context.instance, ledger_key(cadence), partitions, observations=True
            )
            out |= {(cadence.name, p): metadata_of(r) for p, r in records.items()}
    return out


class _Refused(Exception):
    """The pair on disk is not the pair published: never sent."""


def _read_verified(context, store: PairStore, job: PairToSend) -> None:
    """Reads the pair under its lock (repairing it first) into `job.disk` and checks it is the
    newest pair published. Raises _Refused (bytes edited or truncated on disk) or OSError (a
    local read error, which may pass)."""
    with store.locked(job.org_id, job.period) as pair:
        job.disk = pair.read()
        if job.disk.journal is not None:
            # A publish cut short before its record: recorded here, under the lock.
            if job.disk.journal == job.disk.version != job.published.version:
                for record in recovered_records(
                    job.cadence, job.partition, job.disk, "a delivery run"
                ):
                    context.log_event(record)
                job.published = Published(0, job.disk.version)
            pair.drop_journal()
        elif job.disk.version != job.published.version:
            # Published and recorded anew since the versions were read: the newest decides.
            newest = published_pairs(context.instance, job.cadence, [job.partition])
            job.published = newest.get(job.partition, job.published)
    if job.published.version is None:
        return
    found, expected = job.disk.version, job.published.version
    for kind in ("summary", "needs"):
        if found.sha256(kind) == expected.sha256(kind):
            continue
        path = str(job.disk.paths[kind])
        context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=job.cadence.summary,
                check_name=CHECK_INTACT,
                passed=False,
                metadata={
                    "partition": job.partition,
                    "path": path,
                    "expected_sha256": expected.sha256(kind),
                    "found_sha256": found.sha256(kind),
                },
            )
        )
        raise _Refused(
            f"{path} is not the file published (edited or truncated on disk): expected "
            f"SHA-256 {expected.sha256(kind)}, found {found.sha256(kind)}; make the period "
            "again to publish it anew"
        )


class _Outcome:
    """What a run did, pair by pair, for its log and its failure."""

    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self.sent = 0
        self.recorded = 0
        self.refused: list[str] = []
        self.failed: list[str] = []
        self.unsent = 0  # pairs not tried after the target failed
        self.left: list[str] = []

    def line(self, job: PairToSend, what: str) -> str:
        return f"{job.org_id} {job.period}: {what}"


def _readable(context, store: PairStore, jobs, previous, outcome, fingerprint) -> list[PairToSend]:
    """The jobs whose bytes on disk are the bytes published, read under their locks. A local
    read error is tried again a few times, then fails the pair for this run only."""
    ready = []
    for job in jobs:
        for attempt in range(LOCAL_READS):
            try:
                _read_verified(context, store, job)
            except _Refused as refusal:
                reason = str(refusal)
                outcome.refused.append(outcome.line(job, reason))
                _observe(context, job, REFUSED, reason, previous, org_file=fingerprint)
            except OSError as exc:
                waited = isinstance(exc, PairLockTimeout)  # the bound was already waited out
                if attempt + 1 < LOCAL_READS and not waited:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                failure = disk_failure(exc)
                what = "" if waited else "the pair cannot be read, "
                reason = f"{failure.path}: {what}{failure.reason}"
                outcome.failed.append(outcome.line(job, reason))
                _observe(context, job, "failed", reason + "; it is tried again", previous)
            else:
                if job.published.version is None:
                    outcome.left.append(outcome.line(job, "its newest record has no file"))
                else:
                    ready.append(job)
            break
    return ready


def _validated(context, jobs, previous, outcome, fingerprint) -> list[PairToSend]:
    """The pairs that pass the schemas as read from disk, validated in one pass."""
    failures = validate_published_pairs(
        [
            PairOnDisk(
                job.org_id,
                job.period,
                job.first_day.isoformat(),
                job.last_day.isoformat(),
                job.disk.contents["summary"],
                job.disk.contents["needs"],
            )
            for job in jobs
        ]
    )
    passed = []
    for job in jobs:
        lines = failures.get((job.org_id, job.period))
        if lines:
            reason = "fails validation: " + "; ".join(lines)
            outcome.refused.append(outcome.line(job, reason))
            _observe(context, job, REFUSED, reason, previous, org_file=fingerprint)
        else:
            passed.append(job)
    return passed


def _entry(
    job: PairToSend,
    destination: str,
    status: str,
    receipts: list[Receipt],
    reason: str = "",
) -> dg.AssetMaterialization:
    """The ledger entry of one pair, to be written while its lock is held."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    previous = job.delivered
    meta = {"status": status, "target": destination}
    if status == NO_FILE:
        meta["reason"] = "the period made no file: nothing to deliver"
    elif status == UNCHANGED:
        meta |= {
            "summary_sha256": job.published.version.summary_sha256,
            "needs_sha256": job.published.version.needs_sha256,
            "delivered_at": previous.delivered_at,
        }
    else:
        meta["delivered_at"] = now
        for kind, receipt in zip(("needs", "summary"), receipts, strict=True):
            meta |= {
                f"{kind}_location": receipt.location,
                f"{kind}_size_bytes": receipt.size,
                f"{kind}_sha256": receipt.sha256,
            }
        meta["replaced"] = (
            f"{previous.version.summary_sha256[:12]}/{previous.version.needs_sha256[:12]} "
            f"at {previous.destination}"
            if previous and previous.version
            else ""
        )
        if reason:
            meta["reason"] = reason
    return dg.AssetMaterialization(
        asset_key=ledger_key(job.cadence), partition=job.partition, metadata=meta
    )


def _write_entries(context, entries: list[dg.AssetMaterialization]) -> None:
    record_in_op(context, entries)


class _HeldPairs:
    """Pairs locked one by one as the run comes to them and held until their ledger entries are
    written together: a publish that comes meanwhile waits for its lock, so it is recorded after
    the entry, and is pending. `make_room` (before each pair) writes the batch once it holds
    LEDGER_BATCH pairs or has held its first lock LEDGER_BATCH_SECONDS; `release` (also before
    each wait between attempts, and at the end) writes the entries, then lets go of every
    lock."""

    def __init__(self, context, store: PairStore) -> None:
        self._context, self._store = context, store
        self._locks = contextlib.ExitStack()
        self._held: dict[tuple[str, str], PairHandle] = {}
        self._entries: list[dg.AssetMaterialization] = []
        self._since = 0.0
        self._longest = min(LEDGER_BATCH_SECONDS, store.lock_wait / 4)

    def make_room(self) -> None:
        if self._held and (
            len(self._held) >= LEDGER_BATCH or time.monotonic() - self._since >= self._longest
        ):
            self.release()

    def lock(self, job: PairToSend) -> PairHandle:
        """The pair under its lock, taken once per batch."""
        key = (job.org_id, job.period)
        if key not in self._held:
            if not self._held:
                self._since = time.monotonic()
            self._held[key] = self._locks.enter_context(self._store.locked(*key))
        return self._held[key]

    def record(self, entry: dg.AssetMaterialization) -> None:
        self._entries.append(entry)

    def release(self) -> None:
        entries, self._entries, self._held = self._entries, [], {}
        try:
            if entries:
                _write_entries(self._context, entries)
        finally:
            self._locks.close()

    def __enter__(self) -> "_HeldPairs":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _record_without_sending(
    context,
    store: PairStore,
    jobs,
    destination: str,
    fingerprint: str,
    destination_since: int,
    outcome: _Outcome,
) -> None:
    """Ledger entries for pairs that need no sending (same bytes, or no file), each written
    under the pair's lock after the newest publish and ledger entry are read again: an entry
    never stands for a publish it did not see, nor hides an audit's finding."""
    with _HeldPairs(context, store) as held:
        for job in jobs:
            held.make_room()
            try:
                held.lock(job)
            except OSError as exc:
                failure = disk_failure(exc)
                outcome.failed.append(outcome.line(job, f"{failure.path}: {failure.reason}"))
                continue
            instance, cadence, partition = context.instance, job.cadence, job.partition
            job.published = published_pairs(instance, cadence, [partition]).get(partition)
            job.delivered = ledger_entries(instance, cadence, [partition]).get(partition)
            action = next_action(
                job.published,
                job.delivered,
                job.refusal,
                destination,
                fingerprint,
                destination_since,
            )
            if action is Action.RECORD_UNCHANGED:
                held.record(_entry(job, destination, UNCHANGED, []))
            elif action is Action.RECORD_NO_FILE:
                held.record(_entry(job, destination, NO_FILE, []))
            else:
                continue  # published anew meanwhile: the next run sends it
            outcome.recorded += 1


def _send_all(
    context,
    org: Organization,
    jobs: list[PairToSend],
    delivery: DeliveryResource,
    store: PairStore,
    registry: OrgRegistry,
    previous: dict,
    outcome: _Outcome,
    status: str,
    reason: str = "",
) -> None:
    """Sends each pair over the run's connection. Before each pair the organization file is
    read again (a permission revoked while the run sends stops it); the pair's lock is held
    from reading its bytes again to writing its ledger entry (a batch's entries are written
    together, and before a wait between attempts). A pair that cannot be read or locked fails
    alone; a failure of the target ends the run."""
    destination = delivery.destination(org.remote_dir)
    policy = delivery.retry_policy()

    def attempt(job: PairToSend, connection: Connection, held: _HeldPairs) -> bool:
        pair = held.lock(job)
        if pair.read().version != job.disk.version:
            return False  # published anew since it was read: left for the next run
        try:
            receipts = connection.send(
                org.remote_dir,
                [(job.disk.paths[k].name, job.disk.contents[k]) for k in ("needs", "summary")],
            )
        except HalfRenamed as exc:
            # The destination holds the new File 2 beside the previous File 1: whatever is
            # published next, even the previous bytes, must be sent again.
            context.log_event(
                diverged_entry(
                    job.cadence,
                    job.partition,
                    destination,
                    str(exc),
                    {"found_needs_sha256": job.disk.version.needs_sha256},
                )
            )
            raise
        held.record(_entry(job, destination, status, receipts, reason))
        return True

    with Session(delivery.target()) as session, _HeldPairs(context, store) as held:
        for n, job in enumerate(jobs):
            current = registry.load().orgs.get(org.id)
            blocked = (
                "its organization file is no longer valid"
                if current is None
                else current.delivery_blocked(dt.datetime.now(dt.UTC))
            )
            if blocked:
                for waiting in jobs[n:]:
                    _observe(context, waiting, "waiting", blocked, previous)
                context.log.warning(
                    f"{org.id}: stopped after {outcome.sent} pairs, {len(jobs) - n} wait: {blocked}"
                )
                return
            held.make_room()
            try:
                sent = with_retries(
                    session,
                    lambda c, j=job: attempt(j, c, held),
                    policy,
                    context.log.warning,
                    before_wait=held.release,
                )
            except DeliveryError as exc:
                for waiting in jobs[n:]:
                    _observe(context, waiting, "failed", str(exc), previous)
                outcome.failed.append(f"{job.org_id} {job.period} to {destination}: {exc}")
                outcome.unsent = len(jobs) - n - 1
                return
            except OSError as exc:
                failure = disk_failure(exc)
                why = f"{failure.path}: {failure.reason}"
                outcome.failed.append(outcome.line(job, why))
                _observe(context, job, "failed", why + "; it is tried again", previous)
                continue
            if sent:
                outcome.sent += 1
            else:
                outcome.left.append(outcome.line(job, "published anew while this run read it"))


def with_delivery_lock(
    context, store: PairStore, org: Organization, destination: str, work: Callable[[], None]
) -> None:
    """Runs `work` holding the org's delivery lock, the run tagged with its org and destination (a
    run launched by hand too: the sensor counts it busy, and knows where it sends)."""
    tag_run(
        context.instance,
        context.run_id,
        {ORG_TAG: org.id, DESTINATION_TAG: destination_tag(destination)},
    )
    try:
        with store.delivering(org.id):
            work()
    except BlockingIOError as exc:
        if exc.filename is None or not str(exc.filename).endswith("delivery.lock"):
            raise
        raise dg.Failure(
            f"another delivery run for {org.id} is in progress ({exc}): this run sent "
            "nothing; the pairs stay pending and are requested again",
        ) from exc


def org_or_fail(org_registry: OrgRegistry, org_id: str) -> Organization:
    org = org_registry.load().orgs.get(org_id)
    if org is None:
        raise dg.Failure(f"{org_id} has no valid organization file: nothing is delivered")
    return org


def _finish(context, outcome: _Outcome, destination: str) -> None:
    context.log.info(
        f"{outcome.org_id}: {outcome.sent} pairs delivered to {destination}, {outcome.recorded} "
        "recorded as needing no sending"
        + (f"; left for the next run: {'; '.join(outcome.left[:20])}" if outcome.left else "")
    )
    if not (outcome.failed or outcome.refused):
        return
    said = f"{outcome.org_id}: {outcome.sent} pairs delivered"
    if outcome.failed:
        said += f", {len(outcome.failed) + outcome.unsent} not; they stay pending and are "
        said += "requested again"
    if outcome.refused:
        said += f"; {len(outcome.refused)} refused, never sent"
    raise dg.Failure(
        said + ".\n" + "\n".join((outcome.failed + outcome.refused)[:50]),
        metadata={
            "delivered": outcome.sent,
            "failed": len(outcome.failed),
            "refused": len(outcome.refused),
        },
    )


def deliver_pending(
    context,
    org: Organization,
    delivery: DeliveryResource,
    store: PairStore,
    registry: OrgRegistry,
    destination_since: int,
) -> None:
    # Publishes of the org left unrecorded by a run that ended are recorded first: they are
    # the org's newest pairs.
    record_journalled_pairs(
        context.instance, store, [org.id], context.log, "a delivery run", context.log_event
    )
    now = dt.datetime.now(dt.UTC)
    destination = delivery.destination(org.remote_dir)
    fingerprint = org_fingerprint(org)
    jobs = pairs_to_send(
        context.instance, org, destination, now, destination_since=destination_since
    )
    to_send = [j for j in jobs if j.action is Action.SEND]
    outcome = _Outcome(org.id)
    previous = _latest_observations(context, to_send)
    blocked = org.delivery_blocked(now)
    if blocked:
        for job in to_send:
            _observe(context, job, "waiting", blocked, previous)
        context.log.info(f"{org.id}: {len(to_send)} pairs wait: {blocked}")
        return
    _record_without_sending(
        context,
        store,
        [j for j in jobs if j.action in (Action.RECORD_UNCHANGED, Action.RECORD_NO_FILE)],
        destination,
        fingerprint,
        destination_since,
        outcome,
    )
    batch = to_send[: delivery.batch_pairs]
    ready = _readable(context, store, batch, previous, outcome, fingerprint)
    sendable = _validated(context, ready, previous, outcome, fingerprint)
    _send_all(context, org, sendable, delivery, store, registry, previous, outcome, DELIVERED)
    if len(to_send) > len(batch) and not outcome.failed:
        tag_run(context.instance, context.run_id, {MORE_PENDING_TAG: "true"})
        context.log.info(f"{org.id}: {len(to_send) - len(batch)} more pairs for the next run")
    _finish(context, outcome, destination)


def redeliver(
    context,
    org: Organization,
    delivery: DeliveryResource,
    store: PairStore,
    registry: OrgRegistry,
    first: dt.date,
    last: dt.date,
    reason: str,
) -> None:
    """Sends the org's published pairs whose periods overlap first..last again, whatever the
    ledger says, each recorded as a re-delivery with the reason."""

    def overlaps(cadence: Cadence, start: dt.date) -> bool:
        period_first, period_last = period_bounds(start, cadence.monthly)
        return period_first <= last and period_last >= first

    now = dt.datetime.now(dt.UTC)
    destination = delivery.destination(org.remote_dir)
    jobs = [
        j
        for j in pairs_to_send(context.instance, org, destination, now, overlaps)
        if j.published is not None and j.published.version is not None
    ]
    outcome = _Outcome(org.id)
    previous = _latest_observations(context, jobs)
    blocked = org.delivery_blocked(now)
    if blocked:
        raise dg.Failure(f"{org.id}: nothing re-delivered: {blocked}")
    fingerprint = org_fingerprint(org)
    sendable = _validated(
        context,
        _readable(context, store, jobs, previous, outcome, fingerprint),
        previous,
        outcome,
        fingerprint,
    )
    _send_all(
        context,
        org,
        sendable,
        delivery,
        store,
        registry,
        previous,
        outcome,
        REDELIVERED,
        reason=reason,
    )
    context.log.info(f"{org.id}: {len(jobs)} pairs from {first} to {last} chosen")
    _finish(context, outcome, destination)
