"""Shared fixtures: a real OpenSSH server and a real PostgreSQL server on loopback."""

from __future__ import annotations

import pytest

from counts_tests.delivery_helpers import sftp_delivery
from counts_tests.platform import platform_on
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


@pytest.fixture
def sftp_platform(tmp_path, sftp_server, sftp_base):
    """The platform on temporary folders, delivering to a fresh base on the SFTP server."""
    with platform_on(tmp_path, sftp_delivery(sftp_server, sftp_base)) as platform:
        platform.cursor = None
        yield platform, sftp_base
