"""End to end: the real program on "your own servers", local machines a stack lists (no AWS at all).

The machines are what `make local-machines` boots (tools/localcloud/local_machines.py):
one ZooKeeper, two MetaServers, ReplicaServers with a blank disk at a stable
/dev/disk/by-id path. Each ReplicaServer also has a disk its operator formatted and
mounted at /data/ssd2, with a file of theirs on it, listed as a mounted directory.
The engine runs with AWS refused: any AWS resource or lookup would fail the run.
Scenarios in order: up, a config change, scale out, destroy; then nothing of the
operator's is touched and nothing of the program's is left.
"""

from __future__ import annotations

import copy
import json
import re
import time

import pytest

from tests.e2e.applications import Load
from components.spec.host_key import parse_host_key
from tests.e2e.localcloud.engine import DeploymentError, Engine
from tests.e2e.localcloud.testing import destroy_what_is_left, skip_unless_local_cloud_possible, wait_for
from tests.e2e.test_pegasus_cluster import FAST_FAILURE_DETECTION, FAST_MONITORING
from tests.support.package_builder import build_package
from tests.support.pulumi_program import PROGRAM, stack_config
from tools.localcloud.local_machines import Shape, boot_servers

pytestmark = [pytest.mark.e2e, skip_unless_local_cloud_possible()]

CLUSTER = "own"
OPERATOR_MOUNT = "/data/ssd2"
SHAPE = Shape(zookeeper=1, meta=2, replica=3, data_disks=1, disk_gib=1)


def add_operator_mount(cloud, machine) -> None:
    """What an operator did before listing the server: a disk of theirs, mounted, with a file."""
    volume = cloud.create_volume(f"{machine.name}-theirs", 1, by_id_name=f"virtio-theirs-{machine.name}")
    device = cloud.attach_volume(machine, volume.volume_id)
    machine.check(f"mkfs.ext4 -q {device} && mkdir -p {OPERATOR_MOUNT} && mount {device} {OPERATOR_MOUNT} "
                  f"&& echo theirs > {OPERATOR_MOUNT}/operator-file")


def boot(cloud, shape: Shape, first: dict[str, int] | None = None) -> dict:
    servers = boot_servers(cloud, shape, [], first=first)
    for entry in servers.get("replica", []):
        machine = next(m for m in cloud.machines.values() if m.ip == entry["host"])
        add_operator_mount(cloud, machine)
        entry["dataDisks"].append(OPERATOR_MOUNT)
    return servers


class OwnCluster:
    def __init__(self, cloud, tmp) -> None:
        self.cloud = cloud
        keys = cloud.keys
        self.config = {
            "clusterName": CLUSTER,
            "package": str(build_package(tmp / "package")),
            "ssh": {"user": "admin", "privateKey": keys.private_key, "publicKey": keys.public_key.strip()},
            "zookeeper": {"allowSingleNode": True},
            "servers": boot(cloud, SHAPE),
            "configOverrides": FAST_FAILURE_DETECTION,
            "timeouts": {"startSeconds": 90, "healthSeconds": 60, "zookeeperSeconds": 180, "metaPauseSeconds": 2},
            "monitoring": FAST_MONITORING,  # on the first MetaServer's host: none is listed
        }
        self.engine = Engine(cloud, tmp / "state.json", PROGRAM, stack="own", secret_keys=("pegasus:ssh",),
                             aws=False)
        self.exports: dict = {}

    def up(self, config: dict | None = None) -> dict:
        self.config = copy.deepcopy(config or self.config)
        self.exports = self.engine.up(stack_config("pegasus", self.config))
        return self.exports

    def machines(self, prefix: str) -> list:
        return [m for n, m in sorted(self.cloud.machines.items()) if n.startswith(prefix)]

    def alive(self) -> dict[str, str]:
        meta = self.exports["metaServers"].split(",")[0]
        nodes = json.loads(self.machines("meta-")[0].check(f"curl -sfL --max-time 10 'http://{meta}/meta/nodes'"))
        return {address: node["status"] for address, node in nodes["details"].items()}

    def no_aws_seen(self) -> None:
        types = {r["type"] for r in self.engine.state.resources.values()}
        assert not [t for t in types if t.startswith("aws:")], types
        assert not [token for run in self.engine.history for token, _ in run.invokes], "an AWS lookup ran"


