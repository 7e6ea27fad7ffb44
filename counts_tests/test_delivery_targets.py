"""Delivery targets against a real OpenSSH server on loopback, and the local outbox."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import socket
import threading
import time

import paramiko
import pytest
import tenacity

from counts_assets.core.delivery.retry import RetryPolicy, Session, with_retries
from counts_assets.core.delivery.targets import DeliveryError, OutboxTarget, contained_path
from counts_assets.defs.delivery.resources import DeliveryConfigError, target_from_url
from counts_tests.mounts import tmpfs
from counts_tests.sftp_server import keygen
from counts_tests.tcp_proxy import ResettingProxy

CONTENT = b"Call Date,Total Calls,Total Services,Report Version\n2026-10-15,3,1,v2\n"
NAME = "gateway211_daily_2026-10-15_summary.csv"


def send_one(target, remote_dir, name, content):
    """One file over its own connection, as a delivery run sends a pair's files."""
    with target.connect() as connection:
        return connection.send(remote_dir, [(name, content)])[0]


def send_with_retries(target, remote_dir, name, content, policy, log, sleep=time.sleep):
    """One file sent with the run's retries, over one session."""
    with Session(target) as session:
        return with_retries(
            session, lambda c: c.send(remote_dir, [(name, content)])[0], policy, log, sleep
        )


def sftp_target(server, base, known_hosts=None, key=None, port=None, timeout=5.0):
    return target_from_url(
        server.url(str(base), port),
        str(key or server.client_key),
        str(known_hosts or server.known_hosts),
        timeout,
    )


