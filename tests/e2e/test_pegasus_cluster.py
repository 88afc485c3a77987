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
import re
import shlex
import threading
import time
from pathlib import Path

import pytest

from components.operations import cluster_status
from components.operations.zookeeper_path_guard import zookeeper_session
from tests.e2e.applications import Load, reaches
from tests.e2e import monitoring_checks as mon
from components.operations.admin_shell import AdminShell
from tests.e2e.localcloud.engine import DeploymentError, Engine
from tests.e2e.localcloud.faults import cut_ssh_serving, unit_starts_since, up_killed_when
from tests.e2e.localcloud.remote_command import COPIED
from tests.support.capabilities import CAP_SYS_RESOURCE, ONLINE_RESIZE_REASON, has_capability
from tests.e2e.localcloud.testing import destroy_what_is_left, skip_unless_local_cloud_possible, wait_for
from tests.support.package_builder import build_package, build_tools_package
from tools import status as status_tool
from tools.localcloud.sshkeys import generate_key_pair
from tests.support.pulumi_program import PROGRAM, stack_config

pytestmark = [pytest.mark.e2e, skip_unless_local_cloud_possible()]

CLUSTER = "e2e"
COMMAND_TYPES = ("command:remote:Command", "command:remote:CopyToRemote")
PIN = "pulumi-python:dynamic/pegasus:HostKeyPin"
# What runs at every up, changed or not: the check of every server's host key, then the cluster's health.
EVERY_UP = [(f"{CLUSTER}-health", "update"), (f"{CLUSTER}-host-keys", "update")]
ROLE_UNITS = ("pegasus-e2e-meta.service", "pegasus-e2e-replica.service", "pegasus-e2e-collector.service")


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


# The monitoring's scrapes and down alerts shortened for the same reason (production: 15 s
# and 60 s). Grafana needs Grafana's own apt repository, which the machines cannot reach:
# tests/unit/test_monitoring_files.py checks its files instead.
FAST_MONITORING = {"scrapeIntervalSeconds": 2, "downForSeconds": 4, "grafana": {"enabled": False}}


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
        # On a host of its own, as on AWS by default (its volume the smallest allowed).
        "monitoring": {**FAST_MONITORING, "dataDiskGiB": 10},
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

    def load(self, name: str) -> Load:
        """Steady reads and writes from the application machine (in <cluster>-clients), started."""
        return Load(self.app, self.exports["metaServers"], name,
                    servers=lambda: self.hosts("meta-") + self.hosts("replica-")).start()


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
    for machine in list(deployed.engine.applications):
        if machine in local_cloud.machines:
            deployed.engine.terminate_application(local_cloud.machines[machine])
    destroy_what_is_left(deployed.engine)
    print("\nscenario times: " + ", ".join(f"{k} {v:.0f} s" for k, v in deployed.times.items()))


def stack_status(cluster: Cluster) -> cluster_status.Status:
    """What `make status` shows (tools/status.py), from the stack's outputs and over SSH with its key."""
    return status_tool.collect(cluster.exports, cluster.cloud.keys.private_key)


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
    assert not [name for name, op in ops.items() if name.endswith(("-roll", "-check")) and op.type in COMMAND_TYPES]
    # Every unit is active where it should be.
    for machine in cluster.hosts("zk-"):
        assert machine.check("systemctl is-active pegasus-zookeeper.service").strip() == "active"
    meta0 = cluster.machine("meta-0")
    for unit in ("pegasus-e2e-meta.service", "pegasus-e2e-collector.service"):
        assert meta0.check(f"systemctl is-active {unit}").strip() == "active"
    for machine in cluster.hosts("replica-"):
        assert machine.check("systemctl is-active pegasus-e2e-replica.service").strip() == "active"
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


def test_1_c_applications_reach_the_client_ports_from_their_group_and_nothing_else_does(cluster):
    started = time.monotonic()
    clients = cluster.exports["clientSecurityGroupId"]
    assert clients.startswith("sg-")
    # An application's instance launched into <cluster>-clients; another one in no group of the stack.
    cluster.app = cluster.engine.launch_application(named("app-0"), [clients])
    outsider = cluster.engine.launch_application(named("outsider"), [])
    meta, replica = cluster.exports["metaServers"].split(",")[0], cluster.exports["replicaServers"][0]
    zookeeper = cluster.exports["zookeeperServers"].split(",")[0]
    assert (reaches(cluster.app, meta), reaches(cluster.app, replica)) == ("open", "open")
    # Security groups drop what they do not allow: the connection times out, as on AWS.
    assert [reaches(outsider, a) for a in (meta, replica, zookeeper)] == ["timeout"] * 3
    # 2181 only for the MetaServers (and the ensemble itself): not applications, not ReplicaServers.
    assert reaches(cluster.app, zookeeper) == "timeout"
    assert reaches(cluster.machine("replica-0"), zookeeper) == "timeout"
    assert reaches(cluster.machine("meta-0"), zookeeper) == "open"
    # ZooKeeper listens on its cluster address only (clientPortAddress).
    zk0 = cluster.hosts("zk-")[0]
    listening = zk0.check("ss -Htln 'sport = :2181' | awk '{print $4}'").split()
    # (Java listens on the IPv4 address as an IPv4-mapped IPv6 one)
    assert [a.replace("[::ffff:", "").replace("]", "") for a in listening] == [f"{zk0.ip}:2181"], listening
    # The cluster's path: anyone reads it, only the MetaServers' hosts and the path guard write it.
    with cluster.zookeeper() as client:
        acl = {(a.id.scheme, a.id.id, a.perms) for a in client.get_acls(f"/pegasus/{CLUSTER}")[0]}
    metas = {m.ip for m in cluster.hosts("meta-")} | {n.ip for m in cluster.hosts("meta-") for n in m.nics.values()}
    assert {(s, i) for s, i, _ in acl if s == "ip"} == {("ip", ip) for ip in metas}
    assert ("world", "anyone", 1) in acl and len([a for a in acl if a[0] == "digest"]) == 1
    cluster.engine.terminate_application(outsider)
    # Apache's Python client works from there: a short steady load.
    load = cluster.load("steady")
    time.sleep(10)
    stats = load.result("steady operation")
    assert stats["errors"] == 0 and stats["below_two"] == [], stats
    print(f"\nscenario client access: {time.monotonic() - started:.1f} s")