@pytest.fixture(scope="module")
def own(local_cloud, tmp_path_factory):
    cluster = OwnCluster(local_cloud, tmp_path_factory.mktemp("own"))
    yield cluster
    destroy_what_is_left(cluster.engine)



def test_1_up_on_listed_servers(own):
    started = time.monotonic()
    exports = own.up()
    print(f"\nscenario own servers up: {time.monotonic() - started:.1f} s")
    own.no_aws_seen()
    assert exports["clusterRoot"] == f"/pegasus/{CLUSTER}"
    # Each server is known by the address of the NIC it binds (found by MAC for the ReplicaServers).
    replica_ips = [m.ip for m in own.machines("replica-")]
    assert sorted(r.split(":")[0] for r in exports["replicaServers"]) == sorted(replica_ips)
    assert own.alive() == {r: "ALIVE" for r in exports["replicaServers"]}
    assert own.machines("zk-")[0].check("systemctl is-active pegasus-zookeeper.service").strip() == "active"
    for machine in own.machines("replica-"):
        config = machine.check("cat /home/work/app/pegasus/replica/config.ini")
        assert "primary_interface = eth0" in config
        assert f"ssd1:/home/work/ssd1/pegasus/{CLUSTER},ssd2:{OPERATOR_MOUNT}/pegasus/{CLUSTER}" in config
        # The blank device was formatted and mounted through fstab; the operator's mount is only used.
        assert machine.check("findmnt -n -o SOURCE /home/work/ssd1").strip().startswith("/dev/loop")
        assert machine.check(f"ls {OPERATOR_MOUNT}/pegasus/{CLUSTER}").split() == ["reps"]
        assert machine.check(f"cat {OPERATOR_MOUNT}/operator-file").strip() == "theirs"
        fstab = machine.check("cat /etc/fstab")
        assert " /home/work/ssd1 " in fstab and OPERATOR_MOUNT not in fstab
    # Monitoring (on by default) on the first MetaServer's host: with no security group to keep
    # others out, its web interfaces listen on the loopback address only (reached by `ssh -L`).
    meta0 = own.machines("meta-")[0]
    for port in (9090, 9093, 9760):
        local = [line.split()[3] for line in meta0.check(f"ss -Hltn 'sport = :{port}'").splitlines()]
        assert local == [f"127.0.0.1:{port}"], (port, local)
    assert exports["monitoring"]["prometheus"] == "http://127.0.0.1:9090"
    assert exports["monitoring"]["tunnel"].endswith(f"{meta0.ip}") and "-L 9090:127.0.0.1:9090" in exports[
        "monitoring"]["tunnel"]


def first_cluster_as_it_is(own, machines: list) -> dict[str, str]:
    """What a second stack must not change on this cluster's servers: each one's units and when
    they started, its configs, its owner mark and its data directories' marks."""
    seen = {}
    for machine in machines:
        seen[machine.name] = machine.check(
            "ls /etc/systemd/system | grep '^pegasus-' || true; "
            "for u in $(ls /etc/systemd/system | grep '^pegasus-'); do systemctl show -p ActiveEnterTimestamp $u; done; "
            "cat /var/lib/pegasus-pulumi/owner; sha256sum /home/work/app/pegasus/*/config.ini 2>/dev/null || true; "
            f"cat /home/work/ssd1/pegasus/{CLUSTER}/.created-by-pegasus-pulumi 2>/dev/null || true")
    return seen


