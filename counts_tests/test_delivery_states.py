"""Delivery that matches the recipient (§6): pending compares versions and destinations, periods
without a file are never pending, re-requests follow outcomes, every wait is bounded, a
permission revoked mid-run stops the run, re-delivery on request. Real instance, real sshd,
real processes; each case counts what the recipient holds."""

from __future__ import annotations

import datetime as dt
import errno
import os
import pathlib
import signal
import socket
import subprocess
import time

import dagster as dg
import pytest
import sqlalchemy as sa

from counts_assets.core.delivery.sftp import SftpConnection
from counts_assets.core.delivery.targets import DeliveryError
from counts_assets.core.pairs.store import PairStore
from counts_assets.defs.delivery import sending as delivery_sending
from counts_assets.defs.shared.resources import ExportFiles
from counts_tests.delivery_helpers import (
    DAY,
    add_record,
    deliver,
    events,
    ledger_entries_of,
    local_files,
    mixed_pairs,
    remote_files,
    sent_by,
    sftp_delivery,
    tick,
)
from counts_tests.golden_store import OTHER_ORG_YAML
from counts_tests.platform import platform_on
from counts_tests.tcp_proxy import SilencingProxy


def step_failure(result) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.step_failure_data.user_failure_data.description


def test_a_target_changed_while_a_run_sends_gets_every_pair(
    sftp_platform, sftp_server, monkeypatch
):
    """COUNTS_DELIVERY_URL changes while a run sends to the old destination: the entries that run
    writes afterwards name the old destination, and every pair still goes to the new one."""
    platform, base = sftp_platform
    assert platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-10|testorg").success
    (request,) = tick(platform)
    moved = base.parent / f"{base.name}-moved"
    moved.mkdir()
    real_send = SftpConnection.send
    changed: list[bool] = []

    def send_then_move(self, *args):
        receipts = real_send(self, *args)
        if not changed:  # after the first pair: the operator points delivery elsewhere
            changed.append(True)
            old = platform.resources["delivery"]
            platform.set_delivery(url=sftp_server.url(str(moved)))
            assert tick(platform) == []  # noticed; the org's run is still in flight
            platform.resources["delivery"] = old  # the running run keeps its settings
        return receipts

    monkeypatch.setattr(SftpConnection, "send", send_then_move)
    deliver(platform, [request])
    monkeypatch.undo()
    platform.set_delivery(url=sftp_server.url(str(moved)))
    while requests := tick(platform):
        deliver(platform, requests)
    assert remote_files(moved) == local_files(platform) and mixed_pairs(moved) == 0
    assert tick(platform) == []


def test_periods_without_a_file_never_hold_back_the_pairs_behind_them(tmp_path):
    """share_from moved 600 days earlier: 600 periods whose newest record says no file, and 3
    real pairs after them, batch 500. The first run sends the 3 pairs and records the 600 as
    nothing to deliver; nothing is requested afterwards."""
    with platform_on(tmp_path, repository_instance=True) as platform:  # batched records
        platform.set_delivery(batch_pairs=500)
        platform.cursor = None
        org_file = platform.orgs_dir / "otherorg.yaml"
        kept = org_file.read_text()
        org_file.write_text(kept.replace("share_from: 2026-03-01", "share_from: 2026-09-01"))
        # Recorded while share_from was 2026-09-01: no file for these 600 days.
        assert platform.run(
            "daily_export_job", "2025-01-01|otherorg", "2026-08-23|otherorg"
        ).success
        assert platform.run(
            "daily_export_job", "2026-09-01|otherorg", "2026-09-03|otherorg"
        ).success
        org_file.write_text(
            kept.replace("share_from: 2026-03-01", "share_from: 2025-01-01").replace(
                "signed_on: 2026-02-20", "signed_on: 2026-02-20\n  prior_years: true"
            )
        )
        (request,) = tick(platform)
        (result,) = deliver(platform, [request])
        assert sent_by(result) == [f"daily/2026-09-0{d}|otherorg" for d in (1, 2, 3)]
        recorded = [m.metadata["status"].value for m in ledger_entries_of(result)]
        assert recorded.count("no_file") == 600
        assert tick(platform) == []
        assert len(remote_files(tmp_path / "outbox")) == 6


