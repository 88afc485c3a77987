"""End to end: the real program deploys, changes and destroys a cluster on local machines.

The scenarios run in order on one cluster (each builds on the previous one's
state), like an operator's week: up, a no-op up, a config change, a bad
change, scale out, data safety, destroy. Every check looks from outside the
program: over SSH on the machines, at the MetaServer's HTTP API, in ZooKeeper.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import shlex
import time
from pathlib import Path

import pytest

from components.operations.zookeeper_path_guard import zookeeper_session
from tests.e2e.localcloud.engine import DeploymentError, Engine
from tests.e2e.localcloud.remote_command import COPIED
from tests.e2e.localcloud.testing import destroy_what_is_left, skip_unless_local_cloud_possible, wait_for
from tests.support.package_builder import build_package, build_tools_package
from tools.localcloud.sshkeys import generate_key_pair
from tests.support.pulumi_program import PROGRAM, stack_config

pytestmark = [pytest.mark.e2e, skip_unless_local_cloud_possible()]

CLUSTER = "e2e"
COMMAND_TYPES = ("command:remote:Command", "command:remote:CopyToRemote")
PIN = "pulumi-python:dynamic/pegasus:HostKeyPin"
# What runs at every up, changed or not: the check of every server's host key, then the cluster's health.
EVERY_UP = [(f"{CLUSTER}-health", "update"), (f"{CLUSTER}-host-keys", "update")]
ROLE_UNITS = ("pegasus-meta.service", "pegasus-replica.service", "pegasus-collector.service")
STANDIN_CLIENT = Path(__file__).parent / "standin" / "standin_client.py"


def named(resource: str) -> str:
    """A resource's name from its host's (`replica-0-disks`): under the cluster's since issue 11."""
    return f"{CLUSTER}-{resource}"


def timed(record: dict, name: str):
    """Print and keep each scenario's wall time (the suite's budget is 15 minutes)."""
    class _Timer:
        def __enter__(self):
            self.started = time.monotonic()

        def __exit__(self, *exc):
            record[name] = time.monotonic() - self.started
            print(f"\nscenario {name}: {record[name]:.1f} s")
    return _Timer()


# The release's failure detection (beacon 3 s, lease 20 s, grace 22 s) and
# restart throttling (600 s) shortened, so that the suite's many restarts
# take seconds: the same mechanisms, faster. Grace must exceed lease (2.6).
FAST_FAILURE_DETECTION = {
    "replication": {"fd_check_interval_seconds": "1", "fd_beacon_interval_seconds": "1",
                    "fd_lease_seconds": "3", "fd_grace_seconds": "4"},
    "meta_server": {"stable_rs_min_running_seconds": "5", "replica_assign_delay_ms_for_dropouts": "0"},
}


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
        "configOverrides": FAST_FAILURE_DETECTION,
        "timeouts": {"startSeconds": 90, "healthSeconds": 60, "zookeeperSeconds": 180, "metaPauseSeconds": 2},
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

    def up(self, config: dict | None = None, replace: tuple[str, ...] | list[str] = ()) -> dict:
        self.config = copy.deepcopy(config or self.config)
        self.exports = self.engine.up(stack_config("pegasus", self.config), replace=replace)
        return self.exports

    def machine(self, host: str):
        """The machine that runs the instance of `host` (`replica-0`) now (a replacement has its own)."""
        return self.engine.machine(named(host))

    def hosts(self, prefix: str) -> list:
        """The machines of the hosts whose names start with `prefix` (`replica-`)."""
        return [m for n, m in sorted(self.cloud.machines.items()) if n.startswith(named(prefix))]

    def meta_get(self, path: str) -> dict:
        """The MetaServer's answer, asked from a MetaServer host: the security groups
        let nobody else in, as on AWS (a follower redirects to the leader)."""
        meta = self.exports["metaServers"].split(",")[0]
        return json.loads(self.machine("meta-0").check(f"curl -sfL --max-time 10 'http://{meta}{path}'"))

    def zookeeper(self):
        """A kazoo session on the cluster's ensemble, through an SSH tunnel via a
        MetaServer host (only the cluster's groups may reach port 2181), checking
        that host's key as the stack holds it."""
        meta0 = self.machine("meta-0")
        pin = {"name": "meta-0", "host": meta0.ip, "port": 22, "key": self.pinned_key("meta-0"), "source": "the stack",
               "accept": "-"}
        tunnel = {"host": meta0.ip, "user": "admin", "port": 22, "private_key": self.cloud.keys.private_key,
                  "known_hosts": [pin]}
        return zookeeper_session(self.exports["zookeeperServers"], tunnel, 30)

    def pinned(self, host: str) -> dict:
        """What the stack holds for `host`'s SSH host key (its pin's outputs)."""
        return self.engine.state.get_by_name(PIN, named(f"{host}-host-key"))["extras"]

    def pinned_key(self, host: str) -> str:
        return self.pinned(host)["key"]

    def unit_started(self, machine, unit: str) -> float:
        """When the unit last entered 'active', in seconds since the epoch."""
        out = machine.check(f"systemctl show -p ActiveEnterTimestamp --value {unit} | xargs -I{{}} date -d '{{}}' +%s.%N")
        return float(out.strip())

    def commands_run(self) -> list:
        return [op for op in self.engine.last_run.operations if op.type in COMMAND_TYPES]

    def store(self) -> tuple[str, list[str]]:
        """The stack's package bucket in the region's S3 (moto) and its objects."""
        [bucket] = self.cloud.aws.buckets()
        return bucket, self.cloud.aws.objects(bucket)

    def package_key(self, package: Path) -> str:
        return f"packages/{hashlib.sha256(package.read_bytes()).hexdigest()}/{package.name}"