def every_file(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_sftp_delivery_is_byte_identical_with_no_temporary_file_left(sftp_server, sftp_base):
    receipt = send_one(sftp_target(sftp_server, sftp_base), "gateway211", NAME, CONTENT)
    assert (sftp_base / "gateway211" / NAME).read_bytes() == CONTENT
    assert every_file(sftp_base) == [f"gateway211/{NAME}"]
    assert receipt.sha256 == hashlib.sha256(CONTENT).hexdigest() and receipt.size == len(CONTENT)
    assert receipt.location.endswith(f"{sftp_base}/gateway211/{NAME}")


def test_new_content_replaces_the_remote_file(sftp_server, sftp_base):
    target = sftp_target(sftp_server, sftp_base)
    send_one(target, "gateway211", NAME, CONTENT)
    send_one(target, "gateway211", NAME, CONTENT + b"2026-10-15,1,0,v3\n")
    assert (sftp_base / "gateway211" / NAME).read_bytes().endswith(b"v3\n")
    assert every_file(sftp_base) == [f"gateway211/{NAME}"]


def _refused(target, sleeps, content=CONTENT):
    with pytest.raises(DeliveryError) as error:
        send_with_retries(
            target,
            "gateway211",
            NAME,
            content,
            RetryPolicy(5, 0.01, 0.01),
            log=lambda m: None,
            sleep=sleeps.append,
        )
    assert error.value.transient is False
    assert sleeps == []  # not retried
    return str(error.value)


def test_unknown_host_key_is_refused(sftp_server, sftp_base, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    message = _refused(sftp_target(sftp_server, sftp_base, known_hosts=empty), [])
    assert f"host key of [127.0.0.1]:{sftp_server.port} is unknown" in message
    assert every_file(sftp_base) == []


def test_changed_host_key_is_refused(sftp_server, sftp_base, tmp_path):
    impostor = keygen(tmp_path / "impostor", "impostor")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sftp_server.port} {' '.join(impostor.split()[:2])}\n")
    message = _refused(sftp_target(sftp_server, sftp_base, known_hosts=known), [])
    assert "does not match the one in COUNTS_SFTP_KNOWN_HOSTS" in message
    assert every_file(sftp_base) == []


def test_host_key_for_port_22_form_does_not_match_another_port(sftp_server, sftp_base, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("127.0.0.1 " + " ".join(sftp_server.host_public_key.split()[:2]) + "\n")
    assert "is unknown" in _refused(sftp_target(sftp_server, sftp_base, known_hosts=known), [])


def test_wrong_client_key_is_refused(sftp_server, sftp_base, tmp_path):
    keygen(tmp_path / "stranger", "stranger")
    message = _refused(sftp_target(sftp_server, sftp_base, key=tmp_path / "stranger"), [])
    assert "authentication as" in message and "COUNTS_SFTP_KEY_FILE" in message
    assert every_file(sftp_base) == []


def test_missing_base_folder_is_a_permanent_error(sftp_server, sftp_base):
    message = _refused(sftp_target(sftp_server, sftp_base / "missing"), [])
    assert "check that" in message and "exists" in message


@pytest.mark.parametrize("remote_dir", ["../escape", "/etc", "a/../../b", "a/./b", "", "a//b"])
def test_hostile_remote_dir_cannot_leave_the_base(sftp_server, sftp_base, remote_dir):
    outside = sftp_base.parent / "escape"
    with pytest.raises(DeliveryError) as error:
        send_one(sftp_target(sftp_server, sftp_base), remote_dir, NAME, CONTENT)
    message = str(error.value)
    assert "would leave the delivery base" in message
    assert not outside.exists() and every_file(sftp_base) == []


def test_hostile_file_name_is_refused():
    with pytest.raises(DeliveryError):
        contained_path("/base", "org", "../../etc/passwd")


def test_target_down_then_up_delivers_once(sftp_server, sftp_base):
    sftp_server.stop()
    logged: list[str] = []
    threading.Timer(1.5, sftp_server.start).start()
    try:
        receipt = send_with_retries(
            sftp_target(sftp_server, sftp_base, timeout=2),
            "gateway211",
            NAME,
            CONTENT,
            RetryPolicy(attempts=10, first_delay=0.3, max_delay=1.0),
            log=logged.append,
        )
    finally:
        deadline = time.monotonic() + 10
        while sftp_server.process is None and time.monotonic() < deadline:
            time.sleep(0.1)
    assert logged and "unreachable" in logged[0]
    assert receipt.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert every_file(sftp_base) == [f"gateway211/{NAME}"]


def test_connection_cut_mid_upload_leaves_nothing_half_written(sftp_server, sftp_base, tmp_path):
    big = os.urandom(3 * 1024 * 1024)
    final = sftp_base / "gateway211" / NAME
    with ResettingProxy(sftp_server.port, cut_after_bytes=400_000) as proxy:
        known = tmp_path / "known_hosts"
        known.write_text(
            f"[127.0.0.1]:{proxy.port} {' '.join(sftp_server.host_public_key.split()[:2])}\n"
        )
        seen_between_attempts: list[list[str]] = []

        def pause(seconds: float) -> None:
            seen_between_attempts.append(every_file(sftp_base))
            assert not final.exists()

        receipt = send_with_retries(
            sftp_target(sftp_server, sftp_base, known_hosts=known, port=proxy.port),
            "gateway211",
            NAME,
            big,
            RetryPolicy(attempts=4, first_delay=0.1),
            log=print,
            sleep=pause,
        )
    assert proxy.cuts == 1 and proxy.connections >= 2
    # Between the attempts: the cut attempt's partial temporary file, never the final name.
    assert [f.endswith(".part") for f in seen_between_attempts[0]] == [True]
    assert final.read_bytes() == big and receipt.sha256 == hashlib.sha256(big).hexdigest()
    assert every_file(sftp_base) == [f"gateway211/{NAME}"]


def test_outbox_delivery(tmp_path):
    (tmp_path / "outbox").mkdir()
    target = OutboxTarget(tmp_path / "outbox")
    receipt = send_one(target, "gateway211", NAME, CONTENT)
    assert (tmp_path / "outbox" / "gateway211" / NAME).read_bytes() == CONTENT
    assert receipt.location == f"file://{tmp_path}/outbox/gateway211/{NAME}"
    with pytest.raises(DeliveryError):
        send_one(target, "../x", NAME, CONTENT)
    assert every_file(tmp_path) == [f"outbox/gateway211/{NAME}"]


@pytest.mark.parametrize(
    ("url", "key", "known", "message"),
    [
        ("file://relative/path", None, None, "file:///absolute/path"),
        ("ftp://host/x", None, None, "scheme must be file or sftp"),
        ("sftp://host/x", "k", "h", "sftp://user@host:port/base/dir"),
        ("sftp://u@host:2222/x", None, "h", "COUNTS_SFTP_KEY_FILE"),
        ("sftp://u@host:2222/x", "k", None, "COUNTS_SFTP_KNOWN_HOSTS"),
    ],
)
def test_delivery_url_errors(url, key, known, message):
    with pytest.raises(DeliveryConfigError, match=message):
        target_from_url(url, key, known, 5)


def test_backoff_is_exponential_with_full_jitter(monkeypatch):
    wait = RetryPolicy(attempts=6, first_delay=2, max_delay=20).wait()

    def before_attempt(n, draw):
        monkeypatch.setattr(random, "uniform", draw)
        state = tenacity.RetryCallState(None, None, (), {})
        state.attempt_number = n
        return wait(state)

    assert [before_attempt(n, lambda low, high: high) for n in range(1, 7)] == [2, 4, 8, 16, 20, 20]
    assert before_attempt(4, lambda low, high: low) == 0


@pytest.fixture
def read_only_folder(sftp_base):
    """A read-only file system inside the base."""
    with tmpfs(sftp_base / "gateway211", "size=1m,ro") as folder:
        yield folder


def test_read_only_server_folder_is_a_permanent_error_naming_the_path(
    sftp_server, sftp_base, read_only_folder
):
    sleeps: list[float] = []
    message = _refused(sftp_target(sftp_server, sftp_base), sleeps)
    assert f"{read_only_folder}/.{NAME}.part" in message
    assert "read-only" in message
    assert every_file(sftp_base) == []


def test_a_missing_outbox_is_an_error_not_a_new_folder(tmp_path):
    with pytest.raises(DeliveryError) as error:
        send_one(OutboxTarget(tmp_path / "typo" / "outbox"), "gateway211", NAME, CONTENT)
    assert error.value.transient is False and "does not exist" in str(error.value)
    assert every_file(tmp_path) == [] and not (tmp_path / "typo").exists()


def test_a_link_out_of_the_outbox_is_refused(tmp_path):
    (tmp_path / "outbox").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "outbox" / "gateway211").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DeliveryError, match="a link leads out of the outbox"):
        send_one(OutboxTarget(tmp_path / "outbox"), "gateway211", NAME, CONTENT)
    assert every_file(tmp_path / "elsewhere") == []