def expected_targets(cluster: Cluster) -> dict[str, set[str]]:
    """What Prometheus scrapes: every host's node_exporter, every Pegasus process, ZooKeeper
    (through the exporter), and the monitoring's own processes."""
    replicas = {f"replica-{i}" for i in range(len(cluster.exports["replicaServers"]))}
    metas = {f"meta-{i}" for i in range(cluster.config["meta"]["count"])}
    zks = {f"zk-{i}" for i in range(cluster.config["zookeeper"]["count"])}
    return {"node": replicas | metas | zks | {"monitoring-0"}, "pegasus-meta": metas, "pegasus-replica": replicas,
            "pegasus-collector": {"meta-0"}, "zookeeper": set(cluster.exports["zookeeperServers"].split(",")),
            "prometheus": {"127.0.0.1:9090"}, "alertmanager": {"127.0.0.1:9093"},
            "pegasus-exporter": {"127.0.0.1:9760"}}


def test_1_d_prometheus_scrapes_every_server_and_host(cluster):
    monitoring = cluster.machine("monitoring-0")
    with timed(cluster.times, "monitoring: every target up"):
        mon.wait_until_every_target_is_up(monitoring, expected_targets(cluster), 60)
    # Its storage is on its own (encrypted, on AWS) volume; the Pegasus processes export on the
    # ports the program gave them, the Collector beside the MetaServer on the next one.
    assert monitoring.check("findmnt -n -o SOURCE --target /var/lib/pegasus-monitoring/prometheus").startswith("/dev/loop")
    assert "prometheus_port = 9092" in cluster.machine("meta-0").check("cat /home/work/app/pegasus/collector/config.ini")
    # node_exporter answers the monitoring host only: the cluster's own hosts are not in its group.
    replica0 = cluster.machine("replica-0").ip
    assert monitoring.ssh(f"curl -sf -o /dev/null --max-time 3 http://{replica0}:9100/metrics")[0] == 0
    assert cluster.machine("meta-0").ssh(f"curl -sf -o /dev/null --max-time 3 http://{replica0}:9100/metrics")[0] != 0


def test_1_e_a_stopped_replica_server_fires_its_down_alert_and_it_resolves(cluster):
    down_for, scrape = FAST_MONITORING["downForSeconds"], FAST_MONITORING["scrapeIntervalSeconds"]
    with timed(cluster.times, "monitoring: down alert fires and resolves"):
        times = mon.down_alert_fires_and_resolves(
            cluster.machine("monitoring-0"), cluster.machine("replica-1"), "pegasus-e2e-replica.service",
            {"alertname": "PegasusServerDown", "node": "replica-1", "role": "replica"},
            'up{job="pegasus-replica", node="replica-1"}', down_for, scrape,
            back=lambda: wait_for(lambda: cluster_healthy(cluster), "replica-1 back", 120))
    mon.print_alert_times("2.5", times, down_for, scrape)


def test_1_f_every_dashboard_panel_has_data(cluster):
    load = cluster.load("dashboards")
    with timed(cluster.times, "monitoring: every panel has data"):
        time.sleep(5 * FAST_MONITORING["scrapeIntervalSeconds"])  # a rate needs samples of the load
        missing = mon.panels_without_data(cluster.machine("monitoring-0"), "2.5", FAST_MONITORING["scrapeIntervalSeconds"])
    load.result("the dashboards' check")
    assert missing == {}, missing


def only_the_health_check_ran(cluster: Cluster) -> bool:
    """An up with nothing to change still checks the servers' host keys and the cluster's health,
    and does nothing else."""
    ran = sorted((op.name, op.action) for op in cluster.engine.last_run.operations)
    return ran == EVERY_UP


def test_2_noop_up_runs_only_the_health_check(cluster):
    with timed(cluster.times, "no-op up"):
        cluster.up()
    assert only_the_health_check_ran(cluster), [(op.name, op.action) for op in cluster.engine.last_run.operations]


SERVER_USER = "pegasus"
OWNER_FILE = "/var/lib/pegasus-pulumi/owner"
# What the unit gained with the dedicated user (issue 19): an older version's unit has none of it.
HARDENING_LINE = re.compile(r"^(User|UMask|NoNewPrivileges|CapabilityBoundingSet|Protect\w+|ReadWritePaths|Private\w+"
                            r"|Restrict\w+|LockPersonality|SystemCallArchitectures)=.*\n", flags=re.M)
# Sets a server back to what the version before issue 19 left ($1 role, $2 its unit, $3 the
# older unit's text, then its directories): that version made no server user either.
AS_AN_OLDER_VERSION_LEFT_IT = r"""
set -euo pipefail
role=$1 unit=$2 legacy=$3
shift 3
systemctl disable --now "$unit"
rm "/etc/systemd/system/$unit"
userdel pegasus
printf '%s' "$legacy" >"/etc/systemd/system/pegasus-$role.service"
systemctl daemon-reload
for dir in "$@"; do rm -f "$dir/.created-by-pegasus-pulumi"; chown -R root:root "$dir"; done
chmod 644 "/home/work/app/pegasus/$role/config.ini" /home/work/app/pegasus/staged/*
chown admin /home/work/app/pegasus/staged && chmod 755 /home/work/app/pegasus/staged
: >/home/work/app/pegasus/.created-by-pegasus-pulumi
rm -rf /var/lib/pegasus-pulumi
systemctl enable --now "pegasus-$role.service"
"""