def test_a_permanent_error_with_more_pairs_than_a_batch_is_requested_once_per_interval(
    tmp_path,
):
    with platform_on(tmp_path) as platform:
        platform.set_delivery(
            url=f"file://{tmp_path / 'no-such-outbox'}", batch_pairs=2, retry_minutes=0.05
        )
        platform.cursor = None
        assert platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-11|testorg").success
        requests = []
        started = time.monotonic()
        for _ in range(10):
            made = tick(platform)
            requests += made
            for result in deliver(platform, made, succeed=False):
                assert not result.success and "does not exist" in step_failure(result)
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        assert 1 <= len(requests) <= 1 + int(elapsed // 3)  # one per 3-second interval


def test_a_local_read_error_is_tried_again_never_refused(sftp_platform, monkeypatch):
    """EIO while the run reads a pair, every time it tries in that run: the pair fails for
    this run only, and goes out at the next request."""
    platform, base = sftp_platform
    assert platform.run("daily_export_job", DAY).success
    real_read = pathlib.Path.read_bytes
    failing = platform.export_dir / "testorg/daily/testorg_daily_2026-03-08_needs.csv"
    tries: list[int] = []

    def eio_on_that_file(self):
        if self == failing:
            tries.append(1)
            raise OSError(errno.EIO, "Input/output error", str(self))
        return real_read(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", eio_on_that_file)
    (request,) = tick(platform)
    (result,) = deliver(platform, [request], succeed=False)
    monkeypatch.undo()
    assert len(tries) == delivery_sending.LOCAL_READS
    assert "the file system failed (Input/output error)" in step_failure(result)
    assert [e["status"] for e in events(platform, "daily_delivery", DAY, True)] == ["failed"]
    platform.set_delivery(retry_minutes=0.001)
    time.sleep(0.1)
    deliver(platform, tick(platform))
    assert remote_files(base) == local_files(platform)


def test_a_pair_locked_for_ever_fails_alone_naming_its_holder(tmp_path, sftp_server, sftp_base):
    with platform_on(tmp_path, sftp_delivery(sftp_server, sftp_base)) as platform:
        platform.resources["export_files"] = ExportFiles(
            export_dir=str(platform.export_dir), lock_wait_seconds=1
        )
        platform.set_delivery()  # the definitions take the changed resources
        platform.cursor = None
        assert platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-09|otherorg").success
        lock = platform.export_dir / ".pairs/testorg/daily/2026-03-08.lock"
        holder = subprocess.Popen(["flock", str(lock), "sleep", "600"], start_new_session=True)
        try:
            time.sleep(0.3)
            requests = tick(platform)
            results = {
                r.tags["counts/org"]: d
                for r, d in zip(requests, deliver(platform, requests, succeed=False), strict=True)
            }
            assert results["otherorg"].success
            said = step_failure(results["testorg"])
            assert f"testorg 2026-03-08: {lock}: its lock is held by process" in said
            assert "was not free within 1 seconds" in said
            assert sent_by(results["testorg"], platform) == [
                "daily/2026-03-07|testorg",
                "daily/2026-03-09|testorg",
            ]
        finally:
            os.killpg(holder.pid, signal.SIGKILL)  # flock and the sleep that holds the lock
            holder.wait()
        time.sleep(0.5)
        platform.set_delivery(retry_minutes=0.001)
        deliver(platform, tick(platform))
        assert remote_files(sftp_base) == local_files(platform)


def test_a_server_that_never_answers_costs_one_timeout_per_attempt(
    tmp_path, sftp_server, sftp_base
):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {' '.join(sftp_server.host_public_key.split()[:2])}\n")
    delivery = sftp_delivery(
        sftp_server,
        sftp_base,
        url=sftp_server.url(str(sftp_base), port),
        known_hosts=str(known),
        timeout_seconds=1,
        attempts=2,
    )
    with platform_on(tmp_path, delivery) as platform:
        platform.cursor = None
        assert platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-09|testorg").success
        (request,) = tick(platform)
        started = time.monotonic()
        (result,) = deliver(platform, [request], succeed=False)
        elapsed = time.monotonic() - started
        assert "gave no SSH answer within 1 second" in step_failure(result)
        assert elapsed < 2 * (1 + 0.1) + 3  # two attempts, each one timeout, plus the run
        silent.close()
        platform.set_delivery(
            url=sftp_server.url(str(sftp_base)), known_hosts=str(sftp_server.known_hosts)
        )
        deliver(platform, tick(platform))
        assert remote_files(sftp_base) == local_files(platform)


def test_a_server_that_stops_answering_mid_batch_fails_the_run_within_its_timeouts(
    tmp_path, sftp_server, sftp_base
):
    with SilencingProxy(sftp_server.port) as proxy:
        known = tmp_path / "known_hosts"
        known.write_text(
            f"[127.0.0.1]:{proxy.port} {' '.join(sftp_server.host_public_key.split()[:2])}\n"
        )
        delivery = sftp_delivery(
            sftp_server,
            sftp_base,
            url=sftp_server.url(str(sftp_base), proxy.port),
            known_hosts=str(known),
            timeout_seconds=1,
            attempts=2,
        )
        with platform_on(tmp_path, delivery) as platform:
            platform.cursor = None
            assert platform.run(
                "daily_export_job", "2026-03-05|testorg", "2026-03-10|testorg"
            ).success
            real_send = SftpConnection.send
            sent: list[int] = []

            def silence_after_two(self, *args):
                if len(sent) == 2:
                    proxy.silence()  # the server stops answering, connections stay open
                sent.append(1)
                return real_send(self, *args)

            (request,) = tick(platform)
            started = time.monotonic()
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(SftpConnection, "send", silence_after_two)
                (result,) = deliver(platform, [request], succeed=False)
            elapsed = time.monotonic() - started
            assert "stopped answering" in step_failure(result) or "no SSH answer" in (
                step_failure(result)
            )
            # Two attempts of at most two timeouts each, the back-off and the run itself.
            assert elapsed < 2 * 2 * 1 + 6, elapsed
            assert len(sent_by(result, platform)) == 2
            proxy.resume()
            platform.set_delivery(retry_minutes=0.001)
            time.sleep(0.1)
            deliver(platform, tick(platform))
            assert remote_files(sftp_base) == local_files(platform)
            assert mixed_pairs(sftp_base) == 0


def test_entries_are_written_and_locks_let_go_before_a_wait_between_attempts(
    sftp_platform, monkeypatch
):
    """A run writes its ledger entries a batch at a time, while it holds the batch's locks. When
    the target fails and the run waits before trying again, the pairs sent so far are already
    recorded and none of their locks is held: an export of those periods is not kept waiting
    through the back-off."""
    platform, base = sftp_platform
    assert platform.run("daily_export_job", "2026-03-05|otherorg", "2026-03-10|otherorg").success
    store = PairStore(platform.export_dir, lock_wait=0)
    real_send = SftpConnection.send
    calls: list[int] = []
    seen_at_retry: dict = {}

    def fail_the_third_once(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise DeliveryError("the target dropped the connection", transient=True)
        if len(calls) == 4:  # the third pair, tried again after the wait
            seen_at_retry["recorded"] = [
                [e["status"] for e in events(platform, "daily_delivery", f"{day}|otherorg")]
                for day in ("2026-03-05", "2026-03-06")
            ]
            for day in ("2026-03-05", "2026-03-06"):  # (03-07's is taken again for the retry)
                with store.locked("otherorg", day, wait=False):
                    pass  # free: BlockingIOError if the run still held it
        return real_send(self, *args)

    monkeypatch.setattr(SftpConnection, "send", fail_the_third_once)
    (request,) = tick(platform)
    (result,) = deliver(platform, [request])
    assert seen_at_retry["recorded"] == [["delivered"], ["delivered"]]
    assert len(sent_by(result)) == 6
    assert remote_files(base) == local_files(platform) and mixed_pairs(base) == 0
    assert tick(platform) == []


def test_over_a_slow_link_a_batch_lets_go_of_its_locks_within_seconds(sftp_platform, monkeypatch):
    """A batch holds its locks for LEDGER_BATCH_SECONDS at most, however few pairs it has sent:
    over a slow link, an export of a period sent a while ago does not wait for the whole
    batch."""
    platform, base = sftp_platform
    assert platform.run("daily_export_job", "2026-03-05|otherorg", "2026-03-10|otherorg").success
    store = PairStore(platform.export_dir, lock_wait=0)
    real_send = SftpConnection.send
    calls: list[int] = []
    seen: dict = {}

    def slow_send(self, *args):
        calls.append(1)
        if len(calls) == 6:  # 03-10, sent more than LEDGER_BATCH_SECONDS after 03-05
            with store.locked("otherorg", "2026-03-05", wait=False):
                seen["first_pair_free"] = True
            seen["recorded"] = events(platform, "daily_delivery", "2026-03-05|otherorg")
        time.sleep(delivery_sending.LEDGER_BATCH_SECONDS / 4)
        return real_send(self, *args)

    monkeypatch.setattr(SftpConnection, "send", slow_send)
    (request,) = tick(platform)
    (result,) = deliver(platform, [request])
    assert seen["first_pair_free"] and [e["status"] for e in seen["recorded"]] == ["delivered"]
    assert len(sent_by(result)) == 6
    assert remote_files(base) == local_files(platform) and mixed_pairs(base) == 0


def test_a_permission_revoked_while_a_run_sends_stops_it(sftp_platform, monkeypatch):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", "2026-03-05|otherorg", "2026-03-10|otherorg").success
    org_file = platform.orgs_dir / "otherorg.yaml"
    today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=-10))).date()
    real_send = SftpConnection.send
    sent: list[int] = []

    def revoke_after_two(self, *args):
        receipts = real_send(self, *args)
        sent.append(1)
        if len(sent) == 2:  # the centre withdraws its permission, effective today
            org_file.write_text(OTHER_ORG_YAML + f"  revoked_on: {today}\n")
        return receipts

    monkeypatch.setattr(SftpConnection, "send", revoke_after_two)
    (request,) = tick(platform)
    (result,) = deliver(platform, [request])
    assert len(sent_by(result)) == 2 and len(sent) == 2
    assert len(remote_files(base)) == 4  # nothing after the revocation
    waiting = events(platform, "daily_delivery", "2026-03-10|otherorg", observations=True)
    assert waiting[0]["status"] == "waiting" and "revoked" in waiting[0]["reason"]