def test_1_b_a_second_stack_listing_one_of_these_servers_is_refused_and_this_cluster_untouched(own, tmp_path):
    started = time.monotonic()
    ours = own.machines("")
    before = first_cluster_as_it_is(own, ours)
    taken = own.machines("meta-")[1]  # this cluster's second MetaServer
    # A second stack: its own fresh servers, and one of this cluster's among them.
    fresh = boot_servers(own.cloud, Shape(zookeeper=0, meta=1, replica=3, data_disks=1, disk_gib=1), [],
                         first={"meta": 2, "replica": 10})
    second = copy.deepcopy(own.config)
    second["clusterName"] = "intruder"
    # (the taken server with its host key, as its operator would give it: the ownership is what refuses it)
    listed = next(e for e in own.config["servers"]["meta"] if e["host"] == taken.ip)
    taken_entry = {"host": taken.ip, "nic": "eth0", "hostKey": listed["hostKey"]}
    second["servers"] = {"meta": [taken_entry, *fresh["meta"]], "replica": fresh["replica"]}
    second["zookeeper"] = {"servers": own.exports["zookeeperServers"]}
    engine = Engine(own.cloud, tmp_path / "second.json", PROGRAM, stack="second", secret_keys=("pegasus:ssh",),
                    aws=False)
    try:
        with pytest.raises(DeploymentError) as error:
            engine.up(stack_config("pegasus", second))
        message = str(error.value)
        assert re.search(r"this host belongs to stack \S*/pegasus/own, cluster own \(/var/lib/pegasus-pulumi/owner\), "
                         r"and this is stack \S*/pegasus/second, cluster intruder: refusing to touch it",
                         message), message
        # Its own servers were claimed for it; its destroy gives them back and touches nothing of this cluster's.
        for machine in fresh_machines(own, fresh):
            assert "cluster=intruder" in machine.check("cat /var/lib/pegasus-pulumi/owner"), machine.name
    finally:
        destroy_what_is_left(engine)
        released = {m.name: m.ssh("test -e /var/lib/pegasus-pulumi/owner")[0] != 0 for m in fresh_machines(own, fresh)}
        for machine in fresh_machines(own, fresh):  # never left for the next scenarios to find
            own.cloud.terminate(machine)
    assert engine.state.order == []
    assert released and all(released.values()), released
    assert first_cluster_as_it_is(own, ours) == before
    assert own.alive() == {r: "ALIVE" for r in own.exports["replicaServers"]}
    own.up()
    assert {op.name for op in own.engine.last_run.operations} == {f"{CLUSTER}-health", f"{CLUSTER}-host-keys"}
    print(f"\nscenario a second stack lists this cluster's server: {time.monotonic() - started:.1f} s")


def fresh_machines(own, servers: dict) -> list:
    hosts = {entry["host"] for entries in servers.values() for entry in entries}
    return [m for m in own.machines("") if m.ip in hosts]


def test_2_a_config_change_rolls_the_replicas(own):
    config = copy.deepcopy(own.config)
    config["replica"] = {"configOverrides": {"replication": {"gc_interval_ms": "45000"}}}
    # An application on the servers' network (the program manages no firewall there).
    app = own.cloud.boot_machine("app-0")
    load = Load(app, own.exports["metaServers"], "config",
                servers=lambda: own.machines("meta-") + own.machines("replica-")).start()
    started = time.monotonic()
    own.up(config)
    print(f"\nscenario own servers config roll: {time.monotonic() - started:.1f} s")
    stats = load.result("a config roll of your own servers' ReplicaServers without admin tools")
    assert stats["below_two"] == [], stats
    own.cloud.terminate(app)
    ops = {op.name: op.action for op in own.engine.last_run.operations}
    assert ops[f"{CLUSTER}-rolling-restart"] == "update"
    record = own.engine.state.get_by_name("pulumi-python:dynamic/pegasus:RollingRestart", f"{CLUSTER}-rolling-restart")
    restarted = record["extras"]["restarted"]
    assert restarted == [f"replica-{i}/replica" for i in range(3)]
    for machine in own.machines("replica-"):
        assert "gc_interval_ms = 45000" in machine.check("cat /home/work/app/pegasus/replica/config.ini")
    wait_for(lambda: set(own.alive().values()) == {"ALIVE"}, "every ReplicaServer ALIVE again")
    own.no_aws_seen()


