"""The delivery ledger and the delivery run.

`daily_delivery` and `monthly_delivery` are the ledger: partitioned like the files, one
materialization per delivered pair (where, when, both files' size and SHA-256, what it
replaced). An observation on a partition says why a pair waits (no permission, target down,
refused). They are recorded by `delivery_job`, which `delivery_sensor` launches for one org and
many pending pairs: one connection, each pair re-read under its lock, all pairs re-validated in
one pass, each sent as a pair and recorded as soon as it is delivered."""

import contextlib
import datetime as dt
from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from counts_assets.assets.exports import CHECK_INTACT, DAILY, MONTHLY, Cadence
from counts_assets.automation.runs import DELIVERY_WORK
from counts_assets.delivery.ledger import (
    CADENCES,
    Delivered,
    delivered_versions,
    ledger_key,
    published_versions,
)
from counts_assets.delivery.resource import DeliveryResource
from counts_assets.delivery.retry import send_batch
from counts_assets.delivery.targets import DeliveryError
from counts_assets.exports.periods import period_bounds
from counts_assets.orgs.models import Organization
from counts_assets.pairs.store import PairBytes, PairStore, PairVersion, disk_failure
from counts_assets.partitions import partition_key
from counts_assets.records import latest_records, metadata_of
from counts_assets.resources import ExportFiles, OrgRegistry
from counts_assets.validation.gate import PairOnDisk, validate_published_pairs

SFTP_POOL = "sftp"


def _ledger_spec(cadence: Cadence) -> dg.AssetSpec:
    return dg.AssetSpec(
        ledger_key(cadence),
        deps=[cadence.summary, cadence.needs],
        partitions_def=cadence.partitions_def,
        group_name="delivery",
        description=f"The {cadence.name} pair as delivered to 211 Counts: one entry per "
        "delivery (where, when, size and SHA-256 of both files). A published pair without an "
        "entry for the current target is pending; observations say why it waits.",
    )


LEDGER_SPECS = [_ledger_spec(DAILY), _ledger_spec(MONTHLY)]


class DeliveryBatch(dg.Config):
    org_id: str
    pairs: list[str] = Field(
        default_factory=list, description='Pairs as "daily/2026-10-15" or "monthly/2026-10".'
    )


@dataclass
class PairJob:
    """One pair of a delivery run, with what the instance and the disk say about it."""

    org_id: str
    cadence: Cadence
    partition: str
    period: str
    first_day: dt.date
    last_day: dt.date
    published: PairVersion | None = None
    delivered: Delivered | None = None
    disk: PairBytes | None = None


def _pair_jobs(batch: DeliveryBatch, org: Organization) -> list[PairJob]:
    jobs = []
    for label in dict.fromkeys(batch.pairs):
        cadence_name, _, period = label.partition("/")
        cadence = CADENCES[cadence_name]
        start = dt.date.fromisoformat(period + "-01" if cadence.monthly else period)
        first, last = period_bounds(start, cadence.monthly)
        key = str(partition_key(cadence.monthly, batch.org_id, first))
        jobs.append(PairJob(batch.org_id, cadence, key, period, max(first, org.share_from), last))
    return jobs


def _observe(context, job: PairJob, status: str, reason: str, previous: dict, **extra) -> None:
    """An observation on the pair's ledger partition, only when its state changes."""
    last = previous.get((job.cadence.name, job.partition))
    if last and last.get("status") == status and last.get("reason") == reason:
        return
    since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    context.log_event(
        dg.AssetObservation(
            asset_key=ledger_key(job.cadence),
            partition=job.partition,
            metadata={"status": status, "reason": reason, "since": since, **extra},
        )
    )


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


def _record_recovered(context, job: PairJob, disk: PairBytes) -> None:
    for record in recovered_records(job.cadence, job.partition, disk, "a delivery run"):
        context.log_event(record)


def _refuse(context, job: PairJob, reason: str, previous: dict, **extra) -> str:
    _observe(context, job, "refused", reason, previous, **extra)
    return f"{job.org_id} {job.period}: {reason}"


def _read_verified(context, store: PairStore, job: PairJob, previous: dict) -> str | None:
    """Reads the pair under its lock (repairing it first) and checks it is the pair published.
    Returns why it is refused, or None."""
    try:
        with store.locked(job.org_id, job.period) as pair:
            job.disk = pair.read()
            journal = job.disk.journal
            if journal is not None:
                if journal == job.disk.version != job.published:
                    _record_recovered(context, job, job.disk)
                    job.published = job.disk.version
                pair.recorded()
            elif job.disk.version != job.published:
                # An export may have published and recorded the pair while this run waited
                # for its lock, after it read the versions: the newest record decides.
                newest = published_versions(context.instance, job.cadence, [job.partition])
                job.published = newest.get(job.partition, job.published)
    except OSError as exc:
        failure = disk_failure(exc)
        reason = (
            f"{failure.path}: the pair cannot be read, {failure.reason}; make the period again "
            "to publish it anew"
        )
        return _refuse(context, job, reason, previous)
    found, expected = job.disk.version, job.published
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
        return _refuse(
            context,
            job,
            f"{path} is not the file published (edited or truncated on disk): expected "
            f"SHA-256 {expected.sha256(kind)}, found {found.sha256(kind)}; make the period "
            "again to publish it anew",
            previous,
            path=path,
        )
    return None


def _validated(context, jobs: list[PairJob], previous: dict, refused: list[str]) -> list[PairJob]:
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
            refused.append(_refuse(context, job, "fails validation: " + "; ".join(lines), previous))
        else:
            passed.append(job)
    return passed