def test_a_refused_second_rename_says_the_recipient_holds_a_mixed_pair(tmp_path):
    outbox = tmp_path / "outbox"
    (outbox / "gateway211" / "summary.csv").mkdir(parents=True)  # File 1's name is taken
    target = OutboxTarget(outbox)
    with pytest.raises(DeliveryError) as error, target.connect() as connection:
        connection.send("gateway211", [("needs.csv", b"new needs\n"), ("summary.csv", b"s\n")])
    assert "holds the new needs file beside the previous summary file" in str(error.value)
    assert error.value.transient is False
    assert every_file(outbox) == ["gateway211/needs.csv"]  # no temporary file left


def test_a_server_that_never_answers_is_named_with_the_time_waited_and_retried(
    sftp_server, tmp_path
):
    """A port that accepts connections (the kernel does it) and never says a word."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        known = tmp_path / "known_hosts"
        known.write_text(
            f"[127.0.0.1]:{port} {' '.join(sftp_server.host_public_key.split()[:2])}\n"
        )
        logged: list[str] = []
        with pytest.raises(DeliveryError) as error:
            send_with_retries(
                sftp_target(sftp_server, "/incoming", known_hosts=known, port=port, timeout=1),
                "gateway211",
                NAME,
                CONTENT,
                RetryPolicy(attempts=2, first_delay=0.01, max_delay=0.01),
                log=logged.append,
            )
    said = f"127.0.0.1:{port} accepted the connection but gave no SSH answer within 1 second"
    assert error.value.transient and said in str(error.value)
    assert len(logged) == 1 and said in logged[0]  # retried: it may answer later


@pytest.fixture
def tiny_folder(sftp_base):
    """A 64 KiB file system inside the base: the server's disk."""
    with tmpfs(sftp_base / "gateway211", "size=64k") as folder:
        yield folder


@pytest.mark.parametrize("already_full", [False, True], ids=["fills up", "already full"])
def test_a_full_server_disk_is_a_permanent_error_naming_the_path(
    sftp_server, sftp_base, tiny_folder, already_full
):
    """OpenSSH answers a write on a full disk with a bare "Failure", and paramiko drops the
    answers to pipelined writes: what shows is a file shorter than what was sent."""
    content = os.urandom(200_000)  # more than the disk holds
    if already_full:
        with contextlib.suppress(OSError), open(tiny_folder / "filler", "wb") as handle:
            handle.write(b"x" * 200_000)
        content = CONTENT
    message = _refused(sftp_target(sftp_server, sftp_base), [], content)
    assert f"the server could not write {tiny_folder}/.{NAME}.part: its disk is full" in message
    assert not [f for f in every_file(sftp_base) if f.endswith(".part")]
    assert not (tiny_folder / NAME).exists()


def test_a_temporary_file_gone_before_its_rename_is_retried_not_called_a_missing_base(
    sftp_server, sftp_base, monkeypatch
):
    """Something on the server takes the temporary file between its read-back and its rename
    (here: removed from the server's disk at that moment); the real rename then fails."""
    real_rename = paramiko.SFTPClient.posix_rename
    taken: list[str] = []

    def taken_first(self, old, new):
        if not taken:
            os.remove(old)  # the server's folder is on this machine
            taken.append(old)
        return real_rename(self, old, new)

    monkeypatch.setattr(paramiko.SFTPClient, "posix_rename", taken_first)
    logged: list[str] = []
    receipt = send_with_retries(
        sftp_target(sftp_server, sftp_base),
        "gateway211",
        NAME,
        CONTENT,
        RetryPolicy(attempts=3, first_delay=0.01, max_delay=0.01),
        log=logged.append,
    )
    (said,) = logged
    assert f"{taken[0]} was moved or removed on the server before it could be renamed" in said
    assert "check that" not in said  # not a missing base folder
    assert every_file(sftp_base) == [f"gateway211/{NAME}"]
    assert receipt.sha256 == hashlib.sha256(CONTENT).hexdigest()
