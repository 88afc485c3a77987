"""Fixtures shared by every test suite."""

from __future__ import annotations

import pytest

from tests.support.ssh_server import SshServer, sshd_unavailable_reason
from tests.support.zookeeper_server import ZOOKEEPER_HOME, ZooKeeperServer


@pytest.fixture(scope="session")
def zookeeper_server(tmp_path_factory):
    """One real ZooKeeper (Debian package) on 127.0.0.1 for the whole session.

    Tests that share it must use their own cluster root path.
    """
    if not ZooKeeperServer.available():
        pytest.skip(f"needs a real ZooKeeper: {ZOOKEEPER_HOME}/bin/zkServer.sh is absent "
                    "(apt-get install zookeeper)")
    with ZooKeeperServer(tmp_path_factory.mktemp("zookeeper")) as server:
        yield server


@pytest.fixture
def zookeeper_client(zookeeper_server):
    """A kazoo client of the test itself, to arrange and inspect nodes."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts=zookeeper_server.hosts)
    client.start(timeout=30)
    yield client
    client.stop()
    client.close()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on 127.0.0.1 and 127.0.0.2 that lets the current user in with `sshd.client_key_path`."""
    reason = sshd_unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = SshServer(tmp_path_factory.mktemp("sshd")).prepare()
    try:
        server.start()
    except (RuntimeError, OSError) as error:
        pytest.skip(f"sshd could not be started: {error}")
    yield server
    server.stop()
