"""SFTP target (paramiko). Host keys come only from COUNTS_SFTP_KNOWN_HOSTS and an unknown or
changed key is refused; authentication is by key only; every network step has a timeout."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import paramiko

from counts_assets.core.delivery.targets import (
    DeliveryError,
    HalfRenamed,
    Receipt,
    contained_path,
    in_words,
    temporary_name,
)

# SFTP status "Failure" is all OpenSSH says for a read-only or full file system.
_FAILURE = "Failure"

# Errors a retry cannot fix: permissions, a missing base folder, a full or read-only disk.
_PERMANENT_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.ENOENT,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
}


@dataclass(frozen=True)
class SftpSettings:
    host: str
    port: int
    user: str
    base: str
    key_file: str
    known_hosts: str
    timeout: float = 20.0

    def endpoint(self) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}{self.base}"


def _known_host_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class SftpTarget:
    def __init__(self, settings: SftpSettings) -> None:
        self.settings = settings

    def describe(self) -> str:
        return self.settings.endpoint()

    @contextmanager
    def connect(self) -> Iterator[SftpConnection]:
        s = self.settings
        if not os.access(s.key_file, os.R_OK):
            raise DeliveryError(
                f"COUNTS_SFTP_KEY_FILE {s.key_file!r} does not exist or cannot be read",
                transient=False,
            )
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(s.known_hosts)
        except OSError as exc:
            raise DeliveryError(
                f"cannot read COUNTS_SFTP_KNOWN_HOSTS {s.known_hosts!r}: {exc}", transient=False
            ) from exc
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        # Opening the session (connect, authenticate, start SFTP) within twice the timeout,
        # all told: paramiko waits for the SFTP subsystem without any.
        cut = threading.Event()
        watchdog = threading.Timer(2 * s.timeout, lambda: (cut.set(), client.close()))
        watchdog.daemon = True
        try:
            watchdog.start()
            with _translated_errors(s):
                started = time.monotonic()
                try:
                    client.connect(
                        s.host,
                        port=s.port,
                        username=s.user,
                        key_filename=s.key_file,
                        look_for_keys=False,
                        allow_agent=False,
                        timeout=s.timeout,
                        banner_timeout=s.timeout,
                        auth_timeout=s.timeout,
                        channel_timeout=s.timeout,
                    )
                    sftp = client.open_sftp()
                    sftp.get_channel().settimeout(s.timeout)
                except Exception as exc:
                    # A server that accepts the connection and never answers leaves paramiko
                    # waiting out the timeout, then saying only that there is no session.
                    silent = time.monotonic() - started >= s.timeout
                    if cut.is_set() or (silent and not _handshake_done(client)):
                        waited = 2 * s.timeout if cut.is_set() else s.timeout
                        raise DeliveryError(
                            f"{s.host}:{s.port} accepted the connection but gave no SSH answer "
                            f"within {waited:g} second{'' if waited == 1 else 's'}: the "
                            "server is overloaded or hung, or that port is not its SSH service",
                            transient=True,
                        ) from exc
                    raise
            watchdog.cancel()
            yield SftpConnection(s, sftp)
        finally:
            watchdog.cancel()
            client.close()


def _handshake_done(client: paramiko.SSHClient) -> bool:
    transport = client.get_transport()
    try:
        return transport is not None and transport.get_remote_server_key() is not None
    except paramiko.SSHException:
        return False  # no key exchange finished


@contextmanager
def _translated_errors(s: SftpSettings) -> Iterator[None]:
    """paramiko's and the server's errors as DeliveryErrors that say what to fix."""
    try:
        yield
    except paramiko.BadHostKeyException as exc:
        raise DeliveryError(
            f"host key of {_known_host_name(s.host, s.port)} does not match the one in "
            f"COUNTS_SFTP_KNOWN_HOSTS ({s.known_hosts}): refusing to connect; check with the "
            "server's administrator before updating the known_hosts entry",
            transient=False,
        ) from exc
    except paramiko.AuthenticationException as exc:
        raise DeliveryError(
            f"authentication as {s.user!r} on {s.host}:{s.port} failed with the key in "
            f"COUNTS_SFTP_KEY_FILE ({s.key_file}): install its public key on the server",
            transient=False,
        ) from exc
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise DeliveryError(
                f"host key of {_known_host_name(s.host, s.port)} is unknown: add the "
                f"server's key as '{_known_host_name(s.host, s.port)} <type> <key>' to "
                f"COUNTS_SFTP_KNOWN_HOSTS ({s.known_hosts}); unknown keys are refused",
                transient=False,
            ) from exc
        raise DeliveryError(
            f"SSH failure talking to {s.host}:{s.port}: {in_words(exc)}", True
        ) from exc
    except (
        TimeoutError,
        ConnectionError,
        EOFError,
        paramiko.ssh_exception.NoValidConnectionsError,
    ) as exc:
        raise DeliveryError(f"{s.host}:{s.port} unreachable ({in_words(exc)})", True) from exc
    except OSError as exc:
        where = exc.filename or s.base
        if exc.errno in _PERMANENT_ERRNOS:
            raise DeliveryError(
                f"the server refused to write {where} ({in_words(exc)}): check that "
                f"{s.base} exists and that {s.user} may write under it",
                transient=False,
            ) from exc
        if _FAILURE in (str(exc), *map(str, exc.args)):
            raise DeliveryError(
                f"the server could not write {where}: its disk is full or its folder is "
                f"read-only; make room or fix the server's storage under {s.base}",
                transient=False,
            ) from exc
        raise DeliveryError(f"{s.host}:{s.port}: {where}: {in_words(exc)}", True) from exc


class SftpConnection:
    """One SFTP session; sends pairs one after the other."""

    def __init__(self, settings: SftpSettings, sftp: paramiko.SFTPClient) -> None:
        self.settings = settings
        self.sftp = sftp
        self._folders: set[str] = set()
        self._cut = False

    def _cut_off(self) -> None:
        """Closes a connection that stopped answering: every operation waiting on it fails at
        once, instead of each waiting out its own timeout (a silent server cost about eight
        timeouts per attempt)."""
        self._cut = True
        self.sftp.get_channel().get_transport().close()

    @contextmanager
    def _bounded(self, what: str, size: int = 0) -> Iterator[None]:
        """One pair's operations within twice the network timeout, all told, plus a second per
        64 KiB to move (a large pair over a slow but live link is not cut)."""
        limit = 2 * self.settings.timeout + size / 65536
        watchdog = threading.Timer(limit, self._cut_off)
        watchdog.daemon = True
        watchdog.start()
        try:
            yield
        except TimeoutError as exc:
            self._cut_off()
            raise self._silent(what, self.settings.timeout) from exc
        except Exception as exc:
            if self._cut:
                raise self._silent(what, limit) from exc
            raise
        finally:
            watchdog.cancel()

    def _silent(self, what: str, seconds: float) -> DeliveryError:
        s = self.settings
        return DeliveryError(
            f"{s.host}:{s.port} stopped answering while {what} (nothing within "
            f"{seconds:g} seconds): the connection was closed",
            transient=True,
        )

    def fetch(self, remote_dir: str, name: str) -> bytes | None:
        """The file as the destination holds it, or None when there is none (the audit)."""
        path = contained_path(self.settings.base, remote_dir, name)
        with self._bounded(f"reading {path}"), _translated_errors(self.settings):
            try:
                with self.sftp.open(path, "rb") as handle:
                    handle.prefetch()
                    return handle.read()
            except FileNotFoundError:
                return None

    def _folder(self, folder: str) -> None:
        if folder not in self._folders:
            _make_dirs(self.sftp, self.settings.base, folder)
            self._folders.add(folder)

    def _put_checked(self, path: str, content: bytes) -> None:
        """Writes the file, then reads it back through the same handle (one open).

        paramiko drops the server's answers to pipelined writes, so a write the server refused
        (a full disk) shows only as a file shorter than what was sent. The rest is then written
        once more, unpipelined on a new handle, so that the server says why."""
        try:
            with self.sftp.open(path, "w+b") as handle:
                handle.set_pipelined(True)
                handle.write(content)
                handle.seek(0)
                echoed = handle.read(len(content) + 1)
            if len(echoed) < len(content) and content.startswith(echoed):
                with self.sftp.open(path, "r+b") as handle:
                    handle.seek(len(echoed))
                    handle.write(content[len(echoed) :])
                    handle.seek(0)
                    echoed = handle.read(len(content) + 1)
        except OSError as exc:
            exc.filename = exc.filename or path
            raise
        if echoed != content:
            raise DeliveryError(f"{path} did not read back as written", transient=True)

    def send(self, remote_dir: str, files: Sequence[tuple[str, bytes]]) -> list[Receipt]:
        s = self.settings
        staged = []
        what = "sending " + " and ".join(name for name, _ in files)
        size = 2 * sum(len(content) for _, content in files)  # written, then read back
        with self._bounded(what, size), _translated_errors(s):
            try:
                for name, content in files:
                    final = contained_path(s.base, remote_dir, name)
                    folder = posixpath.dirname(final)
                    self._folder(folder)
                    temp = posixpath.join(folder, temporary_name(name))
                    staged.append((temp, final, content))
                    self._put_checked(temp, content)
            except BaseException:
                for temp, _, _ in staged:
                    _try_remove(self.sftp, temp)
                raise
            renamed: list[str] = []
            for temp, final, _ in staged:
                try:
                    self.sftp.posix_rename(temp, final)
                except Exception as exc:
                    for leftover, _, _ in staged:
                        _try_remove(self.sftp, leftover)
                    # Our own temporary file, written and read back a moment ago, is gone: not
                    # a missing base folder, and the next attempt writes it again.
                    gone = isinstance(exc, FileNotFoundError)
                    reason = (
                        f"{temp} was moved or removed on the server before it could be renamed"
                        if gone
                        else in_words(exc)
                    )
                    if not renamed:
                        if gone:
                            raise DeliveryError(f"{final} not delivered: {reason}", True) from exc
                        raise
                    # A dropped connection may pass; a refusal by the server will not.
                    transient = (
                        gone or not isinstance(exc, OSError) or str(exc) == "Socket is closed"
                    )
                    name = posixpath.basename(final)
                    raise HalfRenamed(renamed, name, reason, transient=transient) from exc
                renamed.append(posixpath.basename(final))
        return [
            Receipt(
                f"sftp://{s.user}@{s.host}:{s.port}{final}",
                len(content),
                hashlib.sha256(content).hexdigest(),
            )
            for _, final, content in staged
        ]


def _make_dirs(sftp: paramiko.SFTPClient, base: str, folder: str) -> None:
    """mkdir -p of the part of `folder` below `base` (the base itself must exist)."""
    relative = posixpath.relpath(folder, base)
    current = base
    for segment in [] if relative == "." else relative.split("/"):
        current = posixpath.join(current, segment)
        try:
            if stat.S_ISDIR(sftp.stat(current).st_mode):
                continue
        except FileNotFoundError:
            sftp.mkdir(current)
            continue
        raise DeliveryError(f"{current} exists on the server and is not a folder", False)


def _try_remove(sftp: paramiko.SFTPClient, path: str) -> None:
    # The connection may be gone: the next attempt removes it.
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        sftp.remove(path)