def test_an_operator_sends_chosen_periods_again_with_a_reason(sftp_platform):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-10|testorg").success
    deliver(platform, tick(platform))
    for path in base.rglob("*.csv"):
        path.unlink()  # 211 Counts lost them
    result = platform.execute(
        dg.RunRequest(
            job_name="redelivery_job",
            run_config={
                "ops": {
                    "redeliver_pairs": {
                        "config": {
                            "org_id": "testorg",
                            "first": "2026-03-08",
                            "last": "2026-03-09",
                            "reason": "211 Counts lost these files (ticket 4711)",
                        }
                    }
                }
            },
        )
    )
    assert result.success
    assert sent_by(result) == ["daily/2026-03-08|testorg", "daily/2026-03-09|testorg"]
    assert sorted(remote_files(base)) == [
        f"testorg/testorg_daily_2026-03-0{d}_{k}.csv" for d in (8, 9) for k in ("needs", "summary")
    ]
    (entry, *_) = events(platform, "daily_delivery", DAY)
    assert entry["status"] == "redelivered"
    assert entry["reason"] == "211 Counts lost these files (ticket 4711)"
    assert tick(platform) == []  # nothing else changed


def test_a_refusal_made_again_under_a_new_org_file_settles(sftp_platform):
    """Refused, then the org file changes (the refusal is void: tried again), then refused
    again: it waits for a new publish, and no run is requested for it again and again."""
    platform, base = sftp_platform
    assert platform.run("daily_export_job", DAY).success
    path = platform.export_dir / "testorg/daily/testorg_daily_2026-03-08_summary.csv"
    path.write_bytes(path.read_bytes().replace(b",v2", b",v9"))
    (request,) = tick(platform)
    deliver(platform, [request], succeed=False)
    org_file = platform.orgs_dir / "testorg.yaml"
    org_file.write_text(org_file.read_text().replace("name: ", "name: Renamed ", 1))
    (request,) = tick(platform)  # the org file changed: tried once more
    deliver(platform, [request], succeed=False)
    platform.set_delivery(retry_minutes=0.001)
    for _ in range(3):
        time.sleep(0.1)
        assert tick(platform) == []
    assert remote_files(base) == {}