def server_count(cluster: Cluster) -> int:
    """Pegasus servers the stack runs: MetaServers, ReplicaServers and the Collector."""
    config = cluster.config
    return config["meta"]["count"] + config["replica"]["count"] + (1 if config["collector"]["enabled"] else 0)


def role_dirs(role: str, disks: int = 2) -> list[str]:
    dirs = [f"/home/work/app/pegasus/{role}"]
    return dirs + ([f"/home/work/ssd{i}/pegasus/{CLUSTER}" for i in range(1, disks + 1)] if role == "replica" else [])


def run_as_the_server_user_and_closed_to_others(cluster: Cluster) -> int:
    """Every Pegasus server of the cluster runs as the server user, and the login user
    (neither root nor in its group) can read none of its files. Returns the servers seen."""
    seen = 0
    for machine in cluster.hosts("meta-") + cluster.hosts("replica-"):
        for unit in ROLE_UNITS:
            if machine.ssh(f"systemctl is-active --quiet {unit}")[0] != 0:
                continue
            seen += 1
            role = unit.split("-")[-1].removesuffix(".service")
            pid = machine.check(f"systemctl show -p MainPID --value {unit}").strip()
            assert machine.check(f"ps -o user= -p {pid}").strip() == SERVER_USER, f"{machine.name}: {unit}"
            for path in [*role_dirs(role), f"/home/work/app/pegasus/{role}/config.ini",
                         f"/home/work/app/pegasus/staged/{role}.config.ini"]:
                rc, _, _ = machine.ssh(f"runuser -u admin -- cat {path} || runuser -u admin -- ls {path}")
                assert rc != 0, f"{machine.name}: the login user reads {path}"
    return seen


def as_an_older_version_left_it(cluster: Cluster, host: str, role: str) -> None:
    """Sets one server back to what the version before issue 19 left: its unit without the
    cluster's name and run as root, its directories root's and unmarked, config.ini and the
    staged files world-readable, an empty app dir marker and no host mark; and the stack's
    state as that version recorded it (older scripts, the record before the server user), so
    that the next up reruns each command and restarts that server, as an upgrade does."""
    machine = cluster.machine(host)
    unit = f"pegasus-{CLUSTER}-{role}.service"
    legacy = HARDENING_LINE.sub("", machine.check(f"cat /etc/systemd/system/{unit}"))
    args = " ".join(shlex.quote(a) for a in (role, unit, legacy, *role_dirs(role)))
    machine.check(f"bash -c {shlex.quote(AS_AN_OLDER_VERSION_LEFT_IT)} older {args}")
    state = cluster.engine.state
    for name, field in ((f"{host}-prepare", "create"), (f"{host}-{role}-config", "stdin"), (f"{host}-{role}", "create")):
        [urn] = [u for u, r in state.resources.items() if r["name"] == named(name) and r["type"] == COMMAND_TYPES[0]]
        state.resources[urn]["inputs"][field] = "# the script an older version of this program ran"
    [urn] = [u for u, r in state.resources.items() if r["name"] == f"{CLUSTER}-rolling-restart"]
    for part in ("inputs", "extras"):
        records = state.resources[urn][part]["restart_records"]
        records[f"{host}/{role}"] = records[f"{host}/{role}"].replace(f"runs as {SERVER_USER}\n", "")
    state.save()
    assert machine.ssh(f"id -u {SERVER_USER}")[0] != 0


def test_2_a_an_older_versions_server_moves_to_the_dedicated_user_in_its_roll_with_nothing_lost(cluster):
    replica1 = cluster.machine("replica-1")
    replica1.check(f"echo keep-me >/home/work/ssd2/pegasus/{CLUSTER}/move-sentinel && sync")
    as_an_older_version_left_it(cluster, "replica-1", "replica")
    assert replica1.check("ps -o user= -p $(systemctl show -p MainPID --value pegasus-replica.service)").strip() == "root"
    wait_for(lambda: cluster_healthy(cluster), "a healthy cluster under the older unit", 90)
    with timed(cluster.times, "move to the server user"):
        cluster.up()
    restarted = cluster.engine.state.get_by_name("pulumi-python:dynamic/pegasus:RollingRestart",
                                                 f"{CLUSTER}-rolling-restart")["extras"]["restarted"]
    assert restarted == ["replica-1/replica"]  # one roll, that server alone
    # Its older unit is gone, its own runs as the server user, with every file it had.
    assert replica1.ssh("test -e /etc/systemd/system/pegasus-replica.service")[0] != 0
    assert replica1.ssh("systemctl is-enabled --quiet pegasus-replica.service")[0] != 0
    assert replica1.check(f"cat /home/work/ssd2/pegasus/{CLUSTER}/move-sentinel").strip() == "keep-me"
    assert replica1.check(f"stat -c %U /home/work/ssd2/pegasus/{CLUSTER}/move-sentinel").strip() == SERVER_USER
    for directory in role_dirs("replica"):
        assert replica1.check(f"cat {directory}/.created-by-pegasus-pulumi") == \
            replica1.check(f"cat {OWNER_FILE}"), directory
    assert f"cluster={CLUSTER}" in replica1.check(f"cat {OWNER_FILE}")
    assert replica1.check("stat -c '%U %a' /home/work/app/pegasus/staged").strip() == "root 700"
    assert replica1.check("cat /var/lib/pegasus-pulumi/created-user").strip() == SERVER_USER  # made, so destroy goes
    wait_for(lambda: cluster_healthy(cluster), "a healthy cluster after the move", 90)
    assert run_as_the_server_user_and_closed_to_others(cluster) == server_count(cluster)
    cluster.up()
    assert only_the_health_check_ran(cluster)