@dg.op(
    name="deliver_pairs",
    pool=SFTP_POOL,
    description="Delivers pending pairs of one organization over one connection.",
)
def deliver_pairs(
    context: dg.OpExecutionContext,
    config: DeliveryBatch,
    delivery: DeliveryResource,
    export_files: ExportFiles,
    org_registry: OrgRegistry,
) -> None:
    org = org_registry.load().orgs.get(config.org_id)
    if org is None:
        raise dg.Failure(f"{config.org_id} has no valid organization file: nothing is delivered")
    store = PairStore(export_files.root)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(store.delivering(org.id))
        except BlockingIOError as exc:
            raise dg.Failure(
                f"another delivery run for {org.id} is in progress (it holds {exc.filename}): "
                "this run sent nothing; the pairs stay pending and are requested again",
            ) from exc
        except OSError as exc:
            failure = disk_failure(exc)
            raise dg.Failure(
                f"{org.id}: nothing delivered, its delivery lock cannot be taken: "
                f"{failure.path}: {failure.reason}"
            ) from exc
        _deliver(context, config, org, delivery, store)


def _deliver(
    context: dg.OpExecutionContext,
    config: DeliveryBatch,
    org: Organization,
    delivery: DeliveryResource,
    store: PairStore,
) -> None:
    """The run's pairs, under the org's delivery lock."""
    jobs = _pair_jobs(config, org)
    previous = _latest_observations(context, jobs)
    blocked = org.delivery_blocked(dt.datetime.now(dt.UTC))
    if blocked:
        for job in jobs:
            _observe(context, job, "waiting", blocked, previous)
        context.log.info(f"{config.org_id}: {len(jobs)} pairs wait: {blocked}")
        return

    place = delivery.place(org.remote_dir)
    _load_versions(context.instance, jobs)
    refused: list[str] = []
    to_check = []
    for job in jobs:
        if job.published is None:
            continue  # the period made no file: nothing to deliver
        refusal = _read_verified(context, store, job, previous)
        if refusal:
            refused.append(refusal)
        elif (
            job.delivered
            and job.delivered.version == job.published
            and (job.delivered.target == place)
        ):
            _record(context, job, place, None)  # already there: nothing is sent
        else:
            to_check.append(job)
    sendable = _validated(context, to_check, previous, refused)

    sent = 0
    try:
        for job, receipts in send_batch(
            delivery.target(),
            sendable,
            lambda j: (
                org.remote_dir,
                [(j.disk.paths[k].name, j.disk.contents[k]) for k in ("needs", "summary")],
            ),
            delivery.retry_policy(),
            context.log.warning,
        ):
            _record(context, job, place, dict(zip(("needs", "summary"), receipts, strict=True)))
            sent += 1
    except DeliveryError as exc:
        waiting = sendable[sent:]
        for job in waiting:
            _observe(context, job, "failed", str(exc), previous)
        # The pair being sent when it failed (none when closing the connection failed).
        where = f"{config.org_id} {waiting[0].period} to {place}: " if waiting else ""
        raise dg.Failure(
            f"{config.org_id}: {sent} pairs delivered, {len(waiting)} not; they stay pending "
            f"and are requested again.\n{where}{exc}",
            metadata={"delivered": sent, "pending": len(waiting)},
        ) from exc
    context.log.info(f"{config.org_id}: {sent} pairs delivered to {place}")
    if refused:
        raise dg.Failure(
            f"{config.org_id}: {len(refused)} pairs refused, never sent:\n" + "\n".join(refused),
            metadata={"delivered": sent, "refused": len(refused)},
        )


def _load_versions(instance: dg.DagsterInstance, jobs: list[PairJob]) -> None:
    """Newest published version and last delivery of every pair: a few queries per cadence."""
    for cadence in (DAILY, MONTHLY):
        partitions = [j.partition for j in jobs if j.cadence is cadence]
        if not partitions:
            continue
        published = published_versions(instance, cadence, partitions)
        delivered = delivered_versions(instance, cadence, partitions)
        for job in jobs:
            if job.cadence is cadence:
                job.published = published.get(job.partition)
                job.delivered = delivered.get(job.partition)


def _record(context, job: PairJob, place: str, receipts: dict | None) -> None:
    """The ledger entry of one pair: delivered now, or (no receipts) already there."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    previous = job.delivered
    if receipts is None:
        meta = {
            "status": "unchanged",
            "target": place,
            "summary_sha256": previous.version.summary_sha256,
            "needs_sha256": previous.version.needs_sha256,
            "delivered_at": previous.delivered_at,
        }
    else:
        meta = {"status": "delivered", "target": place, "delivered_at": now}
        for kind, receipt in receipts.items():
            meta |= {
                f"{kind}_location": receipt.location,
                f"{kind}_size_bytes": receipt.size,
                f"{kind}_sha256": receipt.sha256,
            }
        meta["replaced"] = (
            f"{previous.version.summary_sha256[:12]}/{previous.version.needs_sha256[:12]} "
            f"at {previous.target}"
            if previous
            else ""
        )
    context.log_event(
        dg.AssetMaterialization(
            asset_key=ledger_key(job.cadence), partition=job.partition, metadata=meta
        )
    )


@dg.job(
    name="delivery_job",
    executor_def=dg.in_process_executor,
    tags=DELIVERY_WORK,
    description="Delivers pending pairs of one organization (launched by delivery_sensor).",
)
def delivery_job() -> None:
    deliver_pairs()
