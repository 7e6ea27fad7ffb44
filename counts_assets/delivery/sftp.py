"""SFTP target (paramiko). Host keys come only from COUNTS_SFTP_KNOWN_HOSTS and an unknown or
changed key is refused; authentication is by key only; every network step has a timeout."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import posixpath
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import paramiko

from counts_assets.delivery.targets import DeliveryError, Receipt, contained_path, temporary_name

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
    def _session(self) -> Iterator[paramiko.SFTPClient]:
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
            yield sftp
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
            raise DeliveryError(f"SSH failure talking to {s.host}:{s.port}: {exc}", True) from exc
        except (
            TimeoutError,
            ConnectionError,
            EOFError,
            paramiko.ssh_exception.NoValidConnectionsError,
        ) as exc:
            raise DeliveryError(f"{s.host}:{s.port} unreachable: {exc!r}", True) from exc
        except OSError as exc:
            if exc.errno in _PERMANENT_ERRNOS:
                raise DeliveryError(
                    f"the server refused a file operation ({exc}): check that {s.base} exists "
                    f"and that {s.user!r} may write under it",
                    transient=False,
                ) from exc
            raise DeliveryError(f"{s.host}:{s.port}: {exc!r}", transient=True) from exc
        finally:
            client.close()

    def deliver(self, remote_dir: str, name: str, content: bytes) -> Receipt:
        final = contained_path(self.settings.base, remote_dir, name)
        sha = hashlib.sha256(content).hexdigest()
        with self._session() as sftp:
            folder = posixpath.dirname(final)
            _make_dirs(sftp, self.settings.base, folder)
            _remove_stale_parts(sftp, folder, name)
            temp = posixpath.join(folder, temporary_name(name, sha))
            try:
                sftp.putfo(io.BytesIO(content), temp, file_size=len(content), confirm=True)
                with sftp.open(temp, "rb") as handle:
                    handle.prefetch()
                    echoed = hashlib.sha256(handle.read()).hexdigest()
                if echoed != sha:
                    raise DeliveryError(f"{temp} did not read back as written", transient=True)
                sftp.posix_rename(temp, final)
            except BaseException:
                _try_remove(sftp, temp)
                raise
        s = self.settings
        return Receipt(f"sftp://{s.user}@{s.host}:{s.port}{final}", len(content), sha)


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


def _remove_stale_parts(sftp: paramiko.SFTPClient, folder: str, name: str) -> None:
    """Our own temporary files for this name, left by an attempt that lost its connection."""
    prefix = f".{name}."
    for entry in sftp.listdir(folder):
        if entry.startswith(prefix) and entry.endswith(".part"):
            _try_remove(sftp, posixpath.join(folder, entry))


def _try_remove(sftp: paramiko.SFTPClient, path: str) -> None:
    # The connection may be gone: the next attempt removes it.
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        sftp.remove(path)
