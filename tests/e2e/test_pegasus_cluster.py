"""End to end: the real program deploys, changes and destroys a cluster on local machines.

The scenarios run in order on one cluster (each builds on the previous one's
state), like an operator's week: up, a no-op up, a config change, a bad
change, scale out, data safety, destroy. Every check looks from outside the
program: over SSH on the machines, at the MetaServer's HTTP API, in ZooKeeper.
"""

from __future__ import annotations

import copy
import json
import time
import urllib.request
from pathlib import Path

import pytest

from components.zookeeper_path_guard import zookeeper_session
from tests.e2e.localcloud.engine import DeploymentError, Engine
from tests.e2e.localcloud.testing import skip_unless_local_cloud_possible
from tests.support.package_builder import build_package
from tests.support.pulumi_program import PROGRAM, stack_config

pytestmark = [pytest.mark.e2e, skip_unless_local_cloud_possible()]

CLUSTER = "e2e"
COMMAND_TYPES = ("command:remote:Command", "command:remote:CopyToRemote")
ROLE_UNITS = ("pegasus-meta.service", "pegasus-replica.service", "pegasus-collector.service")


def timed(record: dict, name: str):
    """Print and keep each scenario's wall time (the suite's budget is 15 minutes)."""
    class _Timer:
        def __enter__(self):
            self.started = time.monotonic()

        def __exit__(self, *exc):
            record[name] = time.monotonic() - self.started
            print(f"\nscenario {name}: {record[name]:.1f} s")
    return _Timer()


def cluster_config(package: Path, keys) -> dict:
    return {
        "clusterName": CLUSTER,
        "package": str(package),
        # No ssh.user: the image's login user (admin, as on Debian's AMIs), so every
        # script runs through sudo and uploads land as that user. (retainData logs in as root.)
        "ssh": {"privateKey": keys.private_key, "publicKey": keys.public_key.strip()},
        "meta": {"count": 2},
        "replica": {"count": 3, "dataDisks": {"count": 2, "sizeGiB": 1}},
        "collector": {"enabled": True, "colocate": True},
        "zookeeper": {"count": 3, "access": "ssh"},
        "network": {"adminCidr": "10.0.0.0/8", "extraNics": 1},
        "timeouts": {"startSeconds": 90, "healthSeconds": 120, "zookeeperSeconds": 180},
    }


class Cluster:
    """The deployment under test and the ways to look at it."""

    def __init__(self, cloud, tmp: Path) -> None:
        self.cloud = cloud
        self.package = build_package(tmp / "package")
        self.engine = Engine(cloud, tmp / "state.json", PROGRAM, project="pegasus", stack="e2e",
                             secret_keys=("pegasus:ssh",))
        self.config = cluster_config(self.package, cloud.keys)
        self.exports: dict = {}
        self.times: dict[str, float] = {}

    def up(self, config: dict | None = None) -> dict:
        self.config = copy.deepcopy(config or self.config)
        self.exports = self.engine.up(stack_config("pegasus", self.config))
        return self.exports

    def machine(self, name: str):
        return self.cloud.machines[name]

    def hosts(self, prefix: str) -> list:
        return [m for n, m in sorted(self.cloud.machines.items()) if n.startswith(prefix)]

    def meta_get(self, path: str) -> dict:
        meta = self.exports["metaServers"].split(",")[0]
        with urllib.request.urlopen(f"http://{meta}{path}", timeout=10) as answer:
            return json.loads(answer.read())

    def zookeeper(self):
        """A kazoo session on the cluster's ensemble, reached directly from this host."""
        return zookeeper_session(self.exports["zookeeperServers"], None, 30)

    def unit_started(self, machine, unit: str) -> float:
        """When the unit last entered 'active', in seconds since the epoch."""
        out = machine.check(f"systemctl show -p ActiveEnterTimestamp --value {unit} | xargs -I{{}} date -d '{{}}' +%s.%N")
        return float(out.strip())

    def commands_run(self) -> list:
        return [op for op in self.engine.last_run.operations if op.type in COMMAND_TYPES]


@pytest.fixture(scope="module")
def cluster(local_cloud, tmp_path_factory):
    deployed = Cluster(local_cloud, tmp_path_factory.mktemp("cluster"))
    yield deployed
    if deployed.engine.state.order:  # a scenario failed midway: leave nothing behind
        try:
            deployed.engine.destroy()
        except DeploymentError as error:
            print(f"cleanup destroy failed: {error}")
    print("\nscenario times: " + ", ".join(f"{k} {v:.0f} s" for k, v in deployed.times.items()))


def alive_replicas(cluster: Cluster) -> dict[str, str]:
    nodes = cluster.meta_get("/meta/nodes")
    return {address: node["status"] for address, node in nodes["details"].items()}