def test_2_b_a_change_the_cluster_cannot_take_is_refused_at_preview(cluster):
    moved = copy.deepcopy(cluster.config)
    moved["homeDir"] = "/srv/pegasus"
    with pytest.raises(DeploymentError) as error:
        cluster.engine.up(stack_config("pegasus", moved))
    assert "pegasus:homeDir is '/home/work'" in str(error.value) and "Set it back" in str(error.value)
    assert cluster.engine.last_run.kind == "preview", "the update ran after a refused preview"


def test_2_c_a_new_cluster_name_is_refused_at_preview_and_nothing_is_created_or_deleted(cluster):
    # Every resource is named under the cluster's name: the fixed settings must still find
    # the stack's cluster, or Pulumi plans a new cluster beside this one and its deletion.
    resources, machines, volumes = set(cluster.engine.state.resources), set(cluster.cloud.machines), \
        set(cluster.cloud.volumes)
    renamed = copy.deepcopy(cluster.config)
    renamed["clusterName"] = "e2e_renamed"
    with timed(cluster.times, "cluster name refused"):
        with pytest.raises(DeploymentError) as error:
            cluster.engine.up(stack_config("pegasus", renamed))
    assert "pegasus:clusterName is 'e2e' on this stack's servers" in str(error.value)
    assert cluster.engine.last_run.kind == "preview", "the update ran after a refused preview"
    assert set(cluster.engine.state.resources) == resources
    assert set(cluster.cloud.machines) == machines and set(cluster.cloud.volumes) == volumes
    with cluster.zookeeper() as client:
        assert client.exists(f"/pegasus/{CLUSTER}") and not client.exists("/pegasus/e2e_renamed")


def test_2_d_grown_data_disks_grow_every_file_system_without_a_restart(cluster):
    if not has_capability(cluster.machine("replica-0").check("cat /proc/self/status"), CAP_SYS_RESOURCE):
        pytest.skip(ONLINE_RESIZE_REASON)
    before = role_starts(cluster)
    config = copy.deepcopy(cluster.config)
    config["replica"]["dataDisks"]["sizeGiB"] = 2
    with timed(cluster.times, "disks grown"):
        cluster.up(config)
    for machine in cluster.hosts("replica-"):
        for disk in (1, 2):
            size = int(machine.check(f"findmnt -bn -o SIZE --mountpoint /home/work/ssd{disk}"))
            assert size > 1.9 * 2**30, f"{machine.name}: /home/work/ssd{disk} is {size} bytes, its volume 2 GiB"
    assert role_starts(cluster) == before, "growing the disks restarted a server"
    assert f"{CLUSTER}-rolling-restart" not in {op.name for op in cluster.engine.last_run.operations}


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
    metas_before = {m.name: cluster.unit_started(m, "pegasus-e2e-meta.service") for m in cluster.hosts("meta-")}
    config = copy.deepcopy(cluster.config)
    config["replica"]["configOverrides"] = {"replication": {"gc_interval_ms": "45000"}}
    # The preview names exactly what the change touches: the replicas' configs and restarts.
    planned = {op.name: op.action for op in cluster.engine.preview(stack_config("pegasus", config)).operations}
    assert planned == {**{named(f"replica-{i}-replica-config"): "update" for i in range(3)},
                       f"{CLUSTER}-rolling-restart": "update", **dict(EVERY_UP)}
    load = cluster.load("config")
    with timed(cluster.times, "config change"):
        cluster.up(config)
    stats = load.result("a config roll of the ReplicaServers without admin tools")
    assert stats["below_two"] == [], stats
    ops = {op.name: op for op in cluster.engine.last_run.operations}
    assert set(ops) == set(planned)
    # Each replica restarted once, one after the other in the roll's order, inside the
    # rolling restart; the metas were not touched.
    starts = [cluster.unit_started(m, "pegasus-e2e-replica.service") for m in cluster.hosts("replica-")]
    assert all(a < b for a, b in zip(starts, starts[1:])), starts
    rolling = ops[f"{CLUSTER}-rolling-restart"]
    # (systemd reports whole seconds: allow one second of rounding)
    assert all(rolling.started - 1 <= s <= rolling.ended for s in starts)
    assert {m.name: cluster.unit_started(m, "pegasus-e2e-meta.service") for m in cluster.hosts("meta-")} == metas_before
    for machine in cluster.hosts("replica-"):
        assert "gc_interval_ms = 45000" in machine.check("cat /home/work/app/pegasus/replica/config.ini")
    assert set(alive_replicas(cluster).values()) == {"ALIVE"}
    assert run_as_the_server_user_and_closed_to_others(cluster) == server_count(cluster)  # restarted as before


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
        assert machine.check("systemctl is-active pegasus-e2e-replica.service").strip() == "active"
    with timed(cluster.times, "recover"):
        cluster.up(good)
    wait_for(lambda: set(alive_replicas(cluster).values()) == {"ALIVE"}, "all replicas ALIVE again")


REPLICA_CONFIG = "/home/work/app/pegasus/replica/config.ini"
REPLICA_STAGED = "/home/work/app/pegasus/staged/replica.config.ini"
REFUSE_NEW_CONFIG = "/etc/systemd/system/pegasus-e2e-replica.service.d/e2e-refuse.conf"


def with_replica_override(config: dict, key: str, value: str) -> dict:
    changed = copy.deepcopy(config)
    changed["replica"].setdefault("configOverrides", {}).setdefault("replication", {})[key] = value
    return changed


def runs_its_staged_config(machine) -> bool:
    return machine.check(f"cat {REPLICA_CONFIG}") == machine.check(f"cat {REPLICA_STAGED}")


