"""Shared fixtures: a real OpenSSH server and a real PostgreSQL server on loopback."""

from __future__ import annotations

import pytest

from counts_tests.postgres_server import PostgresServer
from counts_tests.sftp_server import SftpServer


@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory):
    server = SftpServer.create(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sftp_base(sftp_server):
    """A fresh base folder on the server for one test."""
    base = sftp_server.root / f"case{len(list(sftp_server.root.iterdir()))}"
    base.mkdir()
    return base


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer.create()
    server.start()
    yield server
    server.stop()
