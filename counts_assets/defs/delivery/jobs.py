"""The delivery runs: `delivery_job` sends one organization's pending pairs (launched by
`delivery_sensor`); `redelivery_job` sends chosen periods again on an operator's request."""

import datetime as dt

import dagster as dg

from counts_assets.defs.delivery.resources import SFTP_POOL, DeliveryResource
from counts_assets.defs.delivery.sending import (
    deliver_pending,
    org_or_fail,
    redeliver,
    with_delivery_lock,
)
from counts_assets.defs.shared.resources import ExportFiles, OrgRegistry
from counts_assets.defs.shared.runs import (
    DELIVERY_MAX_RUNTIME,
    DELIVERY_WORK,
)


class DeliveryBatch(dg.Config):
    org_id: str
    # The storage id up to which delivery_sensor takes the org's ledger entries to be about an
    # earlier destination: entries no newer that need no sending are written again.
    destination_since: int = 0


class RedeliveryRequest(dg.Config):
    """Which pairs of an organization to send again, and why (the ledger keeps the reason)."""

    org_id: str
    first: str  # YYYY-MM-DD: the first Call Date; a month counts when it overlaps the range
    last: str  # YYYY-MM-DD
    reason: str


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
    org = org_or_fail(org_registry, config.org_id)
    store = export_files.store(f"run {context.run_id}")
    with_delivery_lock(
        context,
        store,
        org,
        delivery.destination(org.remote_dir),
        lambda: deliver_pending(
            context, org, delivery, store, org_registry, config.destination_since
        ),
    )


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
    org = org_or_fail(org_registry, config.org_id)
    try:
        first, last = dt.date.fromisoformat(config.first), dt.date.fromisoformat(config.last)
    except ValueError as exc:
        raise dg.Failure(f"first and last must be dates written YYYY-MM-DD: {exc}") from exc
    if not config.reason.strip():
        raise dg.Failure("a re-delivery needs a reason (the ledger keeps it)")
    store = export_files.store(f"run {context.run_id}")

    with_delivery_lock(
        context,
        store,
        org,
        delivery.destination(org.remote_dir),
        lambda: redeliver(
            context, org, delivery, store, org_registry, first, last, config.reason.strip()
        ),
    )


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