def package_bytes_over_ssh(cluster: Cluster) -> list[tuple[str, str, int]]:
    """Uploads of a server package by CopyToRemote (SFTP over SSH) to this cluster's machines
    (other suites in the process may upload theirs: your own servers do)."""
    ours = {m.ip for m in cluster.cloud.machines.values()}
    return [copy for copy in COPIED if copy[1].endswith(".tar.gz") and copy[0] in ours]


# Reads an object of the stack's bucket on a server with the instance's own role (IMDSv2),
# as the fetch does; prints the HTTP status.
READ_WITH_ROLE = r"""
set -euo pipefail
token=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
role=$(curl -sf -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/iam/security-credentials/)
curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/iam/security-credentials/$role" \
  | python3 -c 'import json,sys; c=json.load(sys.stdin); print("user = \"%s:%s\"" % (c["AccessKeyId"], c["SecretAccessKey"])); print("header = \"x-amz-security-token: %s\"" % c["Token"])' \
  | curl -s -K - --aws-sigv4 "aws:amz:local-1:s3" -H "x-amz-content-sha256: $(printf '' | sha256sum | cut -d ' ' -f 1)" \
      -o /dev/null -w '%{http_code}' "$1"
"""


def read_with_role(machine, url: str) -> str:
    return machine.check(f"bash -c {shlex.quote(READ_WITH_ROLE)} read {shlex.quote(url)}").strip()


@pytest.fixture(scope="module")
def cluster(local_cloud, tmp_path_factory):
    deployed = Cluster(local_cloud, tmp_path_factory.mktemp("cluster"))
    yield deployed
    destroy_what_is_left(deployed.engine)
    print("\nscenario times: " + ", ".join(f"{k} {v:.0f} s" for k, v in deployed.times.items()))


def alive_replicas(cluster: Cluster) -> dict[str, str]:
    nodes = cluster.meta_get("/meta/nodes")
    return {address: node["status"] for address, node in nodes["details"].items()}



def test_1_up(cluster):
    with timed(cluster.times, "up"):
        exports = cluster.up()
    assert exports["clusterRoot"] == f"/pegasus/{CLUSTER}"
    # Every server was checked once the last server had started, and none restarted.
    ops = {op.name: op for op in cluster.engine.last_run.operations}
    rolling = ops[f"{CLUSTER}-rolling-restart"]
    all_started = max(ops[name].ended for name in (named("meta-0-collector"), *(named(f"replica-{i}-replica") for i in range(3))))
    assert rolling.started >= all_started and not rolling.error
    assert not [name for name in ops if name.endswith(("-roll", "-check"))]
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
            assert "reps" in machine.check(f"ls {data_dir}").split()  # the server's replica directory
    # The MetaServer's ZooKeeper client log lands in its own directory (the unit's working directory).
    assert cluster.machine("meta-0").check("test -f /home/work/app/pegasus/meta/zoo.log && echo yes").strip() == "yes"
    # ZooKeeper holds the cluster root; no %{ is left in any deployed config.
    with cluster.zookeeper() as client:
        assert client.exists(f"/pegasus/{CLUSTER}")
        assert client.get_children(f"/pegasus/{CLUSTER}/lock")
    for machine in cluster.hosts("meta-") + cluster.hosts("replica-"):
        rc, out, _ = machine.ssh("grep -l '%{' /home/work/app/pegasus/*/config.ini")
        assert rc == 1 and not out.strip(), f"{machine.name}: leftover %{{ in {out}"