def wait_for(predicate, what: str, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_1_up(cluster):
    with timed(cluster.times, "up"):
        exports = cluster.up()
    assert exports["clusterRoot"] == f"/pegasus/{CLUSTER}"
    # Each server checked itself once the last server had started.
    ops = {op.name: op for op in cluster.engine.last_run.operations}
    checks = {name for name in ops if name.endswith("-check")}
    assert checks == {"meta-0-meta-check", "meta-1-meta-check", "meta-0-collector-check",
                      *(f"replica-{i}-replica-check" for i in range(3))}
    all_started = max(ops[name].ended for name in ("meta-0-collector", *(f"replica-{i}-replica" for i in range(3))))
    assert all(ops[name].started >= all_started and not ops[name].error for name in checks)
    # Every unit is active where it should be.
    for machine in cluster.hosts("zk-"):
        assert machine.check("systemctl is-active pegasus-zookeeper.service").strip() == "active"
    meta0 = cluster.machine("meta-0")
    for unit in ("pegasus-meta.service", "pegasus-collector.service"):
        assert meta0.check(f"systemctl is-active {unit}").strip() == "active"
    for machine in cluster.hosts("replica-"):
        assert machine.check("systemctl is-active pegasus-replica.service").strip() == "active"
    # The MetaServer sees 3 ALIVE replicas at their extra-NIC addresses.
    replicas = exports["replicaServers"]
    assert len(replicas) == 3
    primary_ips = {m.ip for m in cluster.hosts("replica-")}
    assert not {r.split(":")[0] for r in replicas} & primary_ips, "replicas should bind to the extra NIC"
    assert alive_replicas(cluster) == {r: "ALIVE" for r in replicas}
    # Replies from the extra NIC's address leave through it, now and after a reboot (the boot unit).
    replica0, nic_ip = cluster.machine("replica-0"), replicas[0].split(":")[0]
    assert replica0.check("systemctl is-enabled pegasus-extra-nic.service").strip() == "enabled"
    assert f"from {nic_ip} lookup" in replica0.check("ip -4 rule show")
    replica0.check(f"ip -4 rule del from {nic_ip}")  # what a reboot forgets
    replica0.check("systemctl restart pegasus-extra-nic.service")
    assert f"from {nic_ip} lookup" in replica0.check("ip -4 rule show")
    # Data dirs sit on the mounted volumes and hold the server's files.
    for machine in cluster.hosts("replica-"):
        for disk in (1, 2):
            data_dir = f"/home/work/ssd{disk}/pegasus/{CLUSTER}"
            source = machine.check(f"findmnt -n -o SOURCE --target {data_dir}").strip()
            assert source.startswith("/dev/loop"), f"{machine.name}: {data_dir} is on {source}"
            assert machine.check(f"ls {data_dir}").count("standin-replica.") >= 1
    # ZooKeeper holds the cluster root; no %{ is left in any deployed config.
    with cluster.zookeeper() as client:
        assert client.exists(f"/pegasus/{CLUSTER}")
        assert client.get_children(f"/pegasus/{CLUSTER}/lock")
    for machine in cluster.hosts("meta-") + cluster.hosts("replica-"):
        rc, out, _ = machine.ssh("grep -l '%{' /home/work/app/pegasus/*/config.ini")
        assert rc == 1 and not out.strip(), f"{machine.name}: leftover %{{ in {out}"


def test_2_noop_up_runs_no_command(cluster):
    with timed(cluster.times, "no-op up"):
        cluster.up()
    assert cluster.commands_run() == []
    assert cluster.engine.last_run.operations == []


def test_3_replica_config_change_rolls_replicas_one_at_a_time(cluster):
    metas_before = {m.name: cluster.unit_started(m, "pegasus-meta.service") for m in cluster.hosts("meta-")}
    config = copy.deepcopy(cluster.config)
    config["replica"]["configOverrides"] = {"replication": {"gc_interval_ms": "45000"}}
    # The preview names exactly what the change touches: the replicas' configs and restarts.
    planned = {op.name: op.action for op in cluster.engine.preview(stack_config("pegasus", config)).operations}
    assert planned == {**{f"replica-{i}-replica-roll": "update" for i in range(3)},
                       **{f"replica-{i}-replica-config": "replace" for i in range(3)}}
    with timed(cluster.times, "config change"):
        cluster.up(config)
    ran = {op.name for op in cluster.commands_run()}
    rolls = [op for op in cluster.commands_run() if op.name.endswith("-replica-roll")]
    assert {op.name for op in rolls} == {f"replica-{i}-replica-roll" for i in range(3)}
    assert ran == {op.name for op in rolls} | {f"replica-{i}-replica-config" for i in range(3)}
    for a, b in zip(rolls, rolls[1:]):
        assert not a.overlaps(b), f"{a.name} and {b.name} restarted at the same time"
    # Each replica restarted once, in the roll's order, and the metas were not touched.
    starts = [cluster.unit_started(m, "pegasus-replica.service") for m in cluster.hosts("replica-")]
    assert starts == sorted(starts)
    # (systemd reports whole seconds: allow one second of rounding)
    assert all(op.started - 1 <= s <= op.ended for op, s in zip(sorted(rolls, key=lambda o: o.name), starts))
    assert {m.name: cluster.unit_started(m, "pegasus-meta.service") for m in cluster.hosts("meta-")} == metas_before
    for machine in cluster.hosts("replica-"):
        assert "gc_interval_ms = 45000" in machine.check("cat /home/work/app/pegasus/replica/config.ini")
    assert set(alive_replicas(cluster).values()) == {"ALIVE"}


def test_4_bad_start_is_explained(cluster):
    good = copy.deepcopy(cluster.config)
    bad = copy.deepcopy(good)
    bad["replica"]["configOverrides"] = {"network": {"io_service_worker_count": "zero"}}
    with timed(cluster.times, "bad change"):
        with pytest.raises(DeploymentError) as error:
            cluster.up(bad)
    message = str(error.value)
    assert "replica-0-replica-roll" in message
    assert "io_service_worker_count" in message  # the stand-in's refusal, from its log tail
    assert "roll stopped at" in message
    # The roll stopped at the first server: the others still run their old files.
    for machine in cluster.hosts("replica-")[1:]:
        assert "io_service_worker_count = zero" not in machine.check("cat /home/work/app/pegasus/replica/config.ini")
        assert machine.check("systemctl is-active pegasus-replica.service").strip() == "active"
    with timed(cluster.times, "recover"):
        cluster.up(good)
    wait_for(lambda: set(alive_replicas(cluster).values()) == {"ALIVE"}, "all replicas ALIVE again")


def test_5_scale_out_creates_only_the_new_server(cluster):
    config = copy.deepcopy(cluster.config)
    config["replica"]["count"] = 4
    with timed(cluster.times, "scale out"):
        exports = cluster.up(config)
    touched = {op.name for op in cluster.engine.last_run.operations}
    assert touched - {"e2e-health"}, "nothing was created"
    assert all(name.startswith("replica-3") or name == "e2e-health" for name in touched), touched
    assert {op.action for op in cluster.engine.last_run.operations if op.name.startswith("replica-3")} == {"create"}
    assert len(exports["replicaServers"]) == 4
    assert alive_replicas(cluster) == {r: "ALIVE" for r in exports["replicaServers"]}


def test_6_disk_preparation_keeps_existing_data(cluster):
    replica = cluster.machine("replica-0")
    replica.check("echo keep-me > /home/work/ssd1/sentinel && sync")
    prepare = cluster.engine.state.get_by_name("command:remote:Command", "replica-0-disks")["inputs"]["create"]
    rc, out, err = replica.ssh(prepare)
    assert rc == 0, err
    assert "formatted" not in out and "kept" in out
    assert replica.check("cat /home/work/ssd1/sentinel").strip() == "keep-me"
    assert replica.check("grep -c ' /home/work/ssd1 ' /etc/fstab").strip() == "1"


def test_7_destroy_leaves_nothing(cluster):
    pegasus_hosts = {m.name for m in cluster.hosts("meta-") + cluster.hosts("replica-")}
    seen: dict = {"hosts": set()}

    def before_delete(record: dict) -> None:
        # ZooKeeper, checked while it still runs: the first ZooKeeper removal is next.
        if record["name"].startswith("zk-") and record["name"].endswith("-zookeeper") and "path" not in seen:
            with cluster.zookeeper() as client:
                seen["path"] = client.exists(f"/pegasus/{CLUSTER}")
                seen["pegasus"] = client.exists("/pegasus")
        # Each Pegasus host, checked just before its instance goes.
        if record["type"] == "aws:ec2/instance:Instance" and record["name"] in pegasus_hosts:
            machine = cluster.machine(record["name"])
            for unit in ROLE_UNITS:
                rc, _, _ = machine.ssh(f"systemctl cat {unit}")
                assert rc != 0, f"{unit} still installed on {machine.name}"
            rc, out, _ = machine.ssh("ls -d /home/work/app/pegasus /home/work/ssd*/pegasus 2>/dev/null")
            assert not out.strip(), f"{machine.name} keeps {out}"
            assert not machine.check("grep -c ' /home/work/' /etc/fstab || true").strip().strip("0")
            seen["hosts"].add(record["name"])

    volumes_before = set(cluster.cloud.volumes)
    with timed(cluster.times, "destroy"):
        cluster.engine.destroy(before_delete=before_delete)
    assert "path" in seen, "ZooKeeper was never checked before it went"
    assert seen["path"] is None, "the cluster's ZooKeeper path survived destroy"
    assert seen["pegasus"] is not None, "destroy removed /pegasus itself"
    assert seen["hosts"] == pegasus_hosts
    assert cluster.engine.state.order == []
    assert not cluster.cloud.machines
    assert not volumes_before & set(cluster.cloud.volumes)
    loops = cluster.cloud.attached_loop_devices()
    assert not loops, f"loop devices left: {loops}"
