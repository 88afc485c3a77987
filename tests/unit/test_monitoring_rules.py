"""The alert rules as the monitoring host receives them: `promtool check rules` and
`promtool test rules` (Debian's prometheus package), each alert firing on the series a
failure gives and silent on a healthy cluster's, for 2.5's perf counters and 2.6's metrics."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.render import monitoring_files as mf
from components.spec import ClusterSpec, build_spec
from tests.support.package_builder import build_package

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) is not installed: "
                                "scripts/install-test-deps.sh installs it")

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\ntest-only\n-----END OPENSSH PRIVATE KEY-----\n"


def monitoring_spec(tmp_path: Path, release: str = "2.5.0", **monitoring) -> ClusterSpec:
    """A stack of `release` with `monitoring` keys (as a stack file writes them)."""
    package = build_package(tmp_path / f"package-{release}", version=release, server="placeholder")
    raw = {"clusterName": "c1", "package": str(package), "monitoring": monitoring,
           "ssh": {"user": "admin", "privateKey": KEY, "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 ops"},
           "network": {"adminCidr": "203.0.113.0/24"}}
    return build_spec(raw, stack="test", secret_keys={"pegasus:ssh"})


# Series a healthy cluster shows for 30 minutes, and the labels Prometheus's targets add.
NODE = {"job": "node", "node": "replica-0", "kind": "replica", "instance": "10.0.0.21:9100"}


def _labels(labels: dict) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def series(name: str, labels: dict, values: str) -> dict:
    return {"series": f"{name}{_labels(labels)}", "values": values}


def run_promtool(tmp_path: Path, rules: dict[str, str], tests: list[dict]) -> subprocess.CompletedProcess:
    """Each expected alert carries its summary; its runbook is the rule's own line."""
    runbooks = {rule["alert"]: rule["annotations"]["runbook"] for text in rules.values()
                for group in yaml.safe_load(text)["groups"] for rule in group["rules"]}
    for test in tests:
        for check in test["alert_rule_test"]:
            for alert in check["exp_alerts"]:
                alert["exp_annotations"]["runbook"] = runbooks[check["alertname"]]
    for name, text in rules.items():
        (tmp_path / name).write_text(text)
    test_file = tmp_path / "test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": sorted(rules), "evaluation_interval": "15s", "tests": tests}))
    return subprocess.run([PROMTOOL, "test", "rules", str(test_file)], capture_output=True, text=True, cwd=tmp_path)


def fires(alert: str, input_series: list[dict], eval_time: str, labels: dict, summary: str) -> dict:
    expected = [{"exp_labels": labels, "exp_annotations": {"summary": summary}}]
    return {"interval": "15s", "input_series": input_series,
            "alert_rule_test": [{"eval_time": eval_time, "alertname": alert, "exp_alerts": expected}]}


def silent(alert: str, input_series: list[dict], eval_time: str = "30m") -> dict:
    return {"interval": "15s", "input_series": input_series,
            "alert_rule_test": [{"eval_time": eval_time, "alertname": alert, "exp_alerts": []}]}


@pytest.mark.parametrize("release", ["2.5.0", "2.6.0"])
def test_every_rule_file_passes_promtool_check_and_names_a_runbook(tmp_path, release):
    rules = mf.alert_rules(monitoring_spec(tmp_path, release))
    for name, text in rules.items():
        (tmp_path / name).write_text(text)
        result = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / name)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        for group in yaml.safe_load(text)["groups"]:
            for rule in group["rules"]:
                assert "docs/monitoring.md#" + rule["alert"].lower() in rule["annotations"]["runbook"], rule["alert"]
                assert rule["labels"]["severity"] in ("critical", "warning")
    doc = (Path(__file__).parents[2] / "docs" / "monitoring.md").read_text()
    for text in rules.values():
        for group in yaml.safe_load(text)["groups"]:
            for rule in group["rules"]:
                assert f"### {rule['alert']}" in doc, f"docs/monitoring.md says nothing of {rule['alert']}"