def test_a_destination_changed_and_changed_back_leaves_nothing_to_do(sftp_platform, sftp_server):
    platform, base = sftp_platform
    assert platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-09|testorg").success
    deliver(platform, tick(platform))
    right = platform.resources["delivery"].url
    platform.set_delivery(url=sftp_server.url(str(base) + "-typo"), retry_minutes=0.001)
    for result in deliver(platform, tick(platform), succeed=False):
        assert not result.success  # no such base folder
    platform.set_delivery(url=right)
    (request,) = tick(platform)  # back: every pair is looked at once
    (result,) = deliver(platform, [request])
    assert sent_by(result) == []  # all already there
    for _ in range(3):
        time.sleep(0.1)
        assert tick(platform) == []
    assert remote_files(base) == local_files(platform)


def test_a_diverged_pair_stays_pending_when_the_next_audit_does_not_list_it(sftp_platform):
    platform, base = sftp_platform
    platform.set_delivery(audit_days=400, audit_repair=True)
    assert platform.run("daily_export_job", DAY).success
    deliver(platform, tick(platform))
    for path in (base / "testorg").glob("*.csv"):
        path.unlink()  # the recipient lost the pair
    assert platform.run("delivery_audit_job", None).success  # found missing, marked diverged
    platform.set_delivery(audit_days=0, audit_repair=True)
    assert platform.run("delivery_audit_job", None).success  # lists nothing any more
    deliver(platform, tick(platform))
    assert remote_files(base) == local_files(platform)


