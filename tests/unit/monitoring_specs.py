"""Cluster specs with monitoring on, for the monitoring renderer's tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from components.spec import ClusterSpec, build_spec
from components.spec.monitoring import MonitoringSpec
from tests.support.package_builder import build_package

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\ntest-only\n-----END OPENSSH PRIVATE KEY-----\n"


def monitoring_spec(tmp_path: Path, release: str = "2.5.0", **monitoring) -> ClusterSpec:
    package = build_package(tmp_path / f"package-{release}", version=release, server="placeholder")
    raw = {"clusterName": "c1", "package": str(package),
           "ssh": {"user": "admin", "privateKey": KEY, "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 ops"},
           "network": {"adminCidr": "203.0.113.0/24"}}
    spec = build_spec(raw, stack="test", secret_keys={"pegasus:ssh"})
    return replace(spec, monitoring=MonitoringSpec(enabled=True, **monitoring))
