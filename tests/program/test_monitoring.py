"""The monitoring's resources under mocks: the AWS monitoring host (own instance, encrypted
volume, its group), node_exporter everywhere, rules that face no one but the monitoring
group and adminCidr, and the outputs."""

from __future__ import annotations

import copy

import pytest

from tests.program.fake_aws import FakeCloud, RecordingMonitor
from tests.support.package_builder import build_package
from tests.support.pulumi_program import run_program, stack_config


def deploy(base_config, **monitoring):
    config = copy.deepcopy(base_config)
    config["monitoring"] = monitoring
    cloud = FakeCloud()
    exports = run_program(cloud, stack_config("pegasus", config), secret_keys=["pegasus:ssh"],
                          monitor=RecordingMonitor(cloud))
    return cloud, exports


def test_own_host_gets_an_instance_an_encrypted_volume_and_its_own_group(base_config):
    cloud, exports = deploy(base_config)
    by_name = {r.name: r for r in cloud.resources.values()}
    assert by_name["c1-monitoring-0"].type == "aws:ec2/instance:Instance"
    assert by_name["c1-monitoring-0-data"].inputs["encrypted"] is True
    assert by_name["c1-monitoring"].type == "aws:ec2/securityGroup:SecurityGroup"
    exporters = {n for n in by_name if n.endswith("-node-exporter")}
    assert exporters == {f"c1-{h}-node-exporter" for h in
                         ("zk-0", "zk-1", "zk-2", "meta-0", "meta-1", "meta-2", "replica-0", "replica-1", "replica-2",
                          "monitoring-0")}
    assert exports["monitoring"]["prometheus"].endswith(":9090")
    assert exports["monitoring"]["tunnel"].startswith("ssh -N -L 9090:127.0.0.1:9090")


@pytest.mark.parametrize("placement", ["own", "meta"])
def test_nothing_new_faces_the_world(base_config, placement):
    cloud, _ = deploy(base_config, host=placement)
    rules = [r for r in cloud.resources.values() if r.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"]
    for rule in rules:
        assert rule.inputs.get("cidrIpv4") != "0.0.0.0/0", rule.name
    ours = [r for r in rules if "monitoring" in r.name]
    # Exporters and metrics ports: from a group only; the web interfaces: adminCidr only.
    for rule in ours:
        port = rule.inputs["fromPort"]
        if port in (9090, 9093, 3000):
            assert rule.inputs["cidrIpv4"] == base_config["network"]["adminCidr"], rule.name
        elif port != 22:
            assert rule.inputs.get("referencedSecurityGroupId") and not rule.inputs.get("cidrIpv4"), rule.name
    # The admin range no longer reaches the Pegasus exporters' ports.
    assert not [r for r in rules if "-metrics-" in r.name]


def test_turning_it_on_rolls_each_25_server_once_for_its_exporter_and_no_26_server(base_config, tmp_path):
    """Existing 2.4/2.5 stacks: the first up with monitoring turns each process's exporter on
    (perf_counter_sink is read at start only), so every server restarts once, one at a time,
    and the preview's diff says why. 2.6 serves /metrics anyway: nothing restarts."""
    off = copy.deepcopy(base_config)
    off["monitoring"] = {"enabled": False}
    _, before = deploy_records(off)
    _, after = deploy_records(base_config)
    assert set(after) == set(before) and all(before[k] != after[k] for k in before)
    assert all("[pegasus.server] perf_counter_sink = prometheus" in after[k] and
               "perf_counter_sink" not in before[k] for k in before)
    v26 = copy.deepcopy(base_config)
    v26["package"] = str(build_package(tmp_path, version="2.6.0", server="placeholder"))
    _, before = deploy_records({**v26, "monitoring": {"enabled": False}})
    _, after = deploy_records(v26)
    assert after == before


def deploy_records(config: dict) -> tuple[FakeCloud, dict]:
    """The rolling restart's record of each server: what it restarts on when it changes."""
    cloud = FakeCloud()
    run_program(cloud, stack_config("pegasus", config), secret_keys=["pegasus:ssh"], monitor=RecordingMonitor(cloud))
    [roll] = [r for r in cloud.resources.values() if r.name == "c1-rolling-restart"]
    return cloud, {k: "\n".join(v) if isinstance(v, list) else str(v) for k, v in roll.inputs["restart_records"].items()}