def test_2_hk_a_rebuilt_server_is_refused_until_the_stack_holds_its_new_key(own):
    meta1 = own.machines("meta-")[1]  # servers.meta[1]
    assert own.config["servers"]["meta"][1]["host"] == meta1.ip
    key = "/etc/ssh/ssh_host_ed25519_key"
    old_key = own.config["servers"]["meta"][1]["hostKey"]
    meta_started = meta1.check("systemctl show -p ActiveEnterTimestampMonotonic --value pegasus-own-meta.service")
    # Rebuilt on purpose: the server has a new host key.
    meta1.check(f"rm -f {key} {key}.pub && ssh-keygen -q -t ed25519 -N '' -f {key} && systemctl restart ssh")
    new_key = " ".join(meta1.check(f"cat {key}.pub").split()[:2])
    started = time.monotonic()
    with pytest.raises(DeploymentError) as error:
        own.up()
    message = str(error.value)
    assert f"meta-1 ({meta1.ip}) offered another SSH host key" in message
    assert parse_host_key(old_key).fingerprint in message and parse_host_key(new_key).fingerprint in message
    assert "pulumi config set --path 'pegasus:servers.meta[1].hostKey'" in message
    assert [(op.name, op.action) for op in own.engine.last_run.operations] == [(f"{CLUSTER}-host-keys", "update")]
    # The operator checked the new key on the server and sets it: the stack holds it from now on.
    config = copy.deepcopy(own.config)
    config["servers"]["meta"][1]["hostKey"] = new_key
    own.up(config)
    print(f"\nscenario own servers, a rebuilt server refused then accepted: {time.monotonic() - started:.1f} s")
    pin = own.engine.state.get_by_name("pulumi-python:dynamic/pegasus:HostKeyPin", f"{CLUSTER}-meta-1-host-key")
    assert (pin["extras"]["key"], pin["extras"]["source"]) == (new_key, "servers.meta[1].hostKey of the stack")
    # Its commands carry the new key (they ran again over it), and nothing restarted.
    ran = {op.name for op in own.engine.last_run.operations if op.type.startswith("command:")}
    assert ran and all(name.startswith(f"{CLUSTER}-meta-1-") for name in ran), ran
    assert meta1.check("systemctl show -p ActiveEnterTimestampMonotonic --value pegasus-own-meta.service") == meta_started
    own.no_aws_seen()


def test_3_scale_out_onto_another_listed_server(own):
    config = copy.deepcopy(own.config)
    config["servers"]["replica"] += boot(own.cloud, Shape(zookeeper=0, meta=0, replica=1, data_disks=1,
                                                          disk_gib=1), first={"replica": 3})["replica"]
    exports = own.up(config)
    touched = {op.name for op in own.engine.last_run.operations}
    cluster_checks = {f"{CLUSTER}-health", f"{CLUSTER}-host-keys", f"{CLUSTER}-replica-removal",
                      f"{CLUSTER}-rolling-restart", f"{CLUSTER}-monitoring-targets"}
    assert touched - cluster_checks and all(n.startswith(f"{CLUSTER}-replica-3") or n in cluster_checks for n in touched), \
        touched
    assert len(exports["replicaServers"]) == 4
    assert own.alive() == {r: "ALIVE" for r in exports["replicaServers"]}
    own.no_aws_seen()


def test_4_destroy_removes_what_the_program_made_and_nothing_of_the_operators(own):
    own.engine.destroy()
    assert own.engine.state.order == []
    own.no_aws_seen()
    machines = own.machines("")
    assert len(machines) == 1 + 2 + 4, "destroy must not touch the servers themselves"
    for machine in machines:
        units = machine.check("ls /etc/systemd/system").split()
        assert not [u for u in units if u.startswith("pegasus-")], f"{machine.name}: {units}"
        assert machine.ssh("test -e /home/work/app/pegasus")[0] != 0, f"{machine.name} keeps appDir"
        assert machine.ssh("test -e /var/lib/pegasus-zookeeper/myid")[0] != 0
        # Released: another stack may list it now; the server user the program made is gone.
        assert machine.ssh("test -e /var/lib/pegasus-pulumi")[0] != 0, f"{machine.name} keeps its owner mark"
        assert machine.ssh("id -u pegasus")[0] != 0, f"{machine.name} keeps the server user"
    for machine in own.machines("replica-"):
        assert machine.ssh("mountpoint -q /home/work/ssd1")[0] != 0 and machine.ssh("test -e /home/work/ssd1")[0] != 0
        assert "/home/work" not in machine.check("cat /etc/fstab")
        # The operator's mount and file stay exactly as they were.
        assert machine.ssh(f"mountpoint -q {OPERATOR_MOUNT}")[0] == 0, f"{machine.name}: {OPERATOR_MOUNT} unmounted"
        assert machine.check(f"ls -A {OPERATOR_MOUNT}").split() == ["lost+found", "operator-file"]
        assert machine.check(f"cat {OPERATOR_MOUNT}/operator-file").strip() == "theirs"
