"""A real OpenSSH server on loopback for tests: private config, its own ed25519 host key,
key-only auth, internal-sftp. Started and stopped by the tests (stopped by process group, so
per-connection children go too)."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def keygen(path: Path, comment: str) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return Path(f"{path}.pub").read_text().strip()


@dataclass
class SftpServer:
    root: Path
    port: int
    user: str
    host_public_key: str
    client_key: Path
    known_hosts: Path
    process: subprocess.Popen | None = None

    @classmethod
    def create(cls, workdir: Path) -> SftpServer:
        workdir.mkdir(parents=True, exist_ok=True)
        host_public = keygen(workdir / "host_key", "test-host")
        client_public = keygen(workdir / "client_key", "counts-test-client")
        (workdir / "authorized_keys").write_text(client_public + "\n")
        port = free_port()
        known_hosts = workdir / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {' '.join(host_public.split()[:2])}\n")
        (workdir / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {workdir / 'host_key'}",
                    f"PidFile {workdir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        root = workdir / "sftp_root"
        root.mkdir()
        return cls(root, port, getpass.getuser(), host_public, workdir / "client_key", known_hosts)

    @property
    def workdir(self) -> Path:
        return self.client_key.parent

    def start(self) -> None:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "sshd.log", "ab")  # noqa: SIM115 - kept for the process
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.workdir / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"sshd exited: {(self.workdir / 'sshd.log').read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening within 10 s")

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=10)
        self.process = None

    def url(self, base: str | None = None, port: int | None = None) -> str:
        return f"sftp://{self.user}@127.0.0.1:{port or self.port}{base or self.root}"
