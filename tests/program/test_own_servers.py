"""Your own servers under mocks: the same components on listed servers, and nothing of AWS."""

from __future__ import annotations

import copy

import pytest

from tests.program.test_program import COMMAND, COPY
from tests.program.test_real_deploy import SECRET_SIG

DEVICE = "/dev/disk/by-id/nvme-Samsung_SSD_980_PRO_1TB_S5GXNX0T{}"


@pytest.fixture
def own_config(base_config) -> dict:
    raw = copy.deepcopy(base_config)
    del raw["network"]
    raw["zookeeper"] = {"allowSingleNode": True}
    raw["servers"] = {
        "zookeeper": [{"host": "zk1.example.net"}],
        "meta": [{"host": "10.1.0.11", "nic": "eth1"}, {"host": "10.1.0.12", "nic": "eth1"}],
        "replica": [{"host": f"10.1.0.2{i}", "nic": f"02:00:0a:01:00:2{i}",
                     "dataDisks": [DEVICE.format(i), "/data/ssd2"]} for i in range(3)],
    }
    return raw


def test_no_aws_resource_and_no_aws_lookup(deploy, own_config):
    d = deploy(own_config)
    aws = [r.name for r in d.resources.values() if r.type.startswith(("aws:", "pulumi:providers:aws"))]
    assert aws == []
    assert d.cloud.invokes == [], "an AWS lookup (the AMI, a zone) would need credentials"
    # The same components do the work: preparation, disks, ZooKeeper, guard, package, roles, checks.
    names = set(d.resources)
    for host in ("zk-0", "meta-0", "meta-1", "replica-0", "replica-1", "replica-2"):
        assert f"c1-{host}-prepare" in names and f"c1-{host}-address" in names
    assert {"c1-replica-0-disks", "c1-zk-0-zookeeper", "c1-zookeeper-ready", "c1-zookeeper-path", "c1-health",
            "c1-meta-0-meta", "c1-meta-0-collector", "c1-rolling-restart", "fixed-settings"} <= names
    assert len([r for r in d.resources.values() if r.type == COPY]) == 5  # the package, on each Pegasus host


def test_hosts_are_reached_at_their_listed_address_and_known_by_their_nic(deploy, own_config):
    d = deploy(own_config)
    assert d.resources["c1-zk-0-prepare"].inputs["connection"]["host"] == "zk1.example.net"
    assert d.resources["c1-replica-1-prepare"].inputs["connection"]["user"] == "admin"
    # The address command names the NIC the stack gives (MACs in lower case) and changes nothing.
    assert "nic=02:00:0a:01:00:21" in d.resources["c1-replica-1-address"].inputs["create"]
    assert "nic=eth1" in d.resources["c1-meta-0-address"].inputs["create"]
    # What it reads is the address every config names: here the mock's answer on ens6.
    meta_ips = d.exports["metaServers"].split(",")
    assert len(meta_ips) == 2 and all(ip.startswith("10.43.") for ip in meta_ips)
    stage = d.resources["c1-replica-0-replica-config"].inputs["stdin"]
    assert "primary_interface = ens6" in stage and d.exports["metaServers"] in stage
    assert d.exports["ssh"]["replica-0"] == "ssh admin@10.1.0.20"


def test_devices_are_prepared_and_an_operators_directory_is_only_used(deploy, own_config):
    d = deploy(own_config)
    disks = d.resources["c1-replica-0-disks"].inputs
    assert f"prepare_disk {DEVICE.format(0)} /home/work/ssd1 pg-ssd1" in disks["create"]
    assert "use_directory /data/ssd2" in disks["create"] and "/home/work/ssd2" not in disks["create"]
    assert "leave_directory /data/ssd2" in disks["delete"]
    assert "cleanup_disk /data/ssd2" not in disks["delete"], "the operator's mount would be unmounted"
    # The data dir on the operator's mount, and the unit refuses to run without that mount.
    stage = d.resources["c1-replica-0-replica-config"].inputs["stdin"]
    assert "ssd1:/home/work/ssd1/pegasus/c1,ssd2:/data/ssd2/pegasus/c1" in stage
    start = d.resources["c1-replica-0-replica"].inputs["create"]
    assert "RequiresMountsFor=/data/ssd2" in start and "ExecStartPre=/bin/mountpoint -q /data/ssd2" in start


def test_a_collector_of_its_own_and_an_external_ensemble(deploy, own_config):
    raw = copy.deepcopy(own_config)
    raw["collector"] = {"colocate": False}
    raw["servers"]["collector"] = [{"host": "10.1.0.31"}]
    del raw["servers"]["zookeeper"]
    raw["zookeeper"] = {"servers": "10.1.0.41:2181"}
    d = deploy(raw)
    assert "c1-collector-0-collector" in d.resources and "c1-meta-0-collector" not in d.resources
    # Nothing of ZooKeeper is made on the listed servers: no host, no install, no readiness check.
    assert not [n for n in d.resources if n.startswith("c1-zk-") or n.endswith(("-zookeeper", "-zookeeper-ready"))]
    assert d.resources["c1-zookeeper-path"].inputs["servers"] == "10.1.0.41:2181"
    assert "10.1.0.41:2181" in d.resources["c1-meta-0-meta-config"].inputs["stdin"]


def test_preview_without_any_cloud_passes_the_providers_checks(preview, own_config):
    p = preview(own_config)
    assert not [r for r in p.resources.values() if r.type.startswith("aws:")]
    assert p.cloud.invokes == []
    # The addresses come from the servers at `up`: unknown at preview, as an instance's are.
    assert "create" in p.cloud.unknown_inputs["c1-replica-0-replica"]
    assert [r for r in p.resources.values() if r.type == COMMAND]


def test_monitoring_on_the_first_metaservers_host_or_the_listed_one(deploy, own_config):
    # None listed: the first MetaServer's host, its web interfaces on the loopback address only.
    d = deploy(own_config)
    install = d.resources["c1-monitoring-install"]
    assert install.inputs["connection"]["host"] == "10.1.0.11"
    assert "--web.listen-address=127.0.0.1:9090" in str(install.inputs["create"])
    # (Alertmanager's config may hold the receivers' secrets: the script is a secret in the state)
    assert SECRET_SIG in str(d.cloud.raw_inputs["c1-monitoring-install"]["create"])
    assert d.exports["monitoring"]["prometheus"] == "http://127.0.0.1:9090"
    assert d.exports["monitoring"]["host"] == "meta-0" and d.exports["monitoring"]["ssh"] == "ssh admin@10.1.0.11"
    exporters = {r.name for r in d.resources.values() if r.name.endswith("-node-exporter")}
    assert exporters == {f"c1-{h}-node-exporter" for h in ("zk-0", "meta-0", "meta-1", "replica-0", "replica-1",
                                                           "replica-2")}
    # One listed: found like the cluster's servers, and monitored itself.
    listed = copy.deepcopy(own_config)
    listed["servers"]["monitoring"] = [{"host": "10.1.0.31", "nic": "eth1"}]
    d = deploy(listed)
    assert d.resources["c1-monitoring-install"].inputs["connection"]["host"] == "10.1.0.31"
    assert "nic=eth1" in d.resources["c1-monitoring-0-address"].inputs["create"]
    assert "c1-monitoring-0-node-exporter" in d.resources and "c1-monitoring-0-prepare" not in d.resources
    assert d.exports["monitoring"]["host"] == "monitoring-0"
    assert not [r for r in d.resources.values() if r.type.startswith("aws:")]
