"""A real PostgreSQL server from Debian's `postgresql` package, in a temporary folder, on a
free loopback port. PostgreSQL refuses to run as root, so as root it runs as the package's own
`postgres` user; it is stopped by the pid in its `postmaster.pid`."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from counts_tests.sftp_server import free_port

OWNER = "postgres"


def _bin(tool: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: scripts/test.sh installs Debian's postgresql package"
        )
    return str(found[-1])


def _as_owner(args: list[str]) -> list[str]:
    return ["runuser", "-u", OWNER, "--", *args] if os.geteuid() == 0 else args


@dataclass
class PostgresServer:
    folder: Path
    port: int

    @classmethod
    def create(cls) -> PostgresServer:
        # Not under pytest's tmp folder: its parents are private to root.
        folder = Path(tempfile.mkdtemp(prefix="counts-postgres-"))
        if os.geteuid() == 0:
            account = pwd.getpwnam(OWNER)
            os.chown(folder, account.pw_uid, account.pw_gid)
        subprocess.run(
            _as_owner([_bin("initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", OWNER]),
            check=True,
            capture_output=True,
        )
        return cls(folder, free_port())

    def start(self) -> None:
        # fsync off: a test server's data is thrown away, and commits are what Dagster does most.
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        subprocess.run(
            _as_owner(
                [
                    _bin("pg_ctl"),
                    "-D",
                    str(self.folder / "data"),
                    "-o",
                    options,
                    "-l",
                    str(self.folder / "server.log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{OWNER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        pid = int((self.folder / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGINT)  # fast shutdown
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        shutil.rmtree(self.folder, ignore_errors=True)