def test_4_b_a_revert_after_a_roll_failed_on_the_third_server_brings_every_server_back(cluster):
    good = copy.deepcopy(cluster.config)
    changed = with_replica_override(good, "gc_interval_ms", "47000")
    replicas = cluster.hosts("replica-")
    # The third server refuses to start on the change (a fault of that host alone).
    replicas[2].check(f"mkdir -p {Path(REFUSE_NEW_CONFIG).parent} && cat >{REFUSE_NEW_CONFIG} <<'EOF'\n"
                      "[Service]\n"
                      f"ExecStartPre=/bin/sh -c '! grep -q \"gc_interval_ms = 47000\" {REPLICA_CONFIG}'\n"
                      "EOF\nsystemctl daemon-reload")
    with timed(cluster.times, "roll failed on the third server, then reverted"):
        with pytest.raises(DeploymentError) as error:
            cluster.up(changed)
        assert "replica-2/replica did not restart healthy" in str(error.value)
        on_change = ["gc_interval_ms = 47000" in m.check(f"cat {REPLICA_CONFIG}") for m in replicas]
        assert on_change == [True, True, False], "replica-0 and -1 rolled, replica-2 went back"
        replicas[2].check(f"rm -f {REFUSE_NEW_CONFIG} && systemctl daemon-reload")
        before = [cluster.unit_started(m, "pegasus-e2e-replica.service") for m in replicas]
        # Reverting stages the old files again: the roll runs, though its records are the state's.
        planned = {op.name: op.action for op in cluster.engine.preview(stack_config("pegasus", good)).operations}
        assert planned.get(f"{CLUSTER}-rolling-restart") == "update", planned
        cluster.up(good)
    after = [cluster.unit_started(m, "pegasus-e2e-replica.service") for m in replicas]
    assert [a > b for a, b in zip(after, before)] == [True, True, False]
    for machine in replicas:
        assert runs_its_staged_config(machine) and "47000" not in machine.check(f"cat {REPLICA_CONFIG}")
    assert set(alive_replicas(cluster).values()) == {"ALIVE"}


def test_4_c_a_restart_whose_ssh_connection_drops_restarts_once_and_the_next_up_finishes_the_roll(cluster):
    config = with_replica_override(cluster.config, "gc_interval_ms", "48000")
    replica1, unit = cluster.machine("replica-1"), "pegasus-e2e-replica.service"
    script = "/home/work/app/pegasus/staged/replica.restart.sh roll"
    started, cut = time.time(), {}

    def cut_once_restarted() -> None:
        # Mid-restart: the roll's script runs on replica-1 and has restarted the server.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and "pid" not in cut:
            if cluster.unit_started(replica1, unit) > started:
                cut["pid"] = cut_ssh_serving(replica1, script)
                if cut["pid"] is None:
                    del cut["pid"]
            time.sleep(0.3)

    cutter = threading.Thread(target=cut_once_restarted)
    with timed(cluster.times, "SSH connection cut mid-restart, then the next up"):
        cutter.start()
        try:
            with pytest.raises(DeploymentError) as error:
                cluster.up(config)
        finally:
            cutter.join()
        assert "pid" in cut, "the restart's SSH connection was never cut"
        message = str(error.value)
        assert "replica-1/replica lost its SSH connection during its roll phase" in message, message[-3000:]
        assert "Restarted before it: replica-0/replica; not restarted: replica-2/replica" in message
        cluster.up(config)
    assert unit_starts_since(replica1, unit, started) == 1, "replica-1 restarted more than once"
    for machine in cluster.hosts("replica-"):
        assert runs_its_staged_config(machine) and "gc_interval_ms = 48000" in machine.check(f"cat {REPLICA_CONFIG}")
    assert set(alive_replicas(cluster).values()) == {"ALIVE"}


def test_5_scale_out_creates_only_the_new_server(cluster):
    config = copy.deepcopy(cluster.config)
    config["replica"]["count"] = 4
    with timed(cluster.times, "scale out"):
        exports = cluster.up(config)
    touched = {op.name for op in cluster.engine.last_run.operations}
    # Their list of servers grew (the rolling restart restarts none of the others), and Prometheus's.
    cluster_checks = {f"{CLUSTER}-health", f"{CLUSTER}-host-keys", f"{CLUSTER}-replica-removal",
                      f"{CLUSTER}-rolling-restart", f"{CLUSTER}-monitoring-targets"}
    assert touched - cluster_checks, "nothing was created"
    assert all(name.startswith(named("replica-3")) or name in cluster_checks for name in touched), touched
    assert {op.action for op in cluster.engine.last_run.operations if op.name.startswith(named("replica-3"))} == {"create"}
    assert len(exports["replicaServers"]) == 4
    assert alive_replicas(cluster) == {r: "ALIVE" for r in exports["replicaServers"]}
    # Prometheus found the new server in the files the program rewrote, without a restart.
    monitoring = cluster.machine("monitoring-0")
    prometheus_started = cluster.unit_started(monitoring, "pegasus-prometheus.service")
    with timed(cluster.times, "monitoring: the new server scraped"):
        mon.wait_until_every_target_is_up(monitoring, expected_targets(cluster), 30)
    assert cluster.unit_started(monitoring, "pegasus-prometheus.service") == prometheus_started


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
        for name, operation in (("replica-1", "a reboot of a ReplicaServer"),
                                (leader.name.removeprefix(named("")), "a reboot of the MetaServer leader")):
            load = cluster.load(name)
            cluster.engine.reboot(named(name))
            machine = cluster.machine(name)
            for disk in ((1, 2) if name.startswith("replica") else ()):
                source = machine.check(f"findmnt -n -o SOURCE /home/work/ssd{disk}").strip()
                assert source.startswith("/dev/loop"), f"{name}: ssd{disk} is not mounted after the reboot"
            wait_for(lambda: cluster_healthy(cluster), f"a healthy cluster after {name} rebooted", 90)
            load.result(operation)
        cluster.up()
    assert only_the_health_check_ran(cluster), "an up after reboots must find nothing to do"
    assert run_as_the_server_user_and_closed_to_others(cluster) == server_count(cluster)  # booted as before


