"""The delivery ledger, the delivery run and re-delivery.

`daily_delivery` and `monthly_delivery` are the ledger: partitioned like the files, one
materialization per pair sent (where, when, both files' size and SHA-256, what it replaced), and
one for a pair that needed no sending (`unchanged`: the place already holds its bytes;
`no_file`: the period made none). An observation on a partition says why a pair waits (no
permission, target down, refused).

`delivery_job` works for one organization, launched by `delivery_sensor`. It decides each pair
from versions (`counts_assets.delivery.plan`): the newest published version against the version
last delivered to the current place. Then, over one connection, for up to a batch of pairs: each
re-read under its lock and checked against the version published, all re-validated in one pass,
and each sent while its lock is held, from reading its bytes again to writing its ledger entry,
so a newer publish can never hide behind an older delivery. `redelivery_job` sends chosen
periods again on an operator's request."""

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from counts_assets.assets.exports import CHECK_INTACT, DAILY, MONTHLY, Cadence
from counts_assets.automation.runs import (
    DELIVERY_MAX_RUNTIME,
    DELIVERY_WORK,
    MORE_PENDING_TAG,
    ORG_TAG,
    PLACE_TAG,
    place_tag,
)
from counts_assets.delivery.ledger import (
    diverged_entry,
    latest_refusals,
    ledger_entries,
    ledger_key,
    published_pairs,
    published_versions,
)
from counts_assets.delivery.plan import (
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
from counts_assets.delivery.resource import DeliveryResource
from counts_assets.delivery.retry import Session, with_retries
from counts_assets.delivery.targets import Connection, DeliveryError, HalfRenamed, Receipt
from counts_assets.exports.periods import may_have_file, period_bounds
from counts_assets.orgs.models import Organization
from counts_assets.pairs.store import PairBytes, PairLockTimeout, PairStore, disk_failure
from counts_assets.partitions import partition_key
from counts_assets.records import latest_ids, latest_records, metadata_of
from counts_assets.resources import ExportFiles, OrgRegistry
from counts_assets.validation.gate import PairOnDisk, validate_published_pairs

SFTP_POOL = "sftp"
# A pair that cannot be read from disk is read again this many times within the run before it
# fails for this run (a local read error may pass: it is never a refusal).
LOCAL_READS = 3


def _ledger_spec(cadence: Cadence) -> dg.AssetSpec:
    return dg.AssetSpec(
        ledger_key(cadence),
        deps=[cadence.summary, cadence.needs],
        partitions_def=cadence.partitions_def,
        group_name="delivery",
        description=f"The {cadence.name} pair at 211 Counts: one entry per pair sent (where, "
        "when, size and SHA-256 of both files; `delivered`, or `redelivered` on request), or "
        "needing no sending (`unchanged`, `no_file`). A published pair is pending while its "
        "newest version is not the one last delivered to the current place; observations say "
        "why it waits (waiting, failed, refused). Its partitions span every org from the "
        "platform's first date: a period before an org's share_from, not yet ended, or of an "
        "org without permission never has an entry, so the partition bar counts it as "
        "missing; fleet_health counts only what is due.",
    )


LEDGER_SPECS = [_ledger_spec(DAILY), _ledger_spec(MONTHLY)]


class DeliveryBatch(dg.Config):
    org_id: str
    # The storage id up to which delivery_sensor takes the org's ledger entries to be about an
    # earlier place: entries no newer that need no sending are written again.
    place_since: int = 0


class RedeliveryRequest(dg.Config):
    """Which pairs of an organization to send again, and why (the ledger keeps the reason)."""

    org_id: str
    first: str  # YYYY-MM-DD: the first Call Date; a month counts when it overlaps the range
    last: str  # YYYY-MM-DD
    reason: str


@dataclass
class PairJob:
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


def org_pair_jobs(
    instance: dg.DagsterInstance,
    org: Organization,
    place: str,
    now: dt.datetime,
    wanted: Callable[[Cadence, dt.date], bool] = lambda cadence, start: True,
    place_since: int = 0,
) -> list[PairJob]:
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
            job = PairJob(
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
                job.published, job.delivered, job.refusal, place, fingerprint, place_since
            )
            jobs.append(job)
    return jobs


def _observe(context, job: PairJob, status: str, reason: str, previous: dict, **extra) -> None:
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


def _latest_observations(context, jobs: list[PairJob]) -> dict:
    out = {}
    for cadence in (DAILY, MONTHLY):
        partitions = [j.partition for j in jobs if j.cadence is cadence]
        if partitions:
            records = latest_records(
                context.instance, ledger_key(cadence), partitions, observations=True
            )
            out |= {(cadence.name, p): metadata_of(r) for p, r in records.items()}
    return out


def recovered_records(
    cadence: Cadence, partition: str, disk: PairBytes, by: str
) -> list[dg.AssetMaterialization]:
    """The records of a publish that was cut short after its renames and before it was
    recorded: its journal vouches for the bytes on disk."""
    records = []
    for kind, asset_key in (("needs", cadence.needs), ("summary", cadence.summary)):
        meta = {
            "status": "published",
            "path": dg.MetadataValue.path(str(disk.paths[kind].resolve())),
            "sha256": disk.version.sha256(kind),
            "size_bytes": len(disk.contents[kind]),
            "recovered": f"recorded by {by} from the publish journal",
        }
        if kind == "summary":
            meta["needs_sha256"] = disk.version.needs_sha256
        records.append(
            dg.AssetMaterialization(asset_key=asset_key, partition=partition, metadata=meta)
        )
    return records


def sweep_journals(
    instance: dg.DagsterInstance,
    store: PairStore,
    org_ids: list[str],
    log: logging.Logger,
    by: str,
    record: Callable[[dg.AssetMaterialization], None],
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
                    for materialization in recovered_records(cadence, partition, disk, by):
                        record(materialization)
                    recorded += 1
                pair.recorded()
        except BlockingIOError:
            continue  # a run holds the pair
        except OSError as exc:
            failure = disk_failure(exc)
            log.warning(f"{where}: publish journal left as it is: {failure.path}: {failure.reason}")
        except ValueError:
            log.warning(f"{where}: not the name of a publish journal; the file is left as it is")
    return recorded


class _Refused(Exception):
    """The pair on disk is not the pair published: never sent."""


def _read_verified(context, store: PairStore, job: PairJob) -> None:
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
            pair.recorded()
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

    def line(self, job: PairJob, what: str) -> str:
        return f"{job.org_id} {job.period}: {what}"


def _readable(context, store: PairStore, jobs, previous, outcome, fingerprint) -> list[PairJob]:
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


def _validated(context, jobs, previous, outcome, fingerprint) -> list[PairJob]:
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


def _record(
    context, job: PairJob, place: str, status: str, receipts: list[Receipt], reason: str = ""
) -> None:
    """The ledger entry of one pair, written while its lock is held."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    previous = job.delivered
    meta = {"status": status, "target": place}
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
            f"at {previous.place}"
            if previous and previous.version
            else ""
        )
        if reason:
            meta["reason"] = reason
    context.log_event(
        dg.AssetMaterialization(
            asset_key=ledger_key(job.cadence), partition=job.partition, metadata=meta
        )
    )


def _record_without_sending(
    context,
    store: PairStore,
    jobs,
    place: str,
    fingerprint: str,
    place_since: int,
    outcome: _Outcome,
) -> None:
    """Ledger entries for pairs that need no sending (same bytes, or no file), each written
    under the pair's lock after the newest publish and ledger entry are read again: an entry
    never stands for a publish it did not see, nor hides an audit's finding."""
    for job in jobs:
        try:
            with store.locked(job.org_id, job.period):
                instance, cadence, partition = context.instance, job.cadence, job.partition
                job.published = published_pairs(instance, cadence, [partition]).get(partition)
                job.delivered = ledger_entries(instance, cadence, [partition]).get(partition)
                action = next_action(
                    job.published, job.delivered, job.refusal, place, fingerprint, place_since
                )
                if action is Action.RECORD_UNCHANGED:
                    _record(context, job, place, UNCHANGED, [])
                elif action is Action.RECORD_NO_FILE:
                    _record(context, job, place, NO_FILE, [])
                else:
                    continue  # published anew meanwhile: the next run sends it
                outcome.recorded += 1
        except OSError as exc:
            failure = disk_failure(exc)
            outcome.failed.append(outcome.line(job, f"{failure.path}: {failure.reason}"))


def _send_all(
    context,
    org: Organization,
    jobs: list[PairJob],
    delivery: DeliveryResource,
    store: PairStore,
    registry: OrgRegistry,
    previous: dict,
    outcome: _Outcome,
    status: str,
    reason: str = "",
) -> None:
    """Sends each pair over the run's connection. Before each pair the organization file is
    read again (a permission revoked while the run sends stops it); each attempt holds the
    pair's lock from reading its bytes again to writing its ledger entry. A pair that cannot
    be read or locked fails alone; a failure of the target ends the run."""
    place = delivery.place(org.remote_dir)
    policy = delivery.retry_policy()

    def attempt(job: PairJob, connection: Connection) -> bool:
        with store.locked(job.org_id, job.period) as pair:
            if pair.read().version != job.disk.version:
                return False  # published anew since it was read: left for the next run
            try:
                receipts = connection.send(
                    org.remote_dir,
                    [(job.disk.paths[k].name, job.disk.contents[k]) for k in ("needs", "summary")],
                )
            except HalfRenamed as exc:
                # The place holds the new File 2 beside the previous File 1: whatever is
                # published next, even the previous bytes, must be sent again.
                context.log_event(
                    diverged_entry(
                        job.cadence,
                        job.partition,
                        place,
                        str(exc),
                        {"found_needs_sha256": job.disk.version.needs_sha256},
                    )
                )
                raise
            _record(context, job, place, status, receipts, reason)
            return True

    with Session(delivery.target()) as session:
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
            try:
                sent = with_retries(
                    session, lambda c, j=job: attempt(j, c), policy, context.log.warning
                )
            except DeliveryError as exc:
                for waiting in jobs[n:]:
                    _observe(context, waiting, "failed", str(exc), previous)
                outcome.failed.append(f"{job.org_id} {job.period} to {place}: {exc}")
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


def _with_delivery_lock(
    context, store: PairStore, org: Organization, place: str, work: Callable[[], None]
) -> None:
    """Runs `work` holding the org's delivery lock, the run tagged with its org and place (a
    run launched by hand too: the sensor counts it busy, and knows where it sends)."""
    context.instance.add_run_tags(context.run_id, {ORG_TAG: org.id, PLACE_TAG: place_tag(place)})
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


def _org_or_fail(org_registry: OrgRegistry, org_id: str) -> Organization:
    org = org_registry.load().orgs.get(org_id)
    if org is None:
        raise dg.Failure(f"{org_id} has no valid organization file: nothing is delivered")
    return org


def _finish(context, outcome: _Outcome, place: str) -> None:
    context.log.info(
        f"{outcome.org_id}: {outcome.sent} pairs delivered to {place}, {outcome.recorded} "
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


@dg.op(
    name="deliver_pairs",
    pool=SFTP_POOL,
    description="Delivers the pending pairs of one organization over one connection, a batch "
    "at most; records the pairs that need no sending.",
)
def deliver_pairs(
    context: dg.OpExecutionContext,
    config: DeliveryBatch,
    delivery: DeliveryResource,
    export_files: ExportFiles,
    org_registry: OrgRegistry,
) -> None:
    org = _org_or_fail(org_registry, config.org_id)
    store = export_files.store(f"run {context.run_id}")
    _with_delivery_lock(
        context,
        store,
        org,
        delivery.place(org.remote_dir),
        lambda: _deliver(context, org, delivery, store, org_registry, config.place_since),
    )


def _deliver(
    context,
    org: Organization,
    delivery: DeliveryResource,
    store: PairStore,
    registry: OrgRegistry,
    place_since: int,
) -> None:
    # Publishes of the org left unrecorded by a run that ended are recorded first: they are
    # the org's newest pairs.
    sweep_journals(
        context.instance, store, [org.id], context.log, "a delivery run", context.log_event
    )
    now = dt.datetime.now(dt.UTC)
    place = delivery.place(org.remote_dir)
    fingerprint = org_fingerprint(org)
    jobs = org_pair_jobs(context.instance, org, place, now, place_since=place_since)
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
        place,
        fingerprint,
        place_since,
        outcome,
    )
    batch = to_send[: delivery.batch_pairs]
    ready = _readable(context, store, batch, previous, outcome, fingerprint)
    sendable = _validated(context, ready, previous, outcome, fingerprint)
    _send_all(context, org, sendable, delivery, store, registry, previous, outcome, DELIVERED)
    if len(to_send) > len(batch) and not outcome.failed:
        context.instance.add_run_tags(context.run_id, {MORE_PENDING_TAG: "true"})
        context.log.info(f"{org.id}: {len(to_send) - len(batch)} more pairs for the next run")
    _finish(context, outcome, place)


@dg.op(
    name="redeliver_pairs",
    pool=SFTP_POOL,
    description="Sends chosen periods of one organization again, whatever the ledger says, "
    "and records each as a re-delivery with its reason.",
)
def redeliver_pairs(
    context: dg.OpExecutionContext,
    config: RedeliveryRequest,
    delivery: DeliveryResource,
    export_files: ExportFiles,
    org_registry: OrgRegistry,
) -> None:
    org = _org_or_fail(org_registry, config.org_id)
    try:
        first, last = dt.date.fromisoformat(config.first), dt.date.fromisoformat(config.last)
    except ValueError as exc:
        raise dg.Failure(f"first and last must be dates written YYYY-MM-DD: {exc}") from exc
    if not config.reason.strip():
        raise dg.Failure("a re-delivery needs a reason (the ledger keeps it)")
    store = export_files.store(f"run {context.run_id}")

    def overlaps(cadence: Cadence, start: dt.date) -> bool:
        period_first, period_last = period_bounds(start, cadence.monthly)
        return period_first <= last and period_last >= first

    def resend() -> None:
        now = dt.datetime.now(dt.UTC)
        place = delivery.place(org.remote_dir)
        jobs = [
            j
            for j in org_pair_jobs(context.instance, org, place, now, overlaps)
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
            org_registry,
            previous,
            outcome,
            REDELIVERED,
            reason=config.reason.strip(),
        )
        context.log.info(f"{org.id}: {len(jobs)} pairs from {first} to {last} chosen")
        _finish(context, outcome, place)

    _with_delivery_lock(context, store, org, delivery.place(org.remote_dir), resend)


@dg.job(
    name="delivery_job",
    executor_def=dg.in_process_executor,
    tags=DELIVERY_WORK | DELIVERY_MAX_RUNTIME,
    description="Delivers pending pairs of one organization (launched by delivery_sensor).",
)
def delivery_job() -> None:
    deliver_pairs()


@dg.job(
    name="redelivery_job",
    executor_def=dg.in_process_executor,
    tags=DELIVERY_WORK | DELIVERY_MAX_RUNTIME,
    description="Sends chosen periods of one organization again, for example when 211 Counts "
    "lost files: launch it with ops.redeliver_pairs.config {org_id, first, last, reason}. The "
    "ledger records each pair as `redelivered` with the reason; nothing else changes.",
)
def redelivery_job() -> None:
    redeliver_pairs()