def test_a_pair_cut_between_its_renames_is_sent_again_even_as_its_earlier_bytes(
    sftp_platform, monkeypatch
):
    """V1 delivered; V2's File 2 renamed, then the connection cut; the period is then made
    again with V1's bytes. The recipient holds V2's File 2 beside V1's File 1, so the pair is
    sent again, and ends whole."""
    import paramiko

    platform, base = sftp_platform
    assert platform.run("daily_export_job", DAY).success
    deliver(platform, tick(platform))
    add_record(platform, "2201")
    assert platform.run("daily_export_job", DAY).success
    real_rename = paramiko.SFTPClient.posix_rename

    def cut_after_first(self, old, new):
        real_rename(self, old, new)
        self.get_channel().get_transport().close()

    monkeypatch.setattr(paramiko.SFTPClient, "posix_rename", cut_after_first)
    platform.set_delivery(attempts=1, retry_minutes=0.001)
    deliver(platform, tick(platform), succeed=False)
    monkeypatch.undo()
    assert mixed_pairs(base) == 1
    with sa.create_engine(platform.source_url).begin() as connection:  # V1's bytes again
        connection.execute(sa.text("DELETE FROM contact_records WHERE call_report_num = '2201'"))
    assert platform.run("daily_export_job", DAY).success
    time.sleep(0.1)
    deliver(platform, tick(platform))
    assert mixed_pairs(base) == 0 and remote_files(base) == local_files(platform)
