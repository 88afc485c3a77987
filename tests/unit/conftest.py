"""Fixtures the unit tests of host scripts share: a fake systemd, a fake MetaServer and a
listener standing for a ReplicaServer's port (tests/unit/script_runner.py)."""

from __future__ import annotations

import pytest

from tests.unit.script_runner import FakeMeta, FakeSystemd, TcpListener


@pytest.fixture
def systemd(tmp_path):
    return FakeSystemd(tmp_path)


@pytest.fixture
def meta():
    server = FakeMeta()
    yield server
    server.close()


@pytest.fixture
def replica_port():
    listener = TcpListener()
    yield listener
    listener.close()
