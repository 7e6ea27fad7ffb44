"""What delivery tests share: a platform whose target is the real SFTP server, the sensor's
tick and the runs it requests executed in process as the daemon would, and what the recipient
holds, counted."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from counts_assets.defs.delivery.resources import DeliveryResource
from counts_assets.defs.delivery.sensors import delivery_sensor

DAY = "2026-03-08|testorg"
SUMMARY = "testorg/testorg_daily_2026-03-08_summary.csv"


def sftp_delivery(sftp_server, base, **overrides) -> DeliveryResource:
    settings = {
        "url": sftp_server.url(str(base)),
        "key_file": str(sftp_server.client_key),
        "known_hosts": str(sftp_server.known_hosts),
        "timeout_seconds": 5,
        "first_delay_seconds": 0.05,
        "max_delay_seconds": 0.1,
    }
    return DeliveryResource(**(settings | overrides))


def tick(platform) -> list[dg.RunRequest]:
    context = dg.build_sensor_context(
        instance=platform.instance, cursor=platform.cursor, resources=platform.resources
    )
    result = delivery_sensor(context)
    platform.cursor = result.cursor
    for event in result.asset_events:
        platform.instance.report_runless_asset_event(event)
    return list(result.run_requests)


def deliver(platform, requests, succeed=True) -> list[dg.ExecuteInProcessResult]:
    results = [platform.execute(r) for r in requests]
    if succeed:
        assert all(r.success for r in results), [r.run_id for r in results]
    return results


def remote_files(base):
    return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def local_files(platform):
    return {
        f"{p.parent.parent.name}/{p.name}": p.read_bytes()
        for p in platform.export_dir.glob("*/*/*.csv")
    }


def events(platform, asset, partition, observations=False):
    fetch = (
        platform.instance.fetch_observations
        if observations
        else platform.instance.fetch_materializations
    )
    records = fetch(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]),
        limit=20,
    ).records
    return [
        {k: v.value for k, v in (r.asset_materialization or r.asset_observation).metadata.items()}
        for r in records
    ]


def sent_by(result, platform=None) -> list[str]:
    """The partitions a delivery run sent, from its ledger entries. A failed step's events are
    not in its result: pass the platform to read them from the instance."""
    return sorted(
        f"{m.asset_key.path[-1].split('_')[0]}/{m.partition}"
        for m in ledger_entries_of(result, platform)
        if m.metadata["status"].value in ("delivered", "redelivered")
    )


def ledger_entries_of(result, platform=None) -> list[dg.AssetMaterialization]:
    events = (
        [entry.dagster_event for entry in platform.instance.all_logs(result.run_id)]
        if platform
        else result.all_events
    )
    return [
        event.event_specific_data.materialization
        for event in events
        if event is not None
        and event.event_type_value == "ASSET_MATERIALIZATION"
        and event.event_specific_data.materialization.asset_key.path[-1].endswith("_delivery")
    ]


def mixed_pairs(base) -> int:
    """Pairs at the recipient whose two files do not come from one publish: Total Calls of
    File 1 must equal the distinct records of File 2 on every Call Date."""
    mixed = 0
    for summary in base.rglob("*_summary.csv"):
        needs = summary.with_name(summary.name.replace("_summary", "_needs"))
        calls = sum(int(line.split(",")[1]) for line in summary.read_text().splitlines()[1:])
        records = {line.rsplit(",", 1)[1] for line in needs.read_text().splitlines()[1:]}
        mixed += calls != len(records)
    return mixed


def add_record(platform, crn: str) -> None:
    engine = sa.create_engine(platform.source_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO contact_records (org_id, call_report_num, contact_form, "
                "report_version, started_at, status) VALUES ('testorg', :crn, '211 Contact', "
                "'v2', '2026-03-08 18:00:00', 'finalized')"
            ),
            {"crn": crn},
        )
        connection.execute(
            sa.text("INSERT INTO contact_answers VALUES ('testorg', :crn, 'Line Called', '2-1-1')"),
            {"crn": crn},
        )
