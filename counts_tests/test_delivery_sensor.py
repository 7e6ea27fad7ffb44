"""Delivery from state with a real Dagster instance and a real SFTP server: pairs delivered
once and together, in one run per org, and every pending pair delivered in the end whatever
happened in between (outage, lost sensor state, broken org file, edited file, no permission).
Each case counts what the recipient got: lost, duplicated, mixed."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time

import dagster as dg
import pytest

from counts_assets.core.delivery.sftp import SftpConnection
from counts_assets.core.pairs import store as pair_store
from counts_assets.core.pairs.store import PairStore
from counts_assets.definitions import build_defs
from counts_assets.defs.delivery import recovery as recovery_module
from counts_assets.defs.delivery import sending as delivery_sending
from counts_assets.defs.delivery.resources import DeliveryResource
from counts_assets.defs.exports.resources import SourceReader
from counts_assets.defs.health.view import fleet_health
from counts_assets.defs.shared.resources import ExportFiles
from counts_tests.delivery_helpers import (
    DAY,
    SUMMARY,
    add_record,
    deliver,
    events,
    local_files,
    mixed_pairs,
    remote_files,
    sent_by,
    sftp_delivery,
    tick,
)
from counts_tests.golden_store import OTHER_ORG_YAML
from counts_tests.mounts import tmpfs
from counts_tests.platform import platform_on
from counts_tests.tcp_proxy import HoldingProxy


def test_a_backfill_is_delivered_as_pairs_in_one_run_per_org(sftp_platform):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", "2026-03-05|testorg", "2026-03-10|otherorg").success
    assert platform.run(
        "monthly_reconciliation_job", "2026-03-01|testorg", "2026-03-01|otherorg"
    ).success

    requests = tick(platform)
    assert sorted(r.tags["counts/org"] for r in requests) == ["otherorg", "testorg"]
    assert tick(platform) == []  # a run per org is in flight (requested, not yet due again)
    by_org = {
        r.tags["counts/org"]: sent_by(d)
        for r, d in zip(requests, deliver(platform, requests), strict=True)
    }
    # testorg: 03-07..03-10 (share_from 03-07); otherorg: 03-05..03-10; + each month.
    assert len(by_org["testorg"]) == 4 + 1 and len(by_org["otherorg"]) == 6 + 1

    assert remote_files(base) == local_files(platform)
    assert not any(name.endswith(".part") for name in remote_files(base))
    assert mixed_pairs(base) == 0
    (entry,) = events(platform, "daily_delivery", DAY)
    assert entry["status"] == "delivered" and entry["target"].endswith(f"{base}/testorg")
    assert entry["summary_location"].endswith(f"{base}/{SUMMARY}")
    assert entry["needs_size_bytes"] == len(remote_files(base)[SUMMARY.replace("summary", "needs")])

    # Made again with the same bytes: recorded as unchanged, nothing re-sent.
    stamp = (base / SUMMARY).stat().st_mtime_ns
    assert platform.run("daily_export_job", "2026-03-05|testorg", "2026-03-10|otherorg").success
    deliver(platform, tick(platform))
    assert (base / SUMMARY).stat().st_mtime_ns == stamp
    assert [e["status"] for e in events(platform, "daily_delivery", DAY)] == [
        "unchanged",
        "delivered",
    ]
    assert tick(platform) == []


def test_new_content_replaces_the_delivered_pair(sftp_platform):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", DAY).success
    deliver(platform, tick(platform))
    before = remote_files(base)[SUMMARY]

    add_record(platform, "2000")
    assert platform.run("daily_export_job", DAY).success
    (request,) = tick(platform)
    assert sent_by(*deliver(platform, [request])) == [f"daily/{DAY}"]
    after = remote_files(base)[SUMMARY]
    assert after != before and remote_files(base) == local_files(platform)
    newest, first = events(platform, "daily_delivery", DAY)
    assert newest["replaced"].startswith(first["summary_sha256"][:12])


def test_a_request_made_before_a_newer_publish_sends_the_newest_pair(sftp_platform):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", DAY).success
    stale = tick(platform)
    add_record(platform, "2001")
    assert platform.run("daily_export_job", DAY).success
    deliver(platform, stale)
    assert remote_files(base) == local_files(platform) and mixed_pairs(base) == 0
    assert tick(platform) == []  # the newest pair is the one delivered


def _export_again(platform, crn: str) -> None:
    add_record(platform, crn)
    assert platform.run("daily_export_job", DAY).success


@pytest.mark.parametrize(
    "instant",
    ["before the versions are read", "after the read", "after the send", "before the ledger write"],
)
def test_a_pair_made_again_at_any_instant_of_a_delivery_run_ends_at_the_recipient(
    sftp_platform, monkeypatch, instant
):
    """The period is made again while a delivery run works on it. Whenever that happens, the
    recipient ends with the newest pair, whole, and nothing is left pending. Inside the lock
    window (after the send, before the ledger write) the export waits for the pair's lock, as
    a real export run in another process would."""
    platform, base = sftp_platform
    assert platform.run("daily_export_job", DAY).success
    (request,) = tick(platform)
    exporter: list[threading.Thread] = []

    def in_another_thread() -> None:
        thread = threading.Thread(target=_export_again, args=(platform, "2003"))
        thread.start()
        exporter.append(thread)
        time.sleep(0.5)  # it is waiting for the pair's lock now

    real_jobs, real_send, real_record = (
        delivery_sending.pairs_to_send,
        SftpConnection.send,
        delivery_sending._write_entries,
    )
    if instant == "before the versions are read":

        def hooked_jobs(*args, **kwargs):
            _export_again(platform, "2003")
            return real_jobs(*args, **kwargs)

        monkeypatch.setattr(delivery_sending, "pairs_to_send", hooked_jobs)
    elif instant == "after the read":

        def hooked_jobs(*args, **kwargs):
            jobs = real_jobs(*args, **kwargs)
            _export_again(platform, "2003")
            return jobs

        monkeypatch.setattr(delivery_sending, "pairs_to_send", hooked_jobs)
    elif instant == "after the send":

        def hooked_send(self, *args):
            receipts = real_send(self, *args)
            in_another_thread()
            return receipts

        monkeypatch.setattr(SftpConnection, "send", hooked_send)
    else:

        def hooked_record(*args, **kwargs):
            in_another_thread()
            return real_record(*args, **kwargs)

        monkeypatch.setattr(delivery_sending, "_write_entries", hooked_record)
    deliver(platform, [request])
    for thread in exporter:
        thread.join(60)
    monkeypatch.undo()
    time.sleep(0.05)
    while requests := tick(platform):
        deliver(platform, requests)
    assert "2003" in (base / SUMMARY.replace("summary", "needs")).read_text()
    assert remote_files(base) == local_files(platform) and mixed_pairs(base) == 0
    assert tick(platform) == []


def test_target_down_longer_than_every_attempt_is_delivered_once_it_is_back(
    tmp_path, sftp_server, sftp_base
):
    delivery = sftp_delivery(sftp_server, sftp_base, attempts=2, retry_minutes=0.01)
    with platform_on(tmp_path, delivery) as platform:
        platform.cursor = None
        assert platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-09|testorg").success
        sftp_server.stop()
        try:
            for _ in range(2):  # two requests, both spent, the pairs still pending
                (request,) = tick(platform)
                (result,) = deliver(platform, [request], succeed=False)
                assert not result.success
                time.sleep(0.7)
            failed = events(platform, "daily_delivery", DAY, observations=True)
            assert failed[0]["status"] == "failed" and "unreachable" in failed[0]["reason"]
        finally:
            sftp_server.start()
        time.sleep(0.7)
        deliver(platform, tick(platform))
        lost = set(local_files(platform)) - set(remote_files(sftp_base))
        assert lost == set() and mixed_pairs(sftp_base) == 0
        assert tick(platform) == []


def test_lost_sensor_state_and_a_broken_org_file_only_delay_delivery(sftp_platform):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", "2026-03-08|testorg", "2026-03-08|otherorg").success
    good = (platform.orgs_dir / "otherorg.yaml").read_text()
    (platform.orgs_dir / "otherorg.yaml").write_text(good.replace("timezone:", "timezone: x\n#"))
    (request,) = tick(platform)
    assert request.tags["counts/org"] == "testorg"
    deliver(platform, [request])

    (platform.orgs_dir / "otherorg.yaml").write_text(good)
    platform.cursor = None  # the sensor's state is gone (reset, new instance of the daemon)
    (request,) = tick(platform)
    assert request.tags["counts/org"] == "otherorg"
    deliver(platform, [request])
    assert remote_files(base) == local_files(platform)


def test_a_file_edited_on_disk_is_refused_until_it_is_published_again(sftp_platform):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", DAY).success
    path = platform.export_dir / "testorg/daily/testorg_daily_2026-03-08_summary.csv"
    path.write_bytes(path.read_bytes().replace(b",v2", b",v9"))

    (request,) = tick(platform)
    (result,) = deliver(platform, [request], succeed=False)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "not the file published" in failure.step_failure_data.user_failure_data.description
    logged = platform.instance.all_logs(result.run_id)
    check = next(
        e for e in logged if e.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    )
    data = check.dagster_event.event_specific_data
    assert not data.passed and data.metadata["path"].value == str(path)
    assert data.metadata["found_sha256"].value != data.metadata["expected_sha256"].value
    assert remote_files(base) == {}
    (refusal,) = events(platform, "daily_delivery", DAY, observations=True)
    assert refusal["status"] == "refused"

    platform.set_delivery(retry_minutes=0.001)
    time.sleep(0.1)
    assert tick(platform) == []  # refused: not requested again for the same bytes
    assert platform.run("daily_export_job", DAY).success
    deliver(platform, tick(platform))
    assert remote_files(base) == local_files(platform)


def test_pairs_wait_for_permission_and_go_out_once_it_is_signed(sftp_platform):
    platform, base = sftp_platform
    unsigned = OTHER_ORG_YAML.split("permission:")[0]
    (platform.orgs_dir / "otherorg.yaml").write_text(unsigned)
    assert platform.run("daily_export_job", "2026-03-08|otherorg").success
    assert tick(platform) == []
    (waiting,) = events(platform, "daily_delivery", "2026-03-08|otherorg", observations=True)
    assert waiting["status"] == "waiting" and "no permission" in waiting["reason"]
    assert tick(platform) == []  # said once, not at every tick
    assert len(events(platform, "daily_delivery", "2026-03-08|otherorg", True)) == 1

    (platform.orgs_dir / "otherorg.yaml").write_text(OTHER_ORG_YAML)
    deliver(platform, tick(platform))
    assert "otherorg/otherorg_daily_2026-03-08_summary.csv" in remote_files(base)


def test_a_revoked_permission_stops_delivery(sftp_platform):
    platform, base = sftp_platform
    revoked = OTHER_ORG_YAML + "  revoked_on: 2026-03-01\n"
    (platform.orgs_dir / "otherorg.yaml").write_text(revoked)
    assert platform.run("daily_export_job", "2026-03-08|otherorg").success
    assert tick(platform) == []
    (waiting,) = events(platform, "daily_delivery", "2026-03-08|otherorg", observations=True)
    assert "revoked on 2026-03-01" in waiting["reason"]


def test_a_connection_cut_between_the_two_renames_is_repaired_by_the_next_delivery(
    sftp_platform, monkeypatch
):
    import paramiko

    platform, base = sftp_platform
    assert platform.run("daily_export_job", DAY).success
    deliver(platform, tick(platform))
    add_record(platform, "2002")
    assert platform.run("daily_export_job", DAY).success

    real_rename = paramiko.SFTPClient.posix_rename

    def cut_after_first(self, old, new):
        real_rename(self, old, new)
        self.get_channel().get_transport().close()  # the connection drops here

    monkeypatch.setattr(paramiko.SFTPClient, "posix_rename", cut_after_first)
    platform.set_delivery(attempts=1, retry_minutes=0.001)
    (request,) = tick(platform)
    (result,) = deliver(platform, [request], succeed=False)
    assert mixed_pairs(base) == 1  # File 2 new, File 1 old: the one window the contract allows
    monkeypatch.setattr(paramiko.SFTPClient, "posix_rename", real_rename)
    time.sleep(0.1)
    (request,) = tick(platform)
    deliver(platform, [request])
    assert mixed_pairs(base) == 0 and remote_files(base) == local_files(platform)


def test_a_changed_target_makes_every_pair_pending_there(sftp_platform, sftp_server, tmp_path):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", DAY).success
    deliver(platform, tick(platform))
    moved = base.parent / f"{base.name}-moved"
    moved.mkdir()
    platform.set_delivery(url=sftp_server.url(str(moved)))
    deliver(platform, tick(platform))
    assert remote_files(moved) == local_files(platform)


def test_a_thousand_pending_pairs_go_out_in_bounded_batches(tmp_path):
    delivery = DeliveryResource(url=f"file://{tmp_path / 'outbox'}", batch_pairs=150)
    extra = ("thirdorg", "fourthorg")
    with platform_on(tmp_path, delivery, registered=("testorg", "otherorg", *extra)) as p:
        p.cursor = None
        for org in extra:
            yaml = OTHER_ORG_YAML.replace("otherorg", org).replace("2026-03-01", "2026-01-01")
            (p.orgs_dir / f"{org}.yaml").write_text(yaml)
        for org in ("testorg", "otherorg", *extra):
            assert p.run("daily_export_job", f"2026-01-01|{org}", f"2026-11-20|{org}").success
        per_org = {"testorg": 259, "otherorg": 265, "thirdorg": 324, "fourthorg": 324}
        published = len(local_files(p)) // 2
        assert published == sum(per_org.values()) > 1000
        runs = 0
        while requests := tick(p):
            assert len({r.tags["counts/org"] for r in requests}) == len(requests)
            assert all(len(sent_by(r)) <= 150 for r in deliver(p, requests))
            runs += len(requests)
        outbox = remote_files(tmp_path / "outbox")
        assert len(outbox) == 2 * published  # none lost, none twice (same names)
        assert runs == sum(-(-n // 150) for n in per_org.values())


def test_a_publish_cut_before_it_was_recorded_is_recorded_and_sent_by_the_next_delivery(
    sftp_platform,
):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", DAY).success
    deliver(platform, tick(platform))
    # An export that died after both renames and before its record: the journal stays.
    new_pair = {"summary": (b"", 0), "needs": (b"", 0)}
    for kind in new_pair:
        path = platform.export_dir / f"testorg/daily/testorg_daily_2026-03-08_{kind}.csv"
        new_pair[kind] = (path.read_bytes().replace(b",v2", b",v3"), 1)
    with PairStore(platform.export_dir).locked("testorg", "2026-03-08") as pair:
        pair.publish(new_pair)
    request = dg.RunRequest(
        job_name="delivery_job",
        run_config={"ops": {"deliver_pairs": {"config": {"org_id": "testorg"}}}},
    )
    deliver(platform, [request])
    (recovered, _) = events(platform, "daily_summary_file", DAY)
    assert "publish journal" in recovered["recovered"]
    assert remote_files(base)[SUMMARY] == new_pair["summary"][0]
    assert not list((platform.export_dir / ".pairs").rglob("*.journal"))


def test_a_publish_left_unrecorded_by_a_failed_run_is_recovered_by_a_run_the_sensor_requests(
    sftp_platform, monkeypatch
):
    """A run that ended between a batch's publish and its record leaves pairs on disk with
    their journals and no record. For each export run that ended without success the sensor
    requests a journal_recovery_job run (its tick reads only the instance). The run records the
    pairs from their journals under their locks, drops the journals, and they are delivered
    like any other. A pair held past the lock wait fails the recovery run, which the sensor
    requests again, up to its last attempt."""
    platform, base = sftp_platform
    assert platform.run("daily_export_job", DAY).success
    deliver(platform, tick(platform))
    new_pair = {}
    for kind in ("summary", "needs"):
        path = platform.export_dir / f"testorg/daily/testorg_daily_2026-03-08_{kind}.csv"
        new_pair[kind] = (path.read_bytes().replace(b",v2", b",v3"), 1)
    store = PairStore(platform.export_dir)
    with store.locked("testorg", "2026-03-08") as pair:
        pair.publish(new_pair)  # the run ends here: no record, the journal stays
    journal = platform.export_dir / ".pairs/testorg/daily/2026-03-08.journal"
    (journal.parent / "2026-03-08.old.journal").write_text("{}")  # a stray file stops nothing
    assert tick(platform) == []  # nothing ended without success: no file is looked at

    source = platform.resources["source"]
    platform.resources["source"] = SourceReader(url=f"sqlite:///{platform.home}/missing.sqlite")
    platform.resources["export_files"] = ExportFiles(
        export_dir=str(platform.export_dir), lock_wait_seconds=0.2
    )
    platform.defs = build_defs(platform.resources)
    failed = platform.run("daily_export_job", DAY)
    assert not failed.success
    platform.resources["source"] = source
    platform.defs = build_defs(platform.resources)

    (recovery,) = tick(platform)
    assert recovery.job_name == "journal_recovery_job"
    assert recovery.run_key == f"journals|{failed.run_id}"
    assert recovery.run_config["ops"]["recover_journals"]["config"]["org_ids"] == ["testorg"]
    assert tick(platform) == []  # requested once
    with store.locked("testorg", "2026-03-08"):  # held past the wait: the run fails
        (held,) = deliver(platform, [recovery], succeed=False)
    assert not held.success
    failure = next(e for e in held.all_events if e.event_type_value == "STEP_FAILURE")
    assert "1 publish journals left" in failure.step_failure_data.user_failure_data.description
    assert events(platform, "daily_summary_file", DAY)[0].get("recovered") is None
    assert journal.exists()

    (again,) = tick(platform)  # the failed recovery is requested again, once
    assert again.run_key == f"journals|{held.run_id}"
    assert again.tags[recovery_module.RECOVERY_ATTEMPT_TAG] == "2"
    assert again.run_config == recovery.run_config
    assert tick(platform) == []
    monkeypatch.setattr(recovery_module, "MAX_RECOVERY_ATTEMPTS", 2)
    with store.locked("testorg", "2026-03-08"):  # the last attempt fails too
        (last,) = deliver(platform, [again], succeed=False)
    assert not last.success
    assert tick(platform) == []  # left to the operator, who has an alert for each failure

    deliver(platform, [again])  # recorded under the lock, the journal dropped
    (recovered, *_) = events(platform, "daily_summary_file", DAY)
    assert recovered["recovered"] == "recorded by journal_recovery_job from the publish journal"
    assert recovered["sha256"] == pair_store.sha256(new_pair["summary"][0])
    assert not journal.exists()
    (request,) = tick(platform)  # pending like any other
    assert sent_by(*deliver(platform, [request])) == [f"daily/{DAY}"]
    assert remote_files(base)[SUMMARY] == new_pair["summary"][0]
    assert remote_files(base) == local_files(platform) and mixed_pairs(base) == 0


def test_the_health_view_shows_each_org_at_a_glance(sftp_platform):
    platform, _ = sftp_platform
    (platform.orgs_dir / "otherorg.yaml").write_text(OTHER_ORG_YAML.split("permission:")[0])
    assert platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-08|otherorg").success
    delivery = platform.resources["delivery"]

    def health(now):
        registry = platform.resources["org_registry"].load()
        rows = fleet_health(
            platform.instance, registry, now, lambda org: delivery.destination(org.remote_dir)
        )
        return {r.org_id: r for r in rows}

    # The day after the golden days, the pairs made an hour ago and not yet delivered.
    march_9 = dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC)
    an_hour_on = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    before = health(march_9)
    assert before["testorg"].held_through == "-"
    problems = health(an_hour_on)["testorg"].problem.split("; ")
    assert "not at the destination: 2 days: 2026-03-07 .. 2026-03-08" in problems
    deliver(platform, tick(platform))
    after = health(march_9)
    assert after["testorg"].fine and after["testorg"].held_through == "2026-03-08"
    assert after["testorg"].daily_through == "2026-03-08"
    assert after["testorg"].findings == "needs left out 2, zips sent empty 1, answers unmapped 1"
    # otherorg has no letter: its pairs wait, said so; that alone does not make it not fine.
    assert after["otherorg"].permission == "none"
    assert "wait for permission" in after["otherorg"].problem
    assert after["otherorg"].held_through == "-"


def test_the_health_view_is_an_asset_in_the_ui(sftp_platform):
    platform, _ = sftp_platform
    assert platform.run("daily_export_job", "2026-03-08|testorg").success
    result = platform.run("fleet_health_job", None)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("fleet_health")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["organizations"] == 2 and metadata["not_fine"] == ["otherorg", "testorg"]
    assert metadata["summary"] == "0 fine, 2 not: otherorg, testorg"
    assert (
        "| testorg | NO | 2026-03-08 | - | - | none | not yet | LTR-TEST-1 |"
        in (metadata["health"])
    )
    assert metadata["attention"].startswith("- **otherorg** NO: missing ")
    assert "- **testorg** NO: missing " in metadata["attention"]


def step_failure(result) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.step_failure_data.user_failure_data.description


def test_a_second_delivery_run_for_an_org_waits_a_bounded_time_then_fails_naming_the_first(
    tmp_path, sftp_server, sftp_base
):
    """Two runs for one org (a manual launch beside the sensor's) would send the same files
    under the same temporary names. The first run is held on its way to the server (its
    connection waits in a proxy) while the second starts: the second waits for the org's
    delivery lock no longer than the bound, then stops, naming the run that holds it."""
    with HoldingProxy(sftp_server.port) as proxy:
        known = tmp_path / "known_hosts"
        known.write_text(
            f"[127.0.0.1]:{proxy.port} {' '.join(sftp_server.host_public_key.split()[:2])}\n"
        )
        delivery = sftp_delivery(
            sftp_server,
            sftp_base,
            url=sftp_server.url(str(sftp_base), proxy.port),
            known_hosts=str(known),
            timeout_seconds=30,
        )
        with platform_on(tmp_path, delivery) as platform:
            platform.resources["export_files"] = ExportFiles(
                export_dir=str(platform.export_dir), lock_wait_seconds=1
            )
            platform.set_delivery()  # the definitions take the changed resources
            platform.cursor = None
            assert platform.run(
                "daily_export_job", "2026-03-05|testorg", "2026-03-10|testorg"
            ).success
            (request,) = tick(platform)
            results: list[dg.ExecuteInProcessResult] = []
            first = threading.Thread(target=lambda: results.append(platform.execute(request)))
            first.start()
            deadline = time.monotonic() + 30
            while proxy.connections == 0:  # the first run is connecting: it holds the org
                assert time.monotonic() < deadline and first.is_alive()
                time.sleep(0.05)
            (second,) = deliver(platform, [request], succeed=False)
            proxy.release()
            # Its sends take seconds; ending a run also waits for Dagster's log capture, up to
            # a minute when the disk is slow.
            first.join(180)
            assert not first.is_alive(), "the first run did not end within 3 minutes"
            lock = platform.export_dir / ".pairs/testorg/delivery.lock"
            assert not second.success
            assert step_failure(second) == (
                f"another delivery run for testorg is in progress ({lock}: its lock is held by "
                f"process {os.getpid()} run {results[0].run_id} and was not free within 1 "
                "seconds): this run sent nothing; the pairs stay pending and are requested again"
            )
            assert [r.success for r in results] == [True]
            assert proxy.connections == 1  # the second run never went to the server
            # Nothing lost, nothing mixed, no temporary file left.
            assert remote_files(sftp_base) == local_files(platform)
            assert mixed_pairs(sftp_base) == 0
            assert tick(platform) == []


def test_a_full_server_disk_fails_the_run_at_once_naming_org_period_and_path(sftp_platform):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", DAY).success
    with tmpfs(base / "testorg", "size=64k") as folder:
        with contextlib.suppress(OSError), open(folder / "filler", "wb") as handle:
            handle.write(b"x" * 100_000)  # the server's disk is full
        (request,) = tick(platform)
        (result,) = deliver(platform, [request], succeed=False)
    destination = platform.resources["delivery"].destination("testorg")
    temp = f"{folder}/.testorg_daily_2026-03-08_needs.csv.part"
    assert step_failure(result) == (
        "testorg: 0 pairs delivered, 1 not; they stay pending and are requested again.\n"
        f"testorg 2026-03-08 to {destination}: the server could not write {temp}: its disk is full "
        f"or its folder is read-only; make room or fix the server's storage under {base}"
    )
    logged = [e.user_message for e in platform.instance.all_logs(result.run_id)]
    assert not [m for m in logged if "retrying in" in m]  # permanent: not retried
    (failed,) = events(platform, "daily_delivery", DAY, observations=True)
    assert failed["status"] == "failed" and "its disk is full" in failed["reason"]


def test_a_pair_that_cannot_be_read_fails_naming_org_period_path_and_is_tried_again(
    sftp_platform,
):
    """A local read error may pass (a network volume, too many open files): the pair fails for
    this run, is never called refused, and is requested again."""
    platform, base = sftp_platform
    assert platform.run("daily_export_job", DAY).success
    needs = platform.export_dir / "testorg/daily/testorg_daily_2026-03-08_needs.csv"
    kept = needs.read_bytes()
    needs.unlink()
    needs.mkdir()  # a folder where File 2 was
    (request,) = tick(platform)
    (result,) = deliver(platform, [request], succeed=False)
    assert step_failure(result) == (
        "testorg: 0 pairs delivered, 1 not; they stay pending and are requested again.\n"
        f"testorg 2026-03-08: {needs}: the pair cannot be read, it is missing or not a regular "
        "file"
    )
    (failed,) = events(platform, "daily_delivery", DAY, observations=True)
    assert failed["status"] == "failed"
    assert remote_files(base) == {}
    needs.rmdir()
    needs.write_bytes(kept)
    platform.set_delivery(retry_minutes=0.001)
    time.sleep(0.1)
    deliver(platform, tick(platform))
    assert remote_files(base) == local_files(platform)