def host_tests(disk_mount: str) -> list[dict]:
    size = 100 * 2**30
    ok_time = series("node_time_seconds", NODE, "0+15x200")
    return [
        fires("HostDown", [series("up", NODE, "1 1 0x20")], "3m", {**NODE, "severity": "critical"},
              "replica-0 does not answer Prometheus (node_exporter)"),
        silent("HostDown", [series("up", NODE, "1x200")]),
        # 90% full against the default 85%; the root disk is not a data disk.
        fires("DataDiskNearlyFull", [
            series("node_filesystem_avail_bytes", {**NODE, "mountpoint": disk_mount}, f"{size // 10}x40"),
            series("node_filesystem_size_bytes", {**NODE, "mountpoint": disk_mount}, f"{size}x40"),
            series("node_filesystem_avail_bytes", {**NODE, "mountpoint": "/"}, "0x40"),
            series("node_filesystem_size_bytes", {**NODE, "mountpoint": "/"}, f"{size}x40")],
            "6m", {**NODE, "mountpoint": disk_mount, "severity": "warning"}, f"{disk_mount} on replica-0 is 90% full"),
        silent("DataDiskNearlyFull", [
            series("node_filesystem_avail_bytes", {**NODE, "mountpoint": disk_mount}, f"{size // 2}x200"),
            series("node_filesystem_size_bytes", {**NODE, "mountpoint": disk_mount}, f"{size}x200")]),
        # A crash loop: systemd restarted the unit twice within the window.
        fires("ServiceRestartingRepeatedly", [
            series("node_systemd_service_restart_total", {**NODE, "name": "pegasus-replica.service"}, "0x20 1x20 2x20")],
            "15m", {**NODE, "name": "pegasus-replica.service", "severity": "warning"},
            "pegasus-replica.service on replica-0 restarted 2 times in 30m"),
        silent("ServiceRestartingRepeatedly", [
            series("node_systemd_service_restart_total", {**NODE, "name": "pegasus-replica.service"}, "0x200")]),
        fires("ServiceFailed", [series("node_systemd_unit_state",
                                       {**NODE, "name": "pegasus-replica.service", "state": "failed"}, "0 1x10")],
              "1m", {**NODE, "name": "pegasus-replica.service", "state": "failed", "severity": "critical"},
              "pegasus-replica.service on replica-0 has failed and systemd gave up starting it"),
        # The host's clock runs 5 s ahead of the monitoring host's.
        fires("HostClockOff", [series("node_time_seconds", NODE, "5+15x40")], "6m", {**NODE, "severity": "warning"},
              "replica-0's clock is 5.0 s off the monitoring host clock"),
        silent("HostClockOff", [ok_time]),
        fires("HostClockNotSynchronised", [series("node_timex_sync_status", NODE, "0x200")], "25m",
              {**NODE, "severity": "warning"}, "replica-0's clock has not been synchronised for 10 minutes"),
        silent("HostClockNotSynchronised", [series("node_timex_sync_status", NODE, "1x200")]),
    ]


def zookeeper_tests() -> list[dict]:
    zk = [{"job": "zookeeper", "instance": f"10.0.0.3{i}:2181"} for i in range(3)]
    return [
        fires("ZooKeeperServerDown", [series("zookeeper_ruok", zk[0], "1 0x10")], "2m",
              {**zk[0], "severity": "warning"}, "10.0.0.30:2181 does not answer ruok"),
        # Two of three not serving: no quorum. One of three: a quorum still.
        fires("ZooKeeperNoQuorum", [series("zookeeper_serving", zk[0], "1 0x10"),
                                    series("zookeeper_serving", zk[1], "1 0x10"),
                                    series("zookeeper_serving", zk[2], "1x10")], "2m", {"severity": "critical"},
              "fewer than a majority of the ZooKeeper servers serve: the MetaServers cannot keep their lock or change state"),
        silent("ZooKeeperNoQuorum", [series("zookeeper_serving", zk[0], "0x200"),
                                     series("zookeeper_serving", zk[1], "1x200"),
                                     series("zookeeper_serving", zk[2], "1x200")]),
    ]


def test_host_zookeeper_and_monitoring_alerts_fire_on_failures_only(tmp_path):
    spec = monitoring_spec(tmp_path, "2.5.0")
    rules = {"hosts.yml": mf.alert_rules(spec)["hosts.yml"]}
    result = run_promtool(tmp_path, rules, host_tests("/home/work/ssd1") + zookeeper_tests())
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_data_disk_threshold_comes_from_the_stack(tmp_path):
    spec = monitoring_spec(tmp_path, "2.5.0", diskFullPercent=95)
    size = 100 * 2**30
    mount = {**NODE, "mountpoint": "/home/work/ssd2"}
    at_90 = [series("node_filesystem_avail_bytes", mount, f"{size // 10}x40"),
             series("node_filesystem_size_bytes", mount, f"{size}x40")]
    result = run_promtool(tmp_path, {"hosts.yml": mf.alert_rules(spec)["hosts.yml"]},
                          [silent("DataDiskNearlyFull", at_90, "6m")])
    assert result.returncode == 0, result.stdout + result.stderr


# The reporter's labels (pegasus_counter_reporter.cpp, v2.5.0); its empty `app` and
# `partition` are no labels at all once Prometheus has them.
PEGASUS_25 = {"cluster": "c1", "service": "pegasus", "host_name": "ip-10-0-0-11"}


