"""The delivery sensor and runs with a real Dagster instance and a real SFTP server: every file
delivered byte-identical exactly once, unchanged content not re-sent, new content replacing."""

from __future__ import annotations

import hashlib

import dagster as dg
import pytest
import sqlalchemy as sa

from counts_assets.delivery.resource import DeliveryResource
from counts_assets.sensors import delivery as delivery_sensor_module
from counts_assets.sensors.delivery import delivery_sensor
from counts_tests.platform import platform_on


@pytest.fixture
def sftp_platform(tmp_path, sftp_server, sftp_base):
    delivery = DeliveryResource(
        url=sftp_server.url(str(sftp_base)),
        key_file=str(sftp_server.client_key),
        known_hosts=str(sftp_server.known_hosts),
        timeout_seconds=5,
        first_delay_seconds=0.1,
    )
    with platform_on(tmp_path, delivery) as platform:
        platform.cursor = None
        yield platform, sftp_base


def tick(platform) -> list[dg.RunRequest]:
    context = dg.build_sensor_context(
        instance=platform.instance, cursor=platform.cursor, resources=platform.resources
    )
    result = delivery_sensor(context)
    platform.cursor = result.cursor
    return list(result.run_requests)


def deliver_all(platform, requests) -> None:
    for request in requests:
        assert platform.execute(request).success, request.run_key


def remote_files(base):
    return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def local_files(platform):
    return {
        f"{p.parent.parent.name}/{p.name}": p.read_bytes()
        for p in platform.export_dir.rglob("*.csv")
    }


def ledger(platform, asset, partition):
    records = platform.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]),
        limit=10,
    ).records
    return [{k: v.value for k, v in r.asset_materialization.metadata.items()} for r in records]


def test_backfill_of_many_partitions_is_delivered_exactly_once(sftp_platform):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", "2026-03-05|testorg", "2026-03-10|otherorg").success
    assert platform.run(
        "monthly_reconciliation_job", "2026-03-01|testorg", "2026-03-01|otherorg"
    ).success

    requests = tick(platform)
    # testorg: 03-07..03-10 (share_from 03-07); otherorg: 03-05..03-10; both kinds; + monthly.
    assert len(requests) == 2 * (4 + 6) + 2 * 2
    assert len({r.run_key for r in requests}) == len(requests)
    deliver_all(platform, requests)

    assert remote_files(base) == local_files(platform)
    assert not any(name.endswith(".part") for name in remote_files(base))
    entry = ledger(platform, "daily_needs_delivery", "2026-03-08|testorg")
    assert len(entry) == 1 and entry[0]["status"] == "delivered"
    assert entry[0]["location"].endswith(f"{base}/testorg/testorg_daily_2026-03-08_needs.csv")
    assert entry[0]["size_bytes"] == len(
        remote_files(base)["testorg/testorg_daily_2026-03-08_needs.csv"]
    )

    # The same content materialized again costs nothing.
    assert platform.run("daily_export_job", "2026-03-05|testorg", "2026-03-10|otherorg").success
    assert tick(platform) == []


def test_new_content_replaces_the_delivered_file(sftp_platform):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", "2026-03-08|testorg").success
    deliver_all(platform, tick(platform))
    before = remote_files(base)["testorg/testorg_daily_2026-03-08_summary.csv"]

    engine = sa.create_engine(platform.source_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO contact_records (org_id, call_report_num, contact_form, "
                "report_version, started_at, status) VALUES ('testorg', '2000', '211 Contact', "
                "'v2', '2026-03-08 18:00:00', 'finalized')"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO contact_answers VALUES ('testorg', '2000', 'Line Called', '2-1-1')"
            )
        )
    assert platform.run("daily_export_job", "2026-03-08|testorg").success
    requests = tick(platform)
    assert sorted(r.asset_selection[0].to_user_string() for r in requests) == [
        "daily_needs_delivery",
        "daily_summary_delivery",
    ]
    deliver_all(platform, requests)
    after = remote_files(base)["testorg/testorg_daily_2026-03-08_summary.csv"]
    assert (
        after != before
        and after == local_files(platform)["testorg/testorg_daily_2026-03-08_summary.csv"]
    )
    newest, first = ledger(platform, "daily_summary_delivery", "2026-03-08|testorg")
    assert newest["replaced_sha256"] == first["sha256"] != newest["sha256"]


def test_a_repeated_delivery_run_does_not_resend(sftp_platform):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", "2026-03-08|testorg").success
    requests = tick(platform)
    deliver_all(platform, requests)
    remote = base / "testorg" / "testorg_daily_2026-03-08_summary.csv"
    stamp = remote.stat().st_mtime_ns
    summary = next(r for r in requests if "summary" in r.asset_selection[0].to_user_string())
    assert platform.execute(summary).success
    assert remote.stat().st_mtime_ns == stamp
    statuses = [
        e["status"] for e in ledger(platform, "daily_summary_delivery", "2026-03-08|testorg")
    ]
    assert statuses == ["unchanged", "delivered"]


def test_superseded_request_delivers_nothing(sftp_platform):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", "2026-03-08|testorg").success
    stale = tick(platform)
    platform.export_dir.joinpath("testorg/daily/testorg_daily_2026-03-08_summary.csv").write_bytes(
        b"Call Date,Total Calls,Total Services,Report Version\n"
    )
    for request in stale:
        if "summary" in request.asset_selection[0].to_user_string():
            assert platform.execute(request).success
    assert ledger(platform, "daily_summary_delivery", "2026-03-08|testorg") == []
    assert "testorg/testorg_daily_2026-03-08_summary.csv" not in remote_files(base)


def test_a_file_that_fails_validation_is_never_delivered(sftp_platform):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", "2026-03-08|testorg").success
    path = platform.export_dir / "testorg/daily/testorg_daily_2026-03-08_summary.csv"
    path.write_bytes(b"Call Date,Total Calls,Total Services,Report Version\n2026-03-09,0,0,\n")

    request = dg.RunRequest(
        job_name="daily_delivery_job",
        partition_key="2026-03-08|testorg",
        asset_selection=[dg.AssetKey("daily_summary_delivery")],
        run_config=dg.RunConfig(
            ops={
                "daily_summary_delivery": {
                    "config": {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
                }
            }
        ),
    )
    result = platform.execute(request)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.user_failure_data.description
    assert "fails validation and is not delivered" in message
    assert "Total Calls: str_matches" in message
    assert "Call Date inside the period" in message
    assert remote_files(base) == {}


def test_cursor_pages_through_large_batches_without_losing_files(sftp_platform, monkeypatch):
    platform, _ = sftp_platform
    monkeypatch.setattr(delivery_sensor_module, "BATCH", 3)
    assert platform.run("daily_export_job", "2026-03-05|testorg", "2026-03-10|otherorg").success
    seen: list[str] = []
    for _ in range(40):  # at most 6 of the 40 file materializations per tick
        seen += [r.run_key for r in tick(platform)]
    assert len(seen) == len(set(seen)) == 20


def test_files_of_an_org_removed_from_the_registry_are_not_delivered(sftp_platform):
    platform, _ = sftp_platform
    assert platform.run("daily_export_job", "2026-03-08|testorg", "2026-03-08|otherorg").success
    (platform.orgs_dir / "otherorg.yaml").unlink()
    requests = tick(platform)
    assert {r.partition_key for r in requests} == {"2026-03-08|testorg"}
