"""`make bench`: how long rendering and program evaluation take at production scale.

Shape (the one the issues set): 3 MetaServers (the Collector on the first) +
100 ReplicaServers x 4 data disks + 3 ZooKeeper. Prints one line per
measurement with its target; exits non-zero if a target is missed, so a
regression is visible.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from components import server_files as files
from components.spec import build_spec
from components.topology import plan_hosts
from tests.program.fake_aws import FakeCloud
from tests.support.package_builder import build_package
from tests.support.pulumi_program import run_program, stack_config

RENDER_TARGET_S = 1.0
PROGRAM_TARGET_S = 10.0


def shape(package: Path) -> dict:
    return {
        "clusterName": "bench",
        "package": str(package),
        "ssh": {"user": "admin", "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n",
                "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 bench"},
        "meta": {"count": 3},
        "replica": {"count": 100, "dataDisks": {"count": 4, "sizeGiB": 500}},
        "zookeeper": {"count": 3},
        "network": {"adminCidr": "203.0.113.0/24"},
    }


def render_everything(spec) -> int:
    """Every file and script every host receives; returns how many."""
    plans = plan_hosts(spec)
    zk_ips = [f"10.0.0.{i + 1}" for i in range(spec.zookeeper.count)]
    meta_ips = [f"10.0.1.{i + 1}" for i in range(spec.meta.count)]
    zk_servers = files.zookeeper_servers(zk_ips)
    replica_ips = {plan.name: f"10.0.2.{n}" for n, plan in enumerate(plans) if plan.kind == "replica"}
    rendered = []
    for n, plan in enumerate(plans):
        rendered += [files.prepare_host_script(spec), files.remove_app_dir_script(spec)]
        if plan.kind == "zookeeper":
            rendered += [files.install_zookeeper_script(zk_ips, plan.index), files.remove_zookeeper_script()]
            continue
        if plan.data_disks:
            devices = [f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol{n:08x}{d:09x}"
                       for d in range(plan.data_disks.count)]
            disks = files.disk_entries(spec, devices, None)
            rendered += [files.prepare_disks_script(disks), files.cleanup_disks_script(disks)]
        rendered += [files.install_package_script(spec), files.remove_package_script(spec)]
        for role in plan.roles:
            f = files.role_files(spec, role, f"10.0.2.{n}", "", meta_ips, zk_servers)
            rendered += [f.config, f.unit, f.stage, f.start, f.roll, f.deferred_roll, f.stop, f.check]
    rendered += [files.zookeeper_ready_script(zk_ips, 300), files.health_check_script(spec, meta_ips, replica_ips)]
    return len(rendered)


def main() -> int:
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        package = build_package(Path(tmp), server="placeholder")
        raw = shape(package)

        started = time.perf_counter()
        spec = build_spec(raw, stack="bench", secret_keys={"pegasus:ssh"})
        hashed = time.perf_counter() - started

        started = time.perf_counter()
        count = render_everything(spec)
        render_s = time.perf_counter() - started
        print(f"render: {count} files for 3 meta + 100 replicas x 4 disks + 3 ZooKeeper in {render_s:.3f} s "
              f"(target < {RENDER_TARGET_S} s; package hashed once before, {hashed * 1000:.0f} ms)")
        failures += render_s >= RENDER_TARGET_S

        cloud = FakeCloud()
        started = time.perf_counter()
        run_program(cloud, stack_config("pegasus", raw), stack="bench", secret_keys=["pegasus:ssh"])
        program_s = time.perf_counter() - started
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"program: evaluated under mocks in {program_s:.2f} s, {cloud.custom_count} resources, "
              f"peak RSS {peak_mib:.0f} MiB (target < {PROGRAM_TARGET_S} s)")
        failures += program_s >= PROGRAM_TARGET_S
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