def perf_counter_tests() -> list[dict]:
    replica = {"job": "pegasus-replica", "node": "replica-1", "role": "replica", "instance": "10.0.0.22:9091"}
    meta = {**PEGASUS_25, "job": "pegasus-meta", "node": "meta-0", "role": "meta", "pegasus_job": "meta",
            "port": "34601", "instance": "10.0.0.11:9091"}
    collector = {**PEGASUS_25, "job": "pegasus-collector", "node": "meta-0", "role": "collector",
                 "pegasus_job": "collector", "port": "34101", "instance": "10.0.0.11:9092"}
    return [
        fires("PegasusServerDown", [series("up", replica, "1 0x10")], "2m", {**replica, "severity": "critical"},
              "the replica server on replica-1 does not answer"),
        silent("PegasusServerDown", [series("up", replica, "1x200")]),
        fires("PegasusReplicaServerNotAlive", [series("meta_eon_meta_service_unalive_nodes", meta, "0 1x10")], "2m",
              {"severity": "critical"}, "the MetaServer counts 1 ReplicaServer(s) not ALIVE"),
        silent("PegasusReplicaServerNotAlive", [series("meta_eon_meta_service_unalive_nodes", meta, "0x200")]),
        fires("PegasusPartitionsUnwritable", [
            series("meta_eon_server_state_dead_partition_count", meta, "0x10"),
            series("meta_eon_server_state_unreadable_partition_count", meta, "0x10"),
            series("meta_eon_server_state_unwritable_partition_count", meta, "0 2x10")], "2m", {"severity": "critical"},
            "2 partition(s) cannot take writes (no primary, or too few replicas)"),
        fires("PegasusPartitionsUnhealthy", [
            series("meta_eon_server_state_writable_ill_partition_count", meta, "0 3x60")], "12m",
              {"severity": "warning"}, "3 partition(s) lack a secondary for 10 minutes"),
        silent("PegasusPartitionsUnhealthy", [
            series("meta_eon_server_state_writable_ill_partition_count", meta, "0 3x20 0x200")]),
        # 1000000 is 100%: 98.5% is below the default 99%.
        fires("PegasusAvailabilityLow", [
            series("collector_app_pegasus_cluster_available_minute", collector, "1000000 985000x20")], "3m",
              {**collector, "severity": "critical"},
              "the Collector's probe found the cluster 98.50% available in the last minute (threshold 99%)"),
        silent("PegasusAvailabilityLow", [
            series("collector_app_pegasus_cluster_available_minute", collector, "995000x200")]),
    ]


def metrics_tests() -> list[dict]:
    replica = {"job": "pegasus-replica", "node": "replica-1", "role": "replica", "instance": "10.0.0.22:34801"}
    meta = {"job": "pegasus-meta", "node": "meta-0", "role": "meta", "cluster": "c1", "entity": "server",
            "instance": "10.0.0.11:34601"}
    table = {**meta, "entity": "table", "table_id": "2"}
    return [
        fires("PegasusServerDown", [series("pegasus_up", replica, "1 0x10")], "2m", {**replica, "severity": "critical"},
              "the replica server on replica-1 does not answer"),
        silent("PegasusServerDown", [series("pegasus_up", replica, "1x200")]),
        fires("PegasusReplicaServerNotAlive", [series("pegasus_unalive_replica_servers", meta, "0 1x10")], "2m",
              {"severity": "critical"}, "the MetaServer counts 1 ReplicaServer(s) not ALIVE"),
        fires("PegasusPartitionsUnwritable", [
            series("pegasus_dead_partitions", table, "0x10"), series("pegasus_unreadable_partitions", table, "0 1x10"),
            series("pegasus_unwritable_partitions", table, "0x10")], "2m", {"severity": "critical"},
            "1 partition(s) cannot take writes (no primary, or too few replicas)"),
        silent("PegasusPartitionsUnwritable", [
            series("pegasus_dead_partitions", table, "0x200"), series("pegasus_unreadable_partitions", table, "0x200"),
            series("pegasus_unwritable_partitions", table, "0x200")]),
        fires("PegasusPartitionsUnhealthy", [series("pegasus_writable_ill_partitions", table, "0 1x60")], "12m",
              {"severity": "warning"}, "1 partition(s) lack a secondary for 10 minutes"),
    ]


@pytest.mark.parametrize("release, tests", [("2.5.0", perf_counter_tests), ("2.6.0", metrics_tests)])
def test_pegasus_alerts_fire_on_the_releases_own_series(tmp_path, release, tests):
    rules = {name: text for name, text in mf.alert_rules(monitoring_spec(tmp_path, release)).items()
             if name.startswith("pegasus-")}
    assert len(rules) == 1
    result = run_promtool(tmp_path, rules, tests())
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_down_alerts_wait_the_stacks_down_for_seconds(tmp_path):
    spec = monitoring_spec(tmp_path, "2.5.0", downForSeconds=30)
    rules = mf.alert_rules(spec)
    waits = {rule["alert"]: rule.get("for") for text in rules.values()
             for group in yaml.safe_load(text)["groups"] for rule in group["rules"]}
    assert {a: waits[a] for a in ("PegasusServerDown", "PegasusReplicaServerNotAlive", "HostDown",
                                  "ZooKeeperServerDown")} == dict.fromkeys(
        ("PegasusServerDown", "PegasusReplicaServerNotAlive", "HostDown", "ZooKeeperServerDown"), "30s")
    replica = {"job": "pegasus-replica", "node": "replica-1", "role": "replica", "instance": "10.0.0.22:9091"}
    down = [series("up", replica, "1 0x10")]  # down from 15 s on
    result = run_promtool(tmp_path, {"pegasus-perf-counters.yml": rules["pegasus-perf-counters.yml"]}, [
        silent("PegasusServerDown", down, "30s"),
        fires("PegasusServerDown", down, "45s", {**replica, "severity": "critical"},
              "the replica server on replica-1 does not answer")])
    assert result.returncode == 0, result.stdout + result.stderr
