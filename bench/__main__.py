"""`make bench`: how long rendering and program evaluation take at production scale.

Shape (the one the issues set): 3 MetaServers (the Collector on the first) +
100 ReplicaServers x 4 data disks + 3 ZooKeeper, and the same with 3 and 1000
ReplicaServers; and the plan of a grouped roll (bench/roll_plan.py) for 100
and 1000. Prints one line per measurement with its target; exits
non-zero if a target is missed, so a regression is visible. With
BASELINE=<another checkout> it also evaluates that tree side by side (each
evaluation in a fresh process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.roll_plan import measure as measure_roll_plan
from components.render import server_files as files
from components.spec.validation import build_spec
from components.spec.topology import plan_hosts
from tests.program.fake_aws import FakeCloud, RecordingMonitor
from tests.support.package_builder import build_package
from tests.support.pulumi_program import run_program, stack_config
from bench import status as status_bench

RENDER_TARGET_S = 1.0
PROGRAM_TARGET_S = 10.0
BASELINE_TARGET = 0.5  # issue 10: under half the time of the main it started from


def shape(package: Path, replicas: int = 100) -> dict:
    return {
        "clusterName": "bench",
        "package": str(package),
        "ssh": {"user": "admin", "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n",
                "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 bench"},
        "meta": {"count": 3},
        "replica": {"count": replicas, "dataDisks": {"count": 4, "sizeGiB": 500}},
        "zookeeper": {"count": 3},
        "network": {"adminCidr": "203.0.113.0/24"},
    }


def render_everything(spec) -> int:
    """Every file and script every host receives; returns how many."""
    plans = plan_hosts(spec)
    zk_ips = [f"10.0.0.{i + 1}" for i in range(spec.zookeeper.count)]
    meta_ips = [f"10.0.1.{i + 1}" for i in range(spec.meta.count)]
    zk_servers = files.zookeeper_servers(zk_ips)
    server_ips = {f"{plan.name}/{role}": f"10.0.2.{n}" for n, plan in enumerate(plans) for role in plan.roles}
    rendered = []
    for n, plan in enumerate(plans):
        rendered += [files.prepare_host_script(spec), files.remove_app_dir_script(spec)]
        if plan.kind == "zookeeper":
            rendered += [files.zookeeper_files(spec, zk_ips, plan.index).install, files.remove_zookeeper_script()]
            continue
        if plan.data_disks:
            devices = [f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol{n:08x}{d:09x}"
                       for d in range(plan.data_disks.count)]
            disks = files.disk_entries(spec, devices, None)
            rendered += [files.prepare_disks_script(disks), files.cleanup_disks_script(disks)]
        rendered += [files.install_package_script(spec), files.remove_package_script(spec)]
        for role in plan.roles:
            f = files.role_files(spec, role, f"10.0.2.{n}", "", meta_ips, zk_servers)
            rendered += [f.config, f.unit, f.stage, f.start, f.restart_script, f.stop]
    rendered += [files.zookeeper_ready_script(zk_ips, 300), files.health_check_script(spec, meta_ips, server_ips)]
    return len(rendered)


# Types whose create or update acts on servers: pulumi-command's, the rolling
# restart, the health check, the ZooKeeper roll and the host-key check (dynamic
# resources that run over SSH; a host-key pin goes to its server only to record
# an old one's key).
REMOTE = ("command:remote:Command", "command:remote:CopyToRemote", "pulumi-python:dynamic/pegasus:RollingRestart",
          "pulumi-python:dynamic/pegasus:ClusterHealth", "pulumi-python:dynamic/pegasus:ZooKeeperRoll",
          "pulumi-python:dynamic/pegasus:HostKeyCheck")


def longest_remote_chain(cloud: FakeCloud, only=lambda name: True) -> int:
    """The longest chain of dependent remote operations (commands, uploads) among
    the resources `only` admits, through any resource in between."""
    by_urn = {r.urn: r for r in cloud.resources.values()}
    depth: dict[str, int] = {}
    for urn in sorted(by_urn, key=lambda u: len(by_urn[u].dependencies)):  # any order: memoised below
        stack = [urn]
        while stack:
            top = stack[-1]
            pending = [d for d in by_urn[top].dependencies if d in by_urn and d not in depth]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if top in depth:
                continue
            r = by_urn[top]
            own = 1 if r.type in REMOTE and only(r.name) else 0
            depth[top] = own + max((depth[d] for d in r.dependencies if d in depth), default=0)
    return max(depth.values(), default=0)


def chains(raw: dict) -> str:
    """First deploy (every remote operation) and a config change (what a changed
    override reruns: the host-key check, the staged configs, the rolling restart,
    the health check)."""
    cloud = FakeCloud()
    run_program(cloud, stack_config("pegasus", raw), stack="bench", secret_keys=["pegasus:ssh"],
                monitor=RecordingMonitor(cloud))
    first = longest_remote_chain(cloud)
    change = longest_remote_chain(cloud, lambda name: name.endswith(("-host-keys", "-config", "-rolling-restart",
                                                                     "-health")))
    rolls = sum(1 for r in cloud.resources.values() if r.type == REMOTE[2])
    return (f"first deploy {first}, config change {change} "
            f"(the restarts themselves run one at a time inside {rolls} rolling-restart step)")


# Evaluates the program under mocks in a fresh process and prints JSON. Only APIs
# that today's main had too, so it also measures another checkout (BASELINE).
EVALUATE = """
import json, resource, sys, tempfile, time
from pathlib import Path
from bench.__main__ import shape
from tests.program.fake_aws import FakeCloud
from tests.support.package_builder import build_package
from tests.support.pulumi_program import run_program, stack_config
with tempfile.TemporaryDirectory() as tmp:
    raw = shape(build_package(Path(tmp), server="placeholder"), int(sys.argv[1]))
    cloud = FakeCloud()
    started = time.perf_counter()
    run_program(cloud, stack_config("pegasus", raw), stack="bench", secret_keys=["pegasus:ssh"])
    seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "resources": cloud.custom_count,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def evaluate(replicas: int, tree: Path = Path.cwd()) -> dict:
    done = subprocess.run([sys.executable, "-c", EVALUATE, str(replicas)], cwd=tree, capture_output=True,
                          text=True, check=True, env={**os.environ, "PYTHONPATH": str(tree)})
    return json.loads(done.stdout.strip().splitlines()[-1])


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

        for replicas in (3, 100, 1000):
            result = evaluate(replicas)
            print(f"program, {replicas} ReplicaServers: evaluated under mocks in {result['seconds']:.2f} s, "
                  f"{result['resources']} resources, peak RSS {result['peak_mib']:.0f} MiB"
                  + (f" (target < {PROGRAM_TARGET_S} s)" if replicas == 100 else ""))
            if replicas == 100:
                failures += result["seconds"] >= PROGRAM_TARGET_S
                ours = result["seconds"]
        baseline = os.environ.get("BASELINE")
        if baseline:  # e.g. a worktree of an older main: `make bench BASELINE=../old-main`
            theirs = evaluate(100, Path(baseline).resolve())
            ratio = ours / theirs["seconds"]
            print(f"program, 100 ReplicaServers, {baseline}: {theirs['seconds']:.2f} s, {theirs['resources']} "
                  f"resources; this tree takes {ratio:.2f} of that time (target < {BASELINE_TARGET})")
            failures += ratio >= BASELINE_TARGET

        # Issue 10: the first deploy's chain is the same for every size.
        firsts = set()
        for replicas in (3, 100, 1000):
            chain = chains(shape(package, replicas))
            firsts.add(chain.split(",")[0])
            print(f"longest chain of remote operations, {replicas} ReplicaServers: {chain}")
        if len(firsts) != 1:
            print(f"the first deploy's chain grows with the cluster: {sorted(firsts)} (target: one length)")
            failures += 1

    # Issue 22: a grouped roll's plan, from a balanced cluster's partition map.
    for replicas in (100, 1000):
        line, ok = measure_roll_plan(replicas)
        print(line)
        failures += not ok

    # Issue 21: `make status` for 100 servers.
    measured = status_bench.measure(100)
    if isinstance(measured, str):
        print(f"make status, 100 servers: not measured ({measured})")
    else:
        print(f"make status, 100 servers (one real sshd standing for each): {measured[0]:.2f} s, {measured[1]} "
              f"(target < {status_bench.STATUS_TARGET_S} s)")
        failures += measured[0] >= status_bench.STATUS_TARGET_S
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
