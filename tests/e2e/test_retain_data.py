"""End to end on release 2.6 (master: nodes named by host name): the monitoring reads every
server's JSON /metrics through the exporter (on the first MetaServer's host, as the dev stack
puts it), a rolling upgrade with the admin tools, in groups of ReplicaServers that share no
partition, keeps every partition at two replicas or more (the Python client from PyPI cannot
read a 2.6 cluster), and `retainData` keeps the data volumes, the data directories and the
ZooKeeper path."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import subprocess
import time

import pytest

from components.operations.zookeeper_path_guard import zookeeper_session
from tests.e2e import monitoring_checks as mon
from tests.e2e.applications import Load, raw_writes
from tests.e2e.localcloud.engine import Engine
from tests.e2e.localcloud.testing import skip_unless_local_cloud_possible, wait_for
from tests.e2e.test_pegasus_cluster import FAST_FAILURE_DETECTION, FAST_MONITORING
from tests.support.package_builder import build_package, build_tools_package
from tests.support.pulumi_program import PROGRAM, stack_config

pytestmark = [pytest.mark.e2e, skip_unless_local_cloud_possible()]

CLUSTER = "kept"
METAS = (f"{CLUSTER}-meta-0", f"{CLUSTER}-meta-1")  # their instances' resource names
INSTANCE = "aws:ec2/instance:Instance"
# Six small ReplicaServers and a 4-partition table: groups of two or more that share no partition.
REPLICAS = 6


class Deployed:
    """A deployed cluster, as the monitoring checks read it: its machines and exports."""

    def __init__(self, engine: Engine, exports: dict) -> None:
        self.engine, self.exports = engine, exports

    def machine(self, host: str):
        return self.engine.machine(f"{CLUSTER}-{host}")


def test_destroy_with_retain_data_keeps_volumes_directories_and_path(local_cloud, tmp_path):
    started = time.monotonic()
    keys = local_cloud.keys
    config = {
        "clusterName": CLUSTER,
        # master (2.6): nodes named by reverse DNS, no shared log, no restart without a name.
        "package": str(build_package(tmp_path / "package", version="2.6.0")),
        "ssh": {"user": "root", "privateKey": keys.private_key, "publicKey": keys.public_key.strip()},
        "meta": {"count": 2},
        "replica": {"count": REPLICAS, "dataDisks": {"count": 1, "sizeGiB": 1}},
        "roll": {"maxParallel": 3},  # the default, one in ten, would roll 6 servers one at a time
        "collector": {"enabled": False},
        "zookeeper": {"count": 1, "allowSingleNode": True, "access": "direct"},
        "network": {"adminCidr": "10.0.0.0/8"},
        "retainData": True,
        "configOverrides": FAST_FAILURE_DETECTION,
        "timeouts": {"startSeconds": 90, "healthSeconds": 120, "zookeeperSeconds": 180, "metaPauseSeconds": 2},
        "monitoring": {**FAST_MONITORING, "host": "meta"},
    }
    engine = Engine(local_cloud, tmp_path / "state.json", PROGRAM, stack="retain", secret_keys=("pegasus:ssh",))
    exports = engine.up(stack_config("pegasus", config))
    print(f"\nscenario 2.6 cluster of {REPLICAS} ReplicaServers up: {time.monotonic() - started:.1f} s")
    _monitoring_reads_2_6(Deployed(engine, exports))
    rolled = time.monotonic()
    _grouped_rolling_upgrade_with_admin_tools_keeps_two_replicas(engine, exports, config, tmp_path)
    print(f"\nscenario 2.6 grouped rolling upgrade with admin tools: {time.monotonic() - rolled:.1f} s")
    volumes = [r["id"] for r in engine.state.resources.values() if r["type"] == "aws:ebs/volume:Volume"]
    assert len(volumes) == REPLICAS
    checked = {}

    def before_delete(record: dict) -> None:
        # Look at each piece of retained state just before the last thing it lives on goes:
        # the ZooKeeper path before ZooKeeper stops, a MetaServer's directory before its
        # machine. Deletes of unrelated resources may come in any order.
        if record["name"] == f"{CLUSTER}-zk-0-zookeeper":
            with zookeeper_session(exports["zookeeperServers"], None, 30) as client:
                checked["path"] = client.exists(f"/pegasus/{CLUSTER}")
        elif record["type"] == INSTANCE and record["name"] in METAS:
            rc, _, _ = local_cloud.machines[record["name"]].ssh("test -d /home/work/app/pegasus/meta")
            checked[record["name"]] = rc == 0

    engine.destroy(before_delete=before_delete)
    assert checked.keys() == {"path", *METAS}, f"destroy never reached {checked.keys()}"
    assert checked["path"] is not None, "the ZooKeeper path was removed despite retainData"
    assert all(checked[meta] for meta in METAS), "the MetaServers' directories were removed"
    assert engine.state.order == [] and not local_cloud.machines
    retained = {op.name for op in engine.last_run.operations if op.action == "retain"}
    assert {f"{CLUSTER}-replica-{i}-data1" for i in range(REPLICAS)} <= retained
    # retainData keeps nothing of the package store: the package can be uploaded again.
    assert not retained & {f"{CLUSTER}-packages", f"{CLUSTER}-package"}
    assert not [b for b in local_cloud.aws.buckets() if b.startswith(f"pegasus-{CLUSTER}-")]
    for volume_id in volumes:
        assert volume_id in local_cloud.volumes, f"{volume_id} was deleted"
        with_files = _files_on_volume(local_cloud.volumes[volume_id].path, tmp_path / volume_id)
        assert "reps" in with_files, with_files  # the ReplicaServer's replica directory survived
    print(f"\nscenario retain data: {time.monotonic() - started:.1f} s")


def _healthy(deployed: Deployed) -> bool:
    """Every ReplicaServer ALIVE and every table fully healthy, as the leading MetaServer says."""
    meta0, meta = deployed.machine("meta-0"), deployed.exports["metaServers"].split(",")[0]

    def get(path: str) -> dict:
        return json.loads(meta0.check(f"curl -sfL --max-time 10 'http://{meta}{path}'"))
    nodes = get("/meta/nodes")["details"].values()
    tables = get("/meta/apps?detail").get("healthy_info", {}).values()
    return all(n["status"] == "ALIVE" for n in nodes) and all(t["fully_healthy"] == t["partition_count"]
                                                              for t in tables)


def _monitoring_reads_2_6(deployed: Deployed) -> None:
    """Every target up, a stopped ReplicaServer's down alert, and every dashboard panel."""
    monitoring = deployed.machine("meta-0")
    down_for, scrape = FAST_MONITORING["downForSeconds"], FAST_MONITORING["scrapeIntervalSeconds"]
    started = time.monotonic()
    replicas = {f"replica-{i}" for i in range(REPLICAS)}
    mon.wait_until_every_target_is_up(monitoring, {
        "node": {"zk-0", "meta-0", "meta-1", *replicas}, "pegasus-meta": {"meta-0", "meta-1"}, "pegasus-replica": replicas,
        "zookeeper": set(deployed.exports["zookeeperServers"].split(",")), "prometheus": {"127.0.0.1:9090"},
        "alertmanager": {"127.0.0.1:9093"}, "pegasus-exporter": {"127.0.0.1:9760"}}, 60)
    # The exporter listens for the Prometheus beside it only.
    assert [line.split()[3] for line in monitoring.check("ss -Hltn 'sport = :9760'").splitlines()] == [
        "127.0.0.1:9760"]
    print(f"\nscenario 2.6 monitoring: every target up: {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    times = mon.down_alert_fires_and_resolves(
        monitoring, deployed.machine("replica-1"), "pegasus-kept-replica.service",
        {"alertname": "PegasusServerDown", "node": "replica-1", "role": "replica"},
        'pegasus_up{job="pegasus-replica", node="replica-1"}', down_for, scrape,
        back=lambda: wait_for(lambda: _healthy(deployed), "replica-1 back", 120))
    mon.print_alert_times("2.6", times, down_for, scrape)
    print(f"\nscenario 2.6 monitoring: down alert fires and resolves: {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    app = deployed.engine.launch_application(f"{CLUSTER}-app-dashboards", [deployed.exports["clientSecurityGroupId"]])
    assert raw_writes(app, deployed.exports["metaServers"], "stat", 5 * scrape) > 0  # a rate needs samples
    missing = mon.panels_without_data(monitoring, "2.6", scrape)
    deployed.engine.terminate_application(app)
    assert missing == {}, missing
    print(f"\nscenario 2.6 monitoring: every panel has data: {time.monotonic() - started:.1f} s")


@contextlib.contextmanager
def roll_log():
    """The rolling restart's log lines (pulumi.log.info reaches the mocks' engine, which logs them)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.startswith(("rolling restart:", "admin shell:")):
                lines.append(message)

    root, handler = logging.getLogger(), Keep(logging.INFO)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def started_at(machine) -> float:
    out = machine.check("systemctl show -p ActiveEnterTimestamp --value pegasus-kept-replica.service "
                        "| xargs -I{} date -d '{}' +%s.%N")
    return float(out.strip())


def _grouped_rolling_upgrade_with_admin_tools_keeps_two_replicas(engine: Engine, exports: dict, config: dict,
                                                                tmp_path) -> None:
    """The ReplicaServers roll in groups that share no partition, planned from the partition map
    before each group: a group is drained together through the shell under its host names
    (`nodes -d` on 2.6), its replicas closed (replica.kill_partition), restarted at once.
    pypegasus3 0.0.1.1 cannot read master's partition configuration (its host_port fields,
    apache/incubator-pegasus#2062, in no release; tests/unit/test_standin_protocol.py shows
    it): the client on the application machine gets nothing, and the roll's figure is the
    server side's, read by the load driver's own watcher."""
    config = {**config, "package": str(build_package(tmp_path / "upgrade", version="2.6.1", git_sha="c3d4e5f")),
              "toolsPackage": str(build_tools_package(tmp_path / "tools", version="2.6.0"))}
    # The preview names every server that restarts and says how the ReplicaServers will.
    planned = {op.name: op for op in engine.preview(stack_config("pegasus", config)).operations}
    roll_plan = planned[f"{CLUSTER}-rolling-restart"].detail["roll_plan"]
    assert all(f"replica-{i}/replica" in roll_plan for i in range(REPLICAS)), roll_plan
    assert "in groups of at most 3 ReplicaServers that share no partition" in roll_plan, roll_plan
    assert "then one at a time: meta-0/meta, meta-1/meta" in roll_plan, roll_plan
    app = engine.launch_application(f"{CLUSTER}-app-0", [exports["clientSecurityGroupId"]])
    # On the stand-in's 4-partition table: the groups are planned from every table's
    # partitions, and an 8-partition one beside it would leave no two servers that share none.
    load = Load(app, exports["metaServers"], "upgrade", table="stat", partitions=4).start()
    with roll_log() as lines:
        engine.up(stack_config("pegasus", config))
    outcome = load.failure()
    engine.terminate_application(app)
    assert "got no configuration" in outcome["error"], outcome
    print("\navailability during a grouped rolling upgrade with admin tools on 2.6 (pypegasus3): not measurable, "
          "pypegasus3 0.0.1.1 reads no partition configuration from a 2.6 MetaServer; "
          f"{len(outcome['below_two'])} partitions ever below 2 replicas")
    print("\n".join(line for line in lines if line.startswith("rolling restart: group of")))
    groups = [m.group(1).split(", ") for line in lines
              if (m := re.match(r"rolling restart: group of \d+: ([^(]+) \((plan:|the last to restart)", line))]
    servers = [s for group in groups for s in group]
    assert sorted(servers) == sorted(f"replica-{i}/replica" for i in range(REPLICAS)), lines
    assert max(len(g) for g in groups) >= 2, groups
    assert all("at most 3 at once (roll.maxParallel 3)" in line or "the last to restart" in line
               for line in lines if line.startswith("rolling restart: group of")), lines
    print(f"grouped roll: {len(groups)} groups for {len(servers)} servers")
    assert outcome["below_two"] == [], outcome
    # The servers of one group restarted together, each group after the one before.
    starts = {f"replica-{i}/replica": started_at(engine.machine(f"{CLUSTER}-replica-{i}")) for i in range(REPLICAS)}
    spans = [(min(starts[s] for s in g), max(starts[s] for s in g)) for g in groups]
    assert all(last - first < 5 for first, last in spans), (groups, starts)
    assert all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1)), (groups, starts)
    for i in range(REPLICAS):
        replica = engine.machine(f"{CLUSTER}-replica-{i}")
        releases = replica.check("ls /home/work/app/pegasus/releases").split()
        assert len(releases) == 1 and releases[0].startswith("pegasus-server-2.6.1"), releases
    # Each server the drain closed partitions on (replica.kill_partition for those downgraded away
    # from it) closed them before its restart. (One that held none when its group came, as the
    # server the monitoring's check stopped, which came back empty, gets none.) A replica its
    # config sync closed first (every config_sync_interval_ms, 30 s) is gone when the kill
    # comes, which then answers ERR_OBJECT_NOT_FOUND, as the real server does.
    killed_on = _servers_sent_kills(engine, lines)
    assert killed_on, [line for line in lines if "kill_partition" in line]
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(load.started_at))
    for i in sorted(killed_on):
        closed = engine.machine(f"{CLUSTER}-replica-{i}").check(
            "cat /home/work/app/pegasus/replica/log/log.*.txt "
            "| grep -E 'kill replica: gpid|replica not exists on meta server, remove' "
            f"| awk -v since='{since}' 'substr($0, 2, 19) >= since' | wc -l").strip()
        assert int(closed) > 0, f"replica-{i} closed no replica before its restart"


def _servers_sent_kills(engine: Engine, lines: list[str]) -> set[int]:
    """The ReplicaServers (by index) the roll's drain sent replica.kill_partition for one partition
    or more; its node names (host names on 2.6) resolved on a MetaServer host, as the roll does."""
    meta0 = engine.machine(f"{CLUSTER}-meta-0")
    addresses = set()
    for line in lines:
        if (m := re.match(r"admin shell: (\S+): replica\.kill_partition sent for (\d+) partitions", line)) \
                and int(m.group(2)) > 0:
            host = m.group(1).rsplit(":", 1)[0]
            addresses |= set(meta0.check(f"getent ahostsv4 {host} | awk '{{print $1}}'").split())
    return {i for i in range(REPLICAS) if engine.machine(f"{CLUSTER}-replica-{i}").ip in addresses}


def _files_on_volume(image, mount_point) -> list[str]:
    """Mount a retained volume's backing file read-only and list its cluster data dir."""
    mount_point.mkdir()
    subprocess.run(["mount", "-o", "ro,loop", str(image), str(mount_point)], check=True)
    try:
        return [p.name for p in (mount_point / "pegasus" / CLUSTER).iterdir()]
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
