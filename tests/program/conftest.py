"""Running the whole program under mocks, with a stack config built per test."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tests.program.fake_aws import FakeCloud, PreviewCloud, RecordingMonitor
from tests.support.package_builder import build_package
from tests.support.pulumi_program import run_program, stack_config

PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-test-only\n-----END OPENSSH PRIVATE KEY-----\n"


@pytest.fixture(scope="session")
def package(tmp_path_factory) -> Path:
    return build_package(tmp_path_factory.mktemp("package"), server="placeholder")


@pytest.fixture(scope="session")
def other_package(tmp_path_factory) -> Path:
    return build_package(tmp_path_factory.mktemp("package2"), version="2.5.1", git_sha="1234abc",
                         server="placeholder")


@pytest.fixture
def base_config(package) -> dict:
    return {
        "clusterName": "c1",
        "package": str(package),
        "ssh": {"user": "admin", "privateKey": PRIVATE_KEY, "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 ops"},
        "network": {"adminCidr": "203.0.113.0/24"},
    }


class Deployment:
    """One program run: the exports and every registered resource."""

    def __init__(self, raw: dict, *, secret_keys: tuple[str, ...] = ("pegasus:ssh",),
                 cloud: FakeCloud | None = None) -> None:
        self.raw = copy.deepcopy(raw)
        self.cloud = cloud or FakeCloud()
        self.exports = run_program(self.cloud, stack_config("pegasus", raw), secret_keys=list(secret_keys),
                                   monitor=RecordingMonitor(self.cloud))
        self.resources = self.cloud.resources
        self._by_urn = {r.urn: r for r in self.resources.values()}

    def of_type(self, token: str):
        return [r for r in self.resources.values() if r.type == token]

    def count(self, token: str) -> int:
        return len(self.of_type(token))

    def ancestors(self, name: str) -> set[str]:
        """Names of everything `name` depends on, directly or not."""
        seen: set[str] = set()
        stack = [self.resources[name]]
        while stack:
            for urn in stack.pop().dependencies:
                dep = self._by_urn.get(urn)
                if dep and dep.name not in seen:
                    seen.add(dep.name)
                    stack.append(dep)
        return seen


@pytest.fixture
def deploy():
    return Deployment


class Preview:
    """`pulumi preview` of a new stack: the program with the cloud's outputs unknown."""

    def __init__(self, raw: dict) -> None:
        self.cloud = PreviewCloud()
        run_program(self.cloud, stack_config("pegasus", raw), secret_keys=["pegasus:ssh"], preview=True,
                    monitor=RecordingMonitor(self.cloud))
        self.resources = self.cloud.resources


@pytest.fixture
def preview():
    return Preview