def test_7_a_new_ssh_key_restarts_nothing(cluster, tmp_path):
    before = role_starts(cluster)
    new_key = generate_key_pair(tmp_path, comment="rotated")
    # README's procedure: the new public key on every server first, then the stack.
    for machine in cluster.cloud.machines.values():
        machine.check(f"echo {shlex.quote(new_key.public_key)} >> /home/admin/.ssh/authorized_keys")
    config = copy.deepcopy(cluster.config)
    config["ssh"] = {"privateKey": new_key.private_key, "publicKey": new_key.public_key}
    load = cluster.load("keys")
    with timed(cluster.times, "key rotation"):
        cluster.up(config)
    stats = load.result("an SSH key rotation")
    assert stats["errors"] == 0 and stats["below_two"] == [], stats
    assert cluster.commands_run(), "a new connection reruns the commands"
    assert not [op for op in cluster.engine.last_run.operations if op.type == "aws:ec2/instance:Instance"]
    assert role_starts(cluster) == before, "a new SSH key restarted a server"


def test_8_package_upgrade_rolls_every_server_and_removes_the_old_release(cluster, tmp_path):
    new_package = build_package(tmp_path / "upgrade", version="2.5.1", git_sha="a1b2c3d")
    config = copy.deepcopy(cluster.config)
    config["package"] = str(new_package)
    before = role_starts(cluster)
    load = cluster.load("upgrade")
    with timed(cluster.times, "upgrade"):
        cluster.up(config)
    stats = load.result("a rolling upgrade without admin tools")
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
    load = cluster.load("replace")
    with timed(cluster.times, "replace"):
        cluster.up(replace=[named("replica-2")])
        wait_for(lambda: cluster_healthy(cluster), "a healthy cluster after the replacement", 90)
    load.result("pulumi up --replace of a ReplicaServer's instance")
    replaced = cluster.machine("replica-2")
    assert replaced.check("cat /home/work/ssd1/pegasus/e2e/replace-sentinel").strip() == "keep-me"
    assert replaced.check("systemctl is-active pegasus-e2e-replica.service").strip() == "active"
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
    replica0.check("systemctl stop pegasus-e2e-replica.service")
    wait_for(lambda: replica_count(cluster, address) > 0 and tables_healthy(cluster),
             "replica-3 to take over replicas of replica-0", 120)
    replica0.check("systemctl start pegasus-e2e-replica.service")
    wait_for(lambda: cluster_healthy(cluster), "replica-0 back", 120)


def assert_rolled_in_pegasus_order(starts: dict[str, float]) -> None:
    """Every ReplicaServer restarted before the MetaServers, and they before the Collector
    (`starts`: when each host/unit last became active, from role_starts)."""
    restarted = sorted(starts, key=starts.get)
    kinds = [unit.split("/")[1] for unit in restarted]
    roll_order = ["pegasus-e2e-replica.service", "pegasus-e2e-meta.service", "pegasus-e2e-collector.service"]
    assert kinds == sorted(kinds, key=roll_order.index), restarted


def test_a_scale_in_refuses_a_server_with_replicas_then_removes_a_drained_one(cluster):
    config = copy.deepcopy(cluster.config)
    config["replica"]["count"] = 3
    leaving = cluster.exports["replicaServers"][3]
    # The server to remove must hold replicas: while replica-0 is down, the
    # MetaServers re-replicate its partitions onto the others, replica-3 among them.
    give_replicas_to(cluster, leaving)
    # Together with a config change that rolls every ReplicaServer: refused before any restart.
    changed = copy.deepcopy(config)
    changed["replica"]["configOverrides"] = {"replication": {"gc_interval_ms": "50000"}}
    before = role_starts(cluster)
    with timed(cluster.times, "scale in refused with a config change"):
        with pytest.raises(DeploymentError) as error:
            cluster.up(changed)
    assert f"replica-3 ({leaving}) still holds" in str(error.value) and "Nothing was stopped" in str(error.value)
    assert role_starts(cluster) == before, "a server restarted before the scale-in was refused"
    with timed(cluster.times, "scale in"):
        with pytest.raises(DeploymentError) as error:
            cluster.up(config)
        assert f"replica-3 ({leaving}) still holds" in str(error.value) and "Nothing was stopped" in str(error.value)
        assert cluster.machine("replica-3").check("systemctl is-active pegasus-e2e-replica.service").strip() == "active"
        # Drained by hand (without the admin shell: stopped, and the MetaServers move its partitions).
        load = cluster.load("scale-in")
        cluster.machine("replica-3").check("systemctl stop pegasus-e2e-replica.service")
        wait_for(lambda: replica_count(cluster, leaving) == 0 and tables_healthy(cluster),
                 "the MetaServers to move replica-3's partitions", 120)
        cluster.up(config)
        load.result("a scale-in drained by stopping the server (no admin tools)")
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
    load = cluster.load("upgrade-tools")
    with timed(cluster.times, "upgrade with admin tools"):
        cluster.up(config)
    stats = load.result("a rolling upgrade with admin tools")
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


DRAIN_SETTINGS = ("meta.lb.assign_delay_ms", "meta.lb.add_secondary_enable_flow_control",
                  "meta.lb.add_secondary_max_count_for_one_node")


def operators_shell(cluster: Cluster) -> tuple[AdminShell, str]:
    """The admin shell installed on meta-0, as an operator runs it there; and the leading MetaServer."""
    meta0 = cluster.machine("meta-0")
    [tools] = meta0.check("ls /home/work/app/pegasus/tools").split()

    def run(command_line: str) -> tuple[int, str]:
        rc, out, err = meta0.ssh(command_line)
        return rc, out + err
    shell = AdminShell(run, f"/home/work/app/pegasus/tools/{tools}", cluster.exports["metaServers"],
                       "/home/work/app/pegasus/jvm-lib", "2.5.0")
    return shell, shell.leader()


def meta_settings(shell: AdminShell, leader: str) -> dict[str, str]:
    return {"level": shell.get_meta_level(), **{name: shell.setting(leader, name) for name in DRAIN_SETTINGS}}


