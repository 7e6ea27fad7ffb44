"""`delivery_sensor`: one delivery run per newly materialized file version.

A plain sensor with its own cursor over the instance's materialization records (storage id),
not Dagster's asset-sensor decorator, which reads only the newest event per tick and drops the
others when several partitions land between ticks (dagster issue #32853)."""

import json
from dataclasses import dataclass

import dagster as dg

from counts_assets.assets.delivery import DeliveryRunConfig, delivery_key, last_delivery
from counts_assets.assets.exports import DAILY, MONTHLY, Cadence
from counts_assets.delivery.resource import DeliveryResource
from counts_assets.jobs import daily_delivery_job, monthly_delivery_job
from counts_assets.partitions import split_key
from counts_assets.resources import OrgRegistry

BATCH = 500
DELIVERY_JOBS = {"daily": daily_delivery_job, "monthly": monthly_delivery_job}


@dataclass(frozen=True)
class FileVersion:
    cadence: Cadence
    kind: str
    partition: str
    sha256: str
    storage_id: int


def new_file_versions(
    instance: dg.DagsterInstance, after_storage_id: int
) -> tuple[list[FileVersion], int]:
    """Published file materializations after the cursor, the newest per file, and the new
    cursor. When a batch is cut short, the cursor stops where every asset is complete."""
    events = []
    complete_up_to: int | None = None
    for cadence in (DAILY, MONTHLY):
        for kind, asset_key in cadence.file_keys.items():
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset_key, after_storage_id=after_storage_id),
                limit=BATCH,
                ascending=True,
            ).records
            events += [(cadence, kind, r) for r in records]
            if len(records) == BATCH:
                last = records[-1].storage_id
                complete_up_to = last if complete_up_to is None else min(complete_up_to, last)
    if complete_up_to is not None:
        events = [e for e in events if e[2].storage_id <= complete_up_to]
    cursor = max((e[2].storage_id for e in events), default=after_storage_id)

    newest: dict[tuple[str, str, str], FileVersion] = {}
    for cadence, kind, record in sorted(events, key=lambda e: e[2].storage_id):
        metadata = record.asset_materialization.metadata
        sha = metadata.get("sha256")
        if sha is None:  # a period before share_from: no file
            continue
        partition = record.partition_key
        newest[(cadence.name, kind, partition)] = FileVersion(
            cadence, kind, partition, sha.value, record.storage_id
        )
    return list(newest.values()), cursor


@dg.sensor(
    name="delivery_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[daily_delivery_job, monthly_delivery_job],
    description="Requests a delivery run for every newly materialized file whose content "
    "differs from what was last delivered.",
)
def delivery_sensor(
    context: dg.SensorEvaluationContext, delivery: DeliveryResource, org_registry: OrgRegistry
):
    cursor = json.loads(context.cursor)["storage_id"] if context.cursor else 0
    versions, new_cursor = new_file_versions(context.instance, cursor)
    target = delivery.target().describe()
    registered = org_registry.load().orgs
    requests = []
    for version in versions:
        ledger_key = delivery_key(version.cadence, version.kind)
        org_id, _ = split_key(version.cadence.partitions_def, version.partition)
        if org_id not in registered:
            context.log.info(f"{version.partition}: {org_id} is no longer registered, skipped")
            continue
        previous = last_delivery(context.instance, ledger_key, version.partition)
        if (
            previous
            and previous.get("sha256") == version.sha256
            and (previous.get("target") == target)
        ):
            continue  # same content already delivered there: costs nothing
        requests.append(
            dg.RunRequest(
                run_key=f"{ledger_key.to_user_string()}|{version.partition}|"
                f"{version.sha256}|{version.storage_id}",
                job_name=DELIVERY_JOBS[version.cadence.name].name,
                partition_key=version.partition,
                asset_selection=[ledger_key],
                run_config=dg.RunConfig(
                    ops={
                        ledger_key.to_python_identifier(): DeliveryRunConfig(sha256=version.sha256)
                    }
                ),
                tags={"counts/file": f"{version.cadence.name}_{version.kind}"},
            )
        )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps({"storage_id": new_cursor}))