def test_1_b_the_package_came_from_the_stacks_store(cluster):
    # One private, encrypted bucket with one object, in the region's S3 (moto).
    bucket, objects = cluster.store()
    assert bucket.startswith("pegasus-e2e-") and objects == [cluster.package_key(cluster.package)]
    s3 = cluster.cloud.aws.client("s3")
    head = s3.head_object(Bucket=bucket, Key=objects[0], ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "AES256"
    # S3 checked the upload against the same sha256 the servers check.
    sha = hashlib.sha256(cluster.package.read_bytes()).digest()
    assert head["ChecksumSHA256"] == base64.b64encode(sha).decode()
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # Every Pegasus server fetched it itself; nothing went over SSH.
    assert package_bytes_over_ssh(cluster) == []
    for host in ("meta-0", "meta-1", "replica-0", "replica-1", "replica-2"):
        fetch = cluster.engine.state.get_by_name("command:remote:Command", named(f"{host}-package"))["extras"]["stdout"]
        assert f"fetch-package: fetched s3://{bucket}/{objects[0]}" in fetch, fetch
    # The role reads the package prefix of its bucket and nothing else; IMDSv1 is refused.
    s3.put_object(Bucket=bucket, Key="not-a-package/secret", Body=b"x")
    replica0 = cluster.machine("replica-0")
    base = f"https://{bucket}.s3.local-1.amazonaws.com"
    assert read_with_role(replica0, f"{base}/{objects[0]}") == "200"
    assert read_with_role(replica0, f"{base}/not-a-package/secret") == "403"
    s3.delete_object(Bucket=bucket, Key="not-a-package/secret")
    assert replica0.check("curl -s -o /dev/null -w '%{http_code}' "
                          "http://169.254.169.254/latest/meta-data/iam/security-credentials/").strip() == "401"
    # A ZooKeeper host has no profile: the metadata service has no role for it.
    zk0 = cluster.hosts("zk-")[0]
    assert zk0.check("t=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "
                     "http://169.254.169.254/latest/api/token); curl -s -o /dev/null -w '%{http_code}' "
                     "-H \"X-aws-ec2-metadata-token: $t\" "
                     "http://169.254.169.254/latest/meta-data/iam/security-credentials/").strip() == "404"


def only_the_health_check_ran(cluster: Cluster) -> bool:
    """An up with nothing to change still checks the servers' host keys and the cluster's health,
    and does nothing else."""
    ran = sorted((op.name, op.action) for op in cluster.engine.last_run.operations)
    return ran == EVERY_UP


def test_2_noop_up_runs_only_the_health_check(cluster):
    with timed(cluster.times, "no-op up"):
        cluster.up()
    assert only_the_health_check_ran(cluster), [(op.name, op.action) for op in cluster.engine.last_run.operations]


def test_2_b_a_change_the_cluster_cannot_take_is_refused_at_preview(cluster):
    moved = copy.deepcopy(cluster.config)
    moved["homeDir"] = "/srv/pegasus"
    with pytest.raises(DeploymentError) as error:
        cluster.engine.up(stack_config("pegasus", moved))
    assert "pegasus:homeDir is '/home/work'" in str(error.value) and "Set it back" in str(error.value)
    assert cluster.engine.last_run.kind == "preview", "the update ran after a refused preview"


HOSTS = ("zk-0", "zk-1", "zk-2", "meta-0", "meta-1", "replica-0", "replica-1", "replica-2")
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"


def offered_fingerprint(machine) -> str:
    """The fingerprint of the Ed25519 key a machine's sshd offers, read on the machine itself."""
    return machine.check(f"ssh-keygen -l -f {HOST_KEY}.pub").split()[1]


def test_2_hk_a_server_whose_host_key_changed_is_refused_and_the_rest_is_untouched(cluster):
    # Every machine offers the key the stack gave it at launch, and the stack holds that key.
    for host in HOSTS:
        assert offered_fingerprint(cluster.machine(host)) == cluster.pinned(host)["fingerprint"], host
        assert cluster.pinned(host)["source"] == "given to the instance at launch by this stack"
    replica1 = cluster.machine("replica-1")
    expected = cluster.pinned("replica-1")["fingerprint"]
    before = role_starts(cluster)
    replica1.check(f"mkdir -p /root/launch-key && cp -p {HOST_KEY} {HOST_KEY}.pub /root/launch-key/ && "
                   f"rm -f {HOST_KEY} {HOST_KEY}.pub && ssh-keygen -q -t ed25519 -N '' -f {HOST_KEY} && "
                   "systemctl restart ssh")
    offered = offered_fingerprint(replica1)
    assert offered != expected
    with timed(cluster.times, "a changed host key refused"):
        with pytest.raises(DeploymentError) as error:
            cluster.up()
    message = str(error.value)
    assert f"replica-1 ({replica1.ip}) offered another SSH host key" in message
    assert f"expected: ED25519 {expected}" in message and f"offered:  ED25519 {offered}" in message
    assert "pulumi up --replace 'urn:pulumi:e2e::pegasus::" in message and f"{named('replica-1')}'" in message
    # Refused before anything ran anywhere: the check failed, no command, no restart, no health check.
    ran = [(op.name, op.action, bool(op.error)) for op in cluster.engine.last_run.operations]
    assert ran == [(f"{CLUSTER}-host-keys", "update", True)], ran
    assert role_starts(cluster) == before
    # The machine gets its own key back (what replacing it would also do): all is as it was.
    replica1.check("cp -p /root/launch-key/* /etc/ssh/ && systemctl restart ssh")
    cluster.up()
    assert only_the_health_check_ran(cluster)


def as_made_before_host_keys(state) -> None:
    """The engine's state as the version before host keys left it, for the same resources: no key
    pair, pin or check, no user data or host-key tag on the instances, no key on any connection or
    ssh access."""
    gone = {urn for urn, r in state.resources.items() if r["type"].rsplit(":", 1)[-1] in
            ("HostKeyPair", "HostKeyPin", "HostKeyCheck")}
    for urn in gone:
        state.remove(urn)
    for urn, record in list(state.resources.items()):
        record = copy.deepcopy(record)
        record["dependencies"] = [d for d in record.get("dependencies", []) if d not in gone]
        for values in (record["inputs"], record["extras"]):
            values.pop("userData", None)
            if isinstance(values.get("tags"), dict):
                values["tags"].pop("pegasus:host-key", None)
            connection = values.get("connection")
            if isinstance(connection, dict):
                connection.pop("hostKey", None)
                if isinstance(connection.get("proxy"), dict):
                    connection["proxy"].pop("hostKey", None)
            for access in (values.get("access"), values.get("tunnel")):
                if isinstance(access, dict):
                    access.pop("known_hosts", None)
        state.put(urn, record)


def test_3_replica_config_change_rolls_replicas_one_at_a_time(cluster):
    metas_before = {m.name: cluster.unit_started(m, "pegasus-meta.service") for m in cluster.hosts("meta-")}
    config = copy.deepcopy(cluster.config)
    config["replica"]["configOverrides"] = {"replication": {"gc_interval_ms": "45000"}}
    # The preview names exactly what the change touches: the replicas' configs and restarts.
    planned = {op.name: op.action for op in cluster.engine.preview(stack_config("pegasus", config)).operations}
    assert planned == {**{named(f"replica-{i}-replica-config"): "update" for i in range(3)},
                       f"{CLUSTER}-rolling-restart": "update", **dict(EVERY_UP)}
    with timed(cluster.times, "config change"):
        cluster.up(config)
    ops = {op.name: op for op in cluster.engine.last_run.operations}
    assert set(ops) == set(planned)
    # Each replica restarted once, one after the other in the roll's order, inside the
    # rolling restart; the metas were not touched.
    starts = [cluster.unit_started(m, "pegasus-replica.service") for m in cluster.hosts("replica-")]
    assert all(a < b for a, b in zip(starts, starts[1:])), starts
    rolling = ops[f"{CLUSTER}-rolling-restart"]
    # (systemd reports whole seconds: allow one second of rounding)
    assert all(rolling.started - 1 <= s <= rolling.ended for s in starts)
    assert {m.name: cluster.unit_started(m, "pegasus-meta.service") for m in cluster.hosts("meta-")} == metas_before
    for machine in cluster.hosts("replica-"):
        assert "gc_interval_ms = 45000" in machine.check("cat /home/work/app/pegasus/replica/config.ini")
    assert set(alive_replicas(cluster).values()) == {"ALIVE"}


def test_4_bad_start_is_explained(cluster):
    good = copy.deepcopy(cluster.config)
    bad = copy.deepcopy(good)
    bad["replica"]["configOverrides"] = {"replication": {"fd_beacon_interval_seconds": "three"}}
    with timed(cluster.times, "bad change"):
        with pytest.raises(DeploymentError) as error:
            cluster.up(bad)
    message = str(error.value)
    assert f"{CLUSTER}-rolling-restart" in message
    assert "replica-0/replica did not restart healthy" in message
    assert "fd_beacon_interval_seconds" in message  # the server's refusal, from its log tail
    assert "roll stopped at" in message
    # The roll stopped at the first server: the others still run their old files.
    for machine in cluster.hosts("replica-")[1:]:
        assert "fd_beacon_interval_seconds = three" not in machine.check("cat /home/work/app/pegasus/replica/config.ini")
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
    # Their list of servers grew (the rolling restart restarts none of the others).
    cluster_checks = {f"{CLUSTER}-health", f"{CLUSTER}-host-keys", f"{CLUSTER}-replica-removal",
                      f"{CLUSTER}-rolling-restart"}
    assert touched - cluster_checks, "nothing was created"
    assert all(name.startswith(named("replica-3")) or name in cluster_checks for name in touched), touched
    assert {op.action for op in cluster.engine.last_run.operations if op.name.startswith(named("replica-3"))} == {"create"}
    assert len(exports["replicaServers"]) == 4
    assert alive_replicas(cluster) == {r: "ALIVE" for r in exports["replicaServers"]}


def role_starts(cluster: Cluster) -> dict[str, float]:
    """When each Pegasus unit last became active, per host and role."""
    starts = {}
    for machine in cluster.hosts("meta-") + cluster.hosts("replica-"):
        for unit in ROLE_UNITS:
            rc, out, _ = machine.ssh(f"systemctl is-active {unit}")
            if out.strip() == "active":
                starts[f"{machine.name}/{unit}"] = cluster.unit_started(machine, unit)
    return starts


def tables_healthy(cluster: Cluster) -> bool:
    apps = cluster.meta_get("/meta/apps?detail")
    return all(t["fully_healthy"] == t["partition_count"] for t in apps.get("healthy_info", {}).values())


def cluster_healthy(cluster: Cluster) -> bool:
    """Every table fully healthy and every ReplicaServer of the stack ALIVE (a removed
    server's UNALIVE record stays until the MetaServer restarts)."""
    status = alive_replicas(cluster)
    return tables_healthy(cluster) and all(status.get(r) == "ALIVE" for r in cluster.exports["replicaServers"])


def machine_with_address(cluster: Cluster, prefix: str, address: str):
    ip = address.split(":")[0]
    return next(m for m in cluster.hosts(prefix) if f" {ip}/" in m.check("ip -o -4 addr show"))


def test_6_reboots_come_back_and_change_nothing(cluster):
    leader = machine_with_address(cluster, "meta-", cluster.meta_get("/meta/cluster")["primary_meta_server"])
    with timed(cluster.times, "reboots"):
        for name in ("replica-1", leader.name.removeprefix(named(""))):
            cluster.engine.reboot(named(name))
            machine = cluster.machine(name)
            for disk in ((1, 2) if name.startswith("replica") else ()):
                source = machine.check(f"findmnt -n -o SOURCE /home/work/ssd{disk}").strip()
                assert source.startswith("/dev/loop"), f"{name}: ssd{disk} is not mounted after the reboot"
            wait_for(lambda: cluster_healthy(cluster), f"a healthy cluster after {name} rebooted", 90)
        cluster.up()
    assert only_the_health_check_ran(cluster), "an up after reboots must find nothing to do"


def test_7_a_new_ssh_key_restarts_nothing(cluster, tmp_path):
    before = role_starts(cluster)
    new_key = generate_key_pair(tmp_path, comment="rotated")
    # README's procedure: the new public key on every server first, then the stack.
    for machine in cluster.cloud.machines.values():
        machine.check(f"echo {shlex.quote(new_key.public_key)} >> /home/admin/.ssh/authorized_keys")
    config = copy.deepcopy(cluster.config)
    config["ssh"] = {"privateKey": new_key.private_key, "publicKey": new_key.public_key}
    with timed(cluster.times, "key rotation"):
        cluster.up(config)
    assert cluster.commands_run(), "a new connection reruns the commands"
    assert not [op for op in cluster.engine.last_run.operations if op.type == "aws:ec2/instance:Instance"]
    assert role_starts(cluster) == before, "a new SSH key restarted a server"


def run_load_on(cluster: Cluster, stop_file: str) -> None:
    """Steady reads and writes on every partition from a MetaServer host (the groups
    let nobody else reach the servers), until stop_file exists."""
    meta0 = cluster.machine("meta-0")
    client = base64.b64encode(STANDIN_CLIENT.read_bytes()).decode()
    meta0.check(f"echo {client} | base64 -d > /root/standin_client.py && rm -f {stop_file} /root/load.json")
    metas = cluster.exports["metaServers"]
    meta0.check(f"nohup python3 /root/standin_client.py {metas} stat 600 {stop_file} "
                ">/root/load.json 2>/root/load.err </dev/null &")


def load_result(cluster: Cluster, stop_file: str, operation: str) -> dict:
    meta0 = cluster.machine("meta-0")
    meta0.check(f"touch {stop_file}")
    try:
        wait_for(lambda: meta0.check("cat /root/load.json").strip(), "the client's figures", 60)
    except AssertionError as error:
        _, out, _ = meta0.ssh("tail -n 30 /root/load.err; pgrep -af standin_client || echo no client running")
        raise AssertionError(f"{error}; the client's stderr and process:\n{out}") from None
    stats = json.loads(meta0.check("cat /root/load.json"))
    total = stats["ok"] + stats["failed"]
    print(f"\navailability during {operation}: {stats['failed']}/{total} requests failed, "
          f"{len(stats['below_two'])} partitions ever below 2 replicas ({stats['errors']})")
    assert total > 0
    return stats


def test_8_package_upgrade_rolls_every_server_and_removes_the_old_release(cluster, tmp_path):
    new_package = build_package(tmp_path / "upgrade", version="2.5.1", git_sha="a1b2c3d")
    config = copy.deepcopy(cluster.config)
    config["package"] = str(new_package)
    before = role_starts(cluster)
    run_load_on(cluster, "/root/stop-load")
    with timed(cluster.times, "upgrade"):
        cluster.up(config)
    stats = load_result(cluster, "/root/stop-load", "a rolling upgrade without admin tools")
    after = role_starts(cluster)
    # Pegasus's order: every ReplicaServer, then the MetaServers, then the Collector; one at a time.
    assert_rolled_in_pegasus_order(after)
    assert len(set(after.values())) == len(after), f"two servers restarted in the same second: {after}"
    after = role_starts(cluster)
    assert all(after[unit] > before[unit] for unit in before), "a server kept running the old release"
    for machine in cluster.hosts("meta-") + cluster.hosts("replica-"):
        releases = machine.check("ls /home/work/app/pegasus/releases").split()
        assert len(releases) == 1 and releases[0].startswith("pegasus-server-2.5.1-a1b2c3d"), releases
    assert cluster.meta_get("/version")["Version"] == "2.5.1"
    # The new package was uploaded once, to a new key; the old object is gone.
    bucket, objects = cluster.store()
    assert objects == [cluster.package_key(new_package)]
    assert package_bytes_over_ssh(cluster) == []
    for host in ("meta-0", "replica-0"):
        fetch = cluster.engine.state.get_by_name("command:remote:Command", named(f"{host}-package"))["extras"]["stdout"]
        assert f"fetch-package: fetched s3://{bucket}/{objects[0]}" in fetch, fetch
    # Without the admin tools, primaries are not moved first: the figure is what it is,
    # but no partition ever drops below 2 replicas (one server at a time, health-gated).
    assert stats["below_two"] == []


def test_9_a_replaced_replica_keeps_its_data_and_rejoins(cluster):
    machine = cluster.machine("replica-2")
    machine.check("echo keep-me > /home/work/ssd1/pegasus/e2e/replace-sentinel && sync")
    with timed(cluster.times, "replace"):
        cluster.up(replace=[named("replica-2")])
    replaced = cluster.machine("replica-2")
    assert replaced.check("cat /home/work/ssd1/pegasus/e2e/replace-sentinel").strip() == "keep-me"
    assert replaced.check("systemctl is-active pegasus-replica.service").strip() == "active"
    assert replaced.check("ls /home/work/app/pegasus/releases").split()
    # The new machine came with the stack's key for replica-2, given at launch: never trusted on
    # a first answer.
    pin = cluster.pinned("replica-2")
    assert pin["source"] == "given to the instance at launch by this stack"
    assert pin["fingerprint"] == offered_fingerprint(replaced)
    wait_for(lambda: cluster_healthy(cluster), "a healthy cluster after the replacement", 90)


def replica_count(cluster: Cluster, address: str) -> int:
    nodes = cluster.meta_get("/meta/nodes?detail")["details"]
    return int(nodes.get(address, {}).get("replica_count") or 0)


def give_replicas_to(cluster: Cluster, address: str) -> None:
    """The server at `address` (replica-3) takes over replicas: while replica-0 is down, the
    MetaServers re-replicate its partitions onto the others (they do not balance by themselves)."""
    replica0 = cluster.machine("replica-0")
    replica0.check("systemctl stop pegasus-replica.service")
    wait_for(lambda: replica_count(cluster, address) > 0 and tables_healthy(cluster),
             "replica-3 to take over replicas of replica-0", 120)
    replica0.check("systemctl start pegasus-replica.service")
    wait_for(lambda: cluster_healthy(cluster), "replica-0 back", 120)


def assert_rolled_in_pegasus_order(starts: dict[str, float]) -> None:
    """Every ReplicaServer restarted before the MetaServers, and they before the Collector
    (`starts`: when each host/unit last became active, from role_starts)."""
    restarted = sorted(starts, key=starts.get)
    kinds = [unit.split("/")[1] for unit in restarted]
    roll_order = ["pegasus-replica.service", "pegasus-meta.service", "pegasus-collector.service"]
    assert kinds == sorted(kinds, key=roll_order.index), restarted


def test_a_scale_in_refuses_a_server_with_replicas_then_removes_a_drained_one(cluster):
    config = copy.deepcopy(cluster.config)
    config["replica"]["count"] = 3
    leaving = cluster.exports["replicaServers"][3]
    # The server to remove must hold replicas: while replica-0 is down, the
    # MetaServers re-replicate its partitions onto the others, replica-3 among them.
    give_replicas_to(cluster, leaving)
    with timed(cluster.times, "scale in"):
        with pytest.raises(DeploymentError) as error:
            cluster.up(config)
        assert f"replica-3 ({leaving}) still holds" in str(error.value) and "Nothing was stopped" in str(error.value)
        assert cluster.machine("replica-3").check("systemctl is-active pegasus-replica.service").strip() == "active"
        # Drained by hand (without the admin shell: stopped, and the MetaServers move its partitions).
        run_load_on(cluster, "/root/stop-load")
        cluster.machine("replica-3").check("systemctl stop pegasus-replica.service")
        wait_for(lambda: replica_count(cluster, leaving) == 0 and tables_healthy(cluster),
                 "the MetaServers to move replica-3's partitions", 120)
        cluster.up(config)
        load_result(cluster, "/root/stop-load", "a scale-in drained by stopping the server")
    deleted = {op.name for op in cluster.engine.last_run.operations if op.action == "delete"}
    assert named("replica-3") in deleted and not any(n.startswith(named("replica-2")) for n in deleted)
    assert len(cluster.exports["replicaServers"]) == 3
    # Its UNALIVE record stays until a MetaServer restarts; the next up reports it and passes.
    cluster.up(config)
    assert only_the_health_check_ran(cluster)


def test_a_2_with_admin_tools_a_rolling_upgrade_moves_primaries_first_and_no_request_fails(cluster, tmp_path):
    config = copy.deepcopy(cluster.config)
    config["toolsPackage"] = str(build_tools_package(tmp_path / "tools"))
    config["package"] = str(build_package(tmp_path / "upgrade", version="2.5.2", git_sha="b2c3d4e"))
    before = role_starts(cluster)
    run_load_on(cluster, "/root/stop-load")
    with timed(cluster.times, "upgrade with admin tools"):
        cluster.up(config)
    stats = load_result(cluster, "/root/stop-load", "a rolling upgrade with admin tools")
    # Installed on every MetaServer host before the roll (one release directory per build).
    for machine in cluster.hosts("meta-"):
        tools = machine.check("ls /home/work/app/pegasus/tools").split()
        assert len(tools) == 1 and tools[0].startswith("pegasus-tools-2.5.0-8f3c2ab"), tools
    after = role_starts(cluster)
    assert all(after[unit] > before[unit] for unit in before), "a server kept running the old release"
    assert_rolled_in_pegasus_order(after)
    # Each ReplicaServer's primaries moved and its replicas downgraded before its restart.
    assert stats["failed"] == 0 and stats["below_two"] == [], stats
    assert cluster.meta_get("/version")["Version"] == "2.5.2"


def test_a_3_with_admin_tools_a_scale_in_drains_the_server_then_deletes_it(cluster):
    config = copy.deepcopy(cluster.config)
    config["replica"]["count"] = 4
    cluster.up(config)
    leaving = cluster.exports["replicaServers"][3]
    # Give the new server replicas (the MetaServers do not balance at the steady level).
    give_replicas_to(cluster, leaving)
    config["replica"]["count"] = 3
    run_load_on(cluster, "/root/stop-load")
    with timed(cluster.times, "scale in with admin tools"):
        cluster.up(config)
    stats = load_result(cluster, "/root/stop-load", "a scale-in with admin tools")
    assert stats["failed"] == 0 and stats["below_two"] == [], stats
    deleted = {op.name for op in cluster.engine.last_run.operations if op.action == "delete"}
    assert named("replica-3") in deleted and not any(n.startswith(named("replica-2")) for n in deleted)
    # The MetaServers restarted after the removal: no UNALIVE record left behind.
    assert leaving not in alive_replicas(cluster)
    assert cluster_healthy(cluster)
    cluster.up(config)
    assert only_the_health_check_ran(cluster)


def test_b_missing_data_disk_keeps_the_server_down_and_the_next_up_says_so(cluster):
    volume_id = cluster.engine.state.get_by_name("aws:ebs/volume:Volume", named("replica-2-data1"))["id"]
    machine = cluster.machine("replica-2")
    machine.check("systemctl stop pegasus-replica.service && umount /home/work/ssd1")
    cluster.cloud.detach_volume(volume_id)
    with timed(cluster.times, "missing disk"):
        cluster.engine.reboot(named("replica-2"))
        machine = cluster.machine("replica-2")
        time.sleep(5)
        assert machine.check("systemctl is-active pegasus-replica.service || true").strip() != "active"
        rc, out, _ = machine.ssh("ls -A /home/work/ssd1")
        assert rc != 0 or not out.strip(), f"the server wrote to the root disk: {out}"
        with pytest.raises(DeploymentError) as error:
            cluster.up()
    message = str(error.value)
    assert f"{CLUSTER}-health" in message and "not serving: replica-2/replica" in message
    # That server's own status, journal and log tail, fetched from it over SSH.
    assert "--- replica-2/replica (" in message and "journal lines of pegasus-replica.service" in message
    assert "RequiresMountsFor" in message or "/home/work/ssd1" in message, message[-3000:]
    cluster.cloud.attach_volume(machine, volume_id)
    cluster.engine.reboot(named("replica-2"))
    wait_for(lambda: cluster_healthy(cluster), "a healthy cluster once the disk is back", 120)
    cluster.up()


def test_c_disk_preparation_keeps_existing_data(cluster):
    replica = cluster.machine("replica-0")
    replica.check("echo keep-me > /home/work/ssd1/sentinel && sync")
    prepare = cluster.engine.state.get_by_name("command:remote:Command", named("replica-0-disks"))["inputs"]["create"]
    rc, out, err = replica.ssh(prepare)
    assert rc == 0, err
    assert "formatted" not in out and "kept" in out
    assert replica.check("cat /home/work/ssd1/sentinel").strip() == "keep-me"
    assert replica.check("grep -c ' /home/work/ssd1 ' /etc/fstab").strip() == "1"


def test_c_hk_a_stack_made_before_host_keys_records_them_once_and_restarts_nothing(cluster):
    hosts = sorted(r["inputs"]["tags"]["pegasus:node"] for r in cluster.engine.state.resources.values()
                   if r["type"] == "aws:ec2/instance:Instance")
    as_made_before_host_keys(cluster.engine.state)
    before = role_starts(cluster)
    preview = cluster.engine.preview(stack_config("pegasus", cluster.config))
    planned: dict[tuple[str, str], int] = {}
    for op in preview.operations:
        kind = op.type.rsplit(":", 1)[-1]
        planned[(kind, op.action)] = planned.get((kind, op.action), 0) + 1
    print("\npreview of a stack made before host keys, on its first up with them: "
          + ", ".join(f"{n} {kind} {action}" for (kind, action), n in sorted(planned.items())))
    # A key pair (for instances launched from now on), a pin and the check are made; no instance,
    # volume or NIC changes (new user data would stop and start the instance), nothing is replaced
    # or deleted; every command and upload carries its server's key from now on (an update:
    # pulumi-command runs a command's script again, and each one leaves a running server alone).
    assert planned.pop(("HostKeyPair", "create")) == planned.pop(("HostKeyPin", "create")) == len(hosts)
    assert planned.pop(("HostKeyCheck", "create")) == 1
    assert {action for _, action in planned} == {"update"}
    kinds = {kind for kind, _ in planned}
    assert {"Command", "RollingRestart", "ClusterHealth", "ZooKeeperPathGuard"} <= kinds <= {
        "Command", "CopyToRemote", "RollingRestart", "ClusterHealth", "ZooKeeperPathGuard"}, planned
    commands = [r for r in cluster.engine.state.resources.values() if r["type"] == "command:remote:Command"]
    assert planned[("Command", "update")] == len(commands)
    with timed(cluster.times, "first up with host keys on an older stack"):
        cluster.up()
    assert cluster.engine.last_run.stopped == [], "an instance was stopped for new user data"
    assert not [op for op in cluster.engine.last_run.operations if op.type == "aws:ec2/instance:Instance"]
    assert role_starts(cluster) == before, "adopting host keys restarted a server"
    for host in hosts:
        pin = cluster.pinned(host)
        assert pin["source"].startswith("recorded on "), (host, pin["source"])
        assert pin["fingerprint"] == offered_fingerprint(cluster.machine(host)), host
    cluster.up()
    assert only_the_health_check_ran(cluster)


def test_c_hk_2_an_old_instance_replaced_is_not_trusted_until_its_key_is_accepted(cluster):
    # Pulumi launches a replacement with the old instance's user data (ignored inputs keep their
    # old values): none, for an instance launched before host keys. Its key is nobody's word.
    with timed(cluster.times, "an old instance replaced, then its key accepted"):
        with pytest.raises(DeploymentError) as error:
            cluster.up(replace=[named("replica-1")])
        replaced = cluster.machine("replica-1")
        instance = next(r["id"] for r in cluster.engine.state.resources.values()
                        if r["type"] == "aws:ec2/instance:Instance" and r["name"] == named("replica-1"))
        message = str(error.value)
        assert f"{named('replica-1-host-key')}: update failed" in message
        assert f"its new instance {instance} was launched without a host key from this stack" in message
        assert f"aws ec2 get-console-output --instance-id {instance} --latest" in message
        # The operator read the key on its console and accepts it: `pulumi up --replace` on its pin.
        cluster.up(replace=[named("replica-1-host-key")])
    pin = cluster.pinned("replica-1")
    assert pin["source"].startswith("recorded on ") and pin["fingerprint"] == offered_fingerprint(replaced)
    assert replaced.check("systemctl is-active pegasus-replica.service").strip() == "active"
    wait_for(lambda: cluster_healthy(cluster), "a healthy cluster after the replacement", 90)
    cluster.up()
    assert only_the_health_check_ran(cluster)


def test_d_destroy_leaves_nothing(cluster):
    pegasus_hosts = {r["name"] for r in cluster.engine.state.resources.values()
                     if r["type"] == "aws:ec2/instance:Instance" and r["name"].startswith((named("meta-"), named("replica-")))}
    seen: dict = {"hosts": set()}

    def before_delete(record: dict) -> None:
        # ZooKeeper, checked while it still runs: the first ZooKeeper removal is next.
        if record["name"].startswith(named("zk-")) and record["name"].endswith("-zookeeper") and "path" not in seen:
            with cluster.zookeeper() as client:
                seen["path"] = client.exists(f"/pegasus/{CLUSTER}")
                seen["pegasus"] = client.exists("/pegasus")
        # Each Pegasus host, checked just before its instance goes.
        if record["type"] == "aws:ec2/instance:Instance" and record["name"] in pegasus_hosts:
            machine = cluster.engine.machine(record["name"])
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
    # The package store went with the stack: no bucket, object, role or profile is left.
    assert cluster.cloud.aws.buckets() == []
    iam = cluster.cloud.aws.client("iam")
    assert not [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(f"{CLUSTER}-")]
    assert iam.list_instance_profiles()["InstanceProfiles"] == []
    # And no package crossed the SSH upload path during the whole suite.
    assert package_bytes_over_ssh(cluster) == []