def test_a_2_b_a_roll_killed_during_a_drain_leaves_the_metaserver_as_before_for_the_next_up(cluster):
    config = with_replica_override(cluster.config, "gc_interval_ms", "49000")
    assert config.get("toolsPackage"), "runs after the admin tools are installed (test_a_2)"
    shell, leader = operators_shell(cluster)
    # What an operator may run with: balancing on, the add-secondary flow control off.
    shell.set_meta_level("lively")
    shell.set_setting(leader, "meta.lb.add_secondary_enable_flow_control", "false")
    before = meta_settings(shell, leader)
    try:
        with timed(cluster.times, "up killed mid-drain, then the next up"):
            # SIGKILL while a ReplicaServer is drained (no secondary may be added to it).
            up_killed_when(cluster.engine, stack_config("pegasus", config),
                           lambda: shell.setting(leader, DRAIN_SETTINGS[2]) == "0")
            left = meta_settings(shell, leader)
            assert left["level"] == "steady" and left[DRAIN_SETTINGS[0]] == "180000000", left
            cluster.up(config)
        assert meta_settings(shell, leader) == before
        for machine in cluster.hosts("replica-"):
            assert runs_its_staged_config(machine) and "gc_interval_ms = 49000" in machine.check(f"cat {REPLICA_CONFIG}")
        assert cluster_healthy(cluster)
    finally:  # the later scenarios run as before
        shell.set_meta_level("steady")
        shell.set_setting(leader, "meta.lb.add_secondary_enable_flow_control", "true")


def test_a_3_with_admin_tools_a_scale_in_drains_the_server_then_deletes_it(cluster):
    config = copy.deepcopy(cluster.config)
    config["replica"]["count"] = 4
    cluster.up(config)
    leaving = cluster.exports["replicaServers"][3]
    # Give the new server replicas (the MetaServers do not balance at the steady level).
    give_replicas_to(cluster, leaving)
    config["replica"]["count"] = 3
    load = cluster.load("scale-in-tools")
    with timed(cluster.times, "scale in with admin tools"):
        cluster.up(config)
    stats = load.result("a scale-in with admin tools")
    assert stats["failed"] == 0 and stats["below_two"] == [], stats
    deleted = {op.name for op in cluster.engine.last_run.operations if op.action == "delete"}
    assert named("replica-3") in deleted and not any(n.startswith(named("replica-2")) for n in deleted)
    # The MetaServers restarted after the removal: no UNALIVE record left behind.
    assert leaving not in alive_replicas(cluster)
    assert cluster_healthy(cluster)
    cluster.up(config)
    assert only_the_health_check_ran(cluster)


# Polls every ZooKeeper address listed in /root/zk-ips (srvr on the client port) five times a
# second from a MetaServer host, one line per round: "<time> <ip>=<mode|looking|down> ...".
ZOOKEEPER_WATCH = r"""
set -uo pipefail
while [[ ! -e /root/stop-zk-watch ]]; do
  line=$(date +%s.%N)
  for ip in $(cat /root/zk-ips); do
    answer=$(timeout 0.5 bash -c 'exec 3<>"/dev/tcp/$1/2181" && printf srvr >&3 && cat <&3' _ "$ip" 2>/dev/null)
    mode=$(sed -n 's/^Mode: //p' <<<"$answer")
    [[ -n $mode ]] || mode=$([[ -n $answer ]] && echo looking || echo down)
    line+=" $ip=$mode"
  done
  echo "$line" >>/root/zk-watch.log
  sleep 0.2
done
"""


class ZooKeeperWatch:
    """The ensemble as a client sees it during an `up`: which servers answer, which one leads.
    The list of addresses follows the ZooKeeper machines as they come and go."""

    def __init__(self, cluster: Cluster):
        self.cluster, self.meta0 = cluster, cluster.machine("meta-0")
        self.ips: set[str] = set()
        self.stop = threading.Event()
        self._follow()
        script = base64.b64encode(ZOOKEEPER_WATCH.encode()).decode()
        self.meta0.check(f"rm -f /root/stop-zk-watch /root/zk-watch.log && echo {script} | base64 -d >/root/zk-watch.sh "
                         "&& (nohup bash /root/zk-watch.sh >/dev/null 2>&1 </dev/null &)")
        self.thread = threading.Thread(target=self._follow_until_stopped, daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        ips = {m.ip for m in self.cluster.hosts("zk-")}
        if not ips <= self.ips:
            self.ips |= ips
            self.meta0.check(f"echo {' '.join(sorted(self.ips))} >/root/zk-ips")

    def _follow_until_stopped(self) -> None:
        while not self.stop.wait(0.5):
            self._follow()

    def rounds(self) -> list[tuple[float, dict[str, str]]]:
        self.stop.set()
        self.thread.join()
        self.meta0.check("touch /root/stop-zk-watch; sleep 1")
        rounds = []
        for line in self.meta0.check("cat /root/zk-watch.log").splitlines():
            stamp, *answers = line.split()
            rounds.append((float(stamp), dict(a.split("=", 1) for a in answers)))
        return rounds


def test_a_4_replacing_a_zookeeper_server_keeps_the_quorum_the_sessions_and_every_write(cluster):
    metas = cluster.hosts("meta-")
    load = cluster.load("zookeeper")
    watch = ZooKeeperWatch(cluster)
    started = time.time()
    with timed(cluster.times, "zookeeper server replaced"):
        cluster.up(replace=[named("zk-1")])
    rounds = watch.rounds()
    stats = load.result("a ZooKeeper server's replacement")
    assert len(rounds) > 5, rounds
    # Never two of the three servers down at once: the quorum's majority kept running.
    down = [(stamp, answers) for stamp, answers in rounds
            if sum(mode != "down" for mode in answers.values()) < 2]
    assert not down, f"fewer than 2 ZooKeeper servers answered: {down[:3]}"
    # Without a leader only for one election at a time (after the leader's own restart).
    longest, since = 0.0, None
    for stamp, answers in rounds:
        if "leader" in answers.values():
            since = None
        else:
            since = since or stamp
            longest = max(longest, stamp - since)
    print(f"\nzookeeper during the replacement: {len(rounds)} rounds, longest without a leader {longest:.1f} s")
    assert longest < 5, f"the ensemble had no leader for {longest:.1f} s"
    # The MetaServers kept their ZooKeeper sessions: none lost it (a MetaServer exits then), and
    # each restarted once, in the rolling restart onto the new ZooKeeper list.
    for machine in metas:
        journal = machine.check(f"journalctl -u pegasus-e2e-meta.service --since @{int(started)} --no-pager")
        assert "session expired" not in journal, f"{machine.name} lost its ZooKeeper session:\n{journal[-2000:]}"
        assert journal.count("Started pegasus-e2e-meta.service") == 1, f"{machine.name}:\n{journal[-2000:]}"
    assert stats["failed"] == 0 and stats["below_two"] == [], stats
    # The new server took another address: the other two were rolled onto the new zoo.cfg.
    roll = cluster.engine.state.get_by_name("pulumi-python:dynamic/pegasus:ZooKeeperRoll", f"{CLUSTER}-zookeeper-roll")
    assert roll and sorted(roll["extras"]["restarted"]) == ["zk-0/zookeeper", "zk-2/zookeeper"], roll
    # Everything runs on the new ensemble: the MetaServers' list names the new server.
    new_ip = cluster.machine("zk-1").ip
    assert new_ip in cluster.exports["zookeeperServers"]
    assert new_ip in cluster.machine("meta-0").check("grep hosts_list /home/work/app/pegasus/meta/config.ini")
    cluster.up()
    assert only_the_health_check_ran(cluster)


def test_b_missing_data_disk_keeps_the_server_down_and_the_next_up_says_so(cluster):
    volume_id = cluster.engine.state.get_by_name("aws:ebs/volume:Volume", named("replica-2-data1"))["id"]
    machine = cluster.machine("replica-2")
    machine.check("systemctl stop pegasus-e2e-replica.service && umount /home/work/ssd1")
    cluster.cloud.detach_volume(volume_id)
    try:
        with timed(cluster.times, "missing disk"):
            cluster.engine.reboot(named("replica-2"))
            machine = cluster.machine("replica-2")
            time.sleep(5)
            assert machine.check("systemctl is-active pegasus-e2e-replica.service || true").strip() != "active"
            rc, out, _ = machine.ssh("ls -A /home/work/ssd1")
            assert rc != 0 or not out.strip(), f"the server wrote to the root disk: {out}"
            checked = time.monotonic()
            with pytest.raises(DeploymentError) as error:
                cluster.up()
            # Nothing will start its unit: the health check says so at once, not after healthSeconds.
            assert time.monotonic() - checked < cluster.config["timeouts"]["healthSeconds"]
        with timed(cluster.times, "make status with a stopped server"):
            status = stack_status(cluster)
        shown = {row[0]: row for row in cluster_status.rows(status) if row[1] in ("replica", "?")}
        assert shown["replica-2"][4].startswith("Down"), cluster_status.format_status(status)
        assert all(shown[f"replica-{i}"][4] == "ALIVE" for i in (0, 1)), cluster_status.format_status(status)
        # and its alert, from Alertmanager on the monitoring host (the stack's `monitoring` output)
        assert any(a.startswith("PegasusServerDown [critical]") for a in cluster_status.firing_alerts(status.cluster)), \
            cluster_status.format_status(status)
        print(f"\nmake status, a stopped server, {len(status.hosts)} hosts asked in {status.seconds:.1f} s:\n"
              + cluster_status.format_status(status))
        message = str(error.value)
        assert f"{CLUSTER}-health" in message and "not serving: replica-2/replica" in message
        down = [line for line in message.splitlines() if line.startswith("Down for good")]
        assert down and "replica-2/replica: pegasus-e2e-replica.service" in down[0], message[:4000]
        print(f"\n{down[0]}")
        # That server's own status, journal and log tail, fetched from it over SSH.
        assert "--- replica-2/replica (" in message and "journal lines of pegasus-e2e-replica.service" in message
        assert "RequiresMountsFor" in message or "/home/work/ssd1" in message, message[-3000:]
    finally:  # the disk comes back whatever failed above: the next scenarios need that server
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
    # (the rolls' and the checks' access gains the pins: an update, which restarts nothing)
    assert {"Command", "RollingRestart", "ClusterHealth", "ZooKeeperPathGuard"} <= kinds <= {
        "Command", "CopyToRemote", "RollingRestart", "ClusterHealth", "ZooKeeperPathGuard", "ZooKeeperRoll"}, planned
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
    assert replaced.check("systemctl is-active pegasus-e2e-replica.service").strip() == "active"
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
            # The host is released and the server user the program made is gone.
            assert machine.ssh(f"test -e {OWNER_FILE}")[0] != 0, f"{machine.name} keeps its owner mark"
            assert machine.ssh(f"id -u {SERVER_USER}")[0] != 0, f"{machine.name} keeps the user {SERVER_USER}"
            seen["hosts"].add(record["name"])

    volumes_before = set(cluster.cloud.volumes)
    with timed(cluster.times, "destroy"):
        # An application's instance still in <cluster>-clients: AWS refuses to delete the group
        # (DependencyViolation); everything else is gone. Without it, the next destroy finishes.
        with pytest.raises(DeploymentError) as refused:
            cluster.engine.destroy(before_delete=before_delete)
        assert f"{CLUSTER}-clients" in str(refused.value) and "DependencyViolation" in str(refused.value)
        assert {r["name"] for r in cluster.engine.state.resources.values()
                if r["type"] == "aws:ec2/instance:Instance"} == set()
        cluster.engine.terminate_application(cluster.app)
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
