"""What a first real deploy and its updates need, read at the source of Pegasus,
pulumi-command and AWS (issue 7): each test fails on the program before it."""

from __future__ import annotations

import pytest

from components.render.config_ini import declared_tables
from tests.program.conftest import PRIVATE_KEY
from tests.program.fake_aws import NIC_NET, PRIMARY_NET, FakeCloud
from tests.program.fake_aws import _address as fake_address
from tests.program.test_program import COMMAND, COPY, INGRESS, INSTANCE, with_
from tests.support.package_builder import build_package, fixture_for_version

SUBNET = "aws:ec2/subnet:Subnet"
SECRET_SIG = "4dabf18193072939515e22adb298388d"


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("releases")
    return {v: str(build_package(root / v, version=v, server="placeholder")) for v in ("2.4.0", "2.5.0", "2.6.0")}


def test_failure_detector_udp_flows_are_open_and_nothing_wider(deploy, base_config):
    d = deploy(base_config)
    udp = {(r.name, r.inputs["fromPort"], r.inputs["toPort"]) for r in d.of_type(INGRESS)
           if r.inputs["ipProtocol"] == "udp"}
    # A ReplicaServer pings the MetaServer's port; the MetaServer answers to the replica's port.
    assert udp == {("c1-meta-34601-udp-from-meta", 34601, 34601), ("c1-meta-34601-udp-from-replica", 34601, 34601),
                   ("c1-replica-34801-udp-from-meta", 34801, 34801)}
    for rule in d.of_type(INGRESS):
        assert rule.inputs["ipProtocol"] in ("tcp", "udp"), rule.name  # never "-1" (all traffic)


def test_preview_of_a_new_stack_passes_the_providers_checks(preview, base_config):
    # pulumi-command 1.2.1 fails CopyToRemote.Check when its source is unknown at
    # preview: every upload's source must be known before the cloud answers.
    p = preview(with_(base_config, network={"adminCidr": "203.0.113.0/24", "extraNics": 1},
                      packageDelivery="upload"))
    copies = [r for r in p.resources.values() if r.type == COPY]
    assert copies and all("source" not in p.cloud.unknown_inputs[r.name] for r in copies)
    # The double is strict: the staged configs really are unknown at preview.
    assert "stdin" in p.cloud.unknown_inputs["c1-replica-0-replica-config"]


def test_preview_of_a_scale_out_passes_the_providers_checks(preview, base_config):
    p = preview(with_(base_config, replica={"count": 4}, packageDelivery="upload"))
    assert "c1-replica-3-package-upload" in p.resources
    assert "c1-replica-3-package" in preview(with_(base_config, replica={"count": 4})).resources


def test_default_tables_come_from_the_release(deploy, base_config, packages):
    expected = {"2.4.0": [], "2.5.0": ["stat"], "2.6.0": ["stat"]}
    for version, tables in expected.items():
        assert declared_tables(fixture_for_version(version).read_text()) == tables
        health = deploy(with_(base_config, package=packages[version])).resources["c1-health"].inputs["script"]
        assert f"tables=({' '.join(tables)})" in health, version


def test_releases_from_2_6_check_the_reverse_name(deploy, base_config, packages):
    for version, required in (("2.5.0", "false"), ("2.6.0", "true")):
        start = deploy(with_(base_config, package=packages[version])).resources["c1-replica-0-replica"].inputs["create"]
        assert f"needs_reverse_name={required}" in start, version


def test_the_vpc_gives_private_addresses_their_names(deploy, base_config):
    vpc = deploy(base_config).of_type("aws:ec2/vpc:Vpc")[0]
    assert vpc.inputs["enableDnsHostnames"] is True and vpc.inputs["enableDnsSupport"] is True


def test_uploads_follow_the_instance_they_land_on(deploy, base_config):
    # CopyToRemote re-copies only on a new file or path: a replaced instance
    # (a new id) must be in its triggers, or the new machine never gets the package.
    d = deploy(with_(base_config, packageDelivery="upload"))
    triggers = d.resources["c1-replica-0-package-upload"].inputs["triggers"]
    assert d.cloud.ids["c1-replica-0"] in triggers, triggers  # that instance's own id, nothing else's
    assert d.resources["c1-replica-0"].type == INSTANCE


def test_no_command_sends_its_previous_output_to_sshd(deploy, base_config):
    for r in deploy(base_config).of_type(COMMAND):
        assert r.inputs.get("addPreviousOutputInEnv") is False, r.name


def test_an_existing_server_keeps_its_instance_type(deploy, base_config):
    cloud = FakeCloud(existing={"c1-replica-1": {"instanceType": "m6i.xlarge"}})
    with pytest.raises(Exception) as error:
        deploy(base_config, cloud=cloud)
    message = str(error.value)
    assert "replica.instanceType: replica-1 runs m6i.xlarge, the stack asks for m6i.2xlarge" in message
    assert "one server at a time" in message


def test_the_availability_zone_is_pinned_by_the_subnets(deploy, base_config):
    # The subnet was made in eu-west-1b; the zone lookup now answers eu-west-1a first.
    cloud = FakeCloud(existing={"c1-private": {"availabilityZone": "eu-west-1b"},
                                "c1-public": {"availabilityZone": "eu-west-1b"}})
    d = deploy(base_config, cloud=cloud)
    for subnet in d.of_type(SUBNET):
        assert subnet.ignore_changes == ["availabilityZone"], subnet.name
    for instance in d.of_type(INSTANCE):
        assert instance.inputs["availabilityZone"] == "eu-west-1b", instance.name


def _outside_secrets(value) -> list[str]:
    """The plain text of a raw input, every secret left out ({SECRET_SIG: ..., "value": ...})."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return []
        return [text for k, v in value.items() for text in [str(k), *_outside_secrets(v)]]
    if isinstance(value, (list, tuple)):
        return [text for v in value for text in _outside_secrets(v)]
    return [str(value)]


def _inside_secrets(value) -> list[str]:
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return [str(value.get("value"))]
        return [text for v in value.values() for text in _inside_secrets(v)]
    if isinstance(value, (list, tuple)):
        return [text for v in value for text in _inside_secrets(v)]
    return []


def test_secret_overrides_stay_secret(deploy, base_config):
    raw = with_(base_config, replica={"configOverrides": {"pegasus.server": {"rocksdb_password": "hunter2"}}})
    d = deploy(raw, secret_keys=("pegasus:ssh", "pegasus:replica"))
    # The staged config holds the value, as a secret...
    staged = d.cloud.raw_inputs["c1-replica-0-replica-config"]
    assert any("rocksdb_password = hunter2" in text for text in _inside_secrets(staged))
    # ...and no input of any resource holds it outside a secret, even beside one.
    for name, inputs in d.cloud.raw_inputs.items():
        leaks = [field for field, value in inputs.items() if any("hunter2" in t for t in _outside_secrets(value))]
        assert not leaks, (name, leaks)


def test_units_as_the_real_server_needs_them(deploy, base_config):
    d = deploy(with_(base_config, replica={"dataDisks": {"count": 2}, "slogDisk": {"type": "gp3", "sizeGiB": 50}}))
    replica = d.resources["c1-replica-0-replica"].inputs["create"]
    for mount in ("/home/work/ssd1", "/home/work/ssd2", "/home/work/slog"):
        assert f"RequiresMountsFor={mount}" in replica and f"ExecStartPre=/bin/mountpoint -q {mount}\n" in replica
    assert "WorkingDirectory=/home/work/app/pegasus/replica\n" in replica
    assert "StartLimitBurst=4" in replica and "StartLimitIntervalSec=600" in replica
    meta = d.resources["c1-meta-0-meta"].inputs["create"]
    assert "WorkingDirectory=/home/work/app/pegasus/meta\n" in meta and "RequiresMountsFor" not in meta
    zookeeper = d.resources["c1-zk-0-zookeeper"].inputs["stdin"]
    assert "SuccessExitStatus=143" in zookeeper


def test_a_colocated_collector_gets_its_own_prometheus_port(deploy, base_config):
    # Without the cluster's monitoring, the operators' range scrapes the exporters it turned on.
    raw = with_(base_config, configOverrides={"pegasus.server": {"perf_counter_sink": "prometheus"}},
                monitoring={"enabled": False})
    d = deploy(raw)
    assert "prometheus_port = 9091" in d.resources["c1-meta-0-meta-config"].inputs["stdin"]
    assert "prometheus_port = 9092" in d.resources["c1-meta-0-collector-config"].inputs["stdin"]
    metrics = {(r.inputs["fromPort"], r.inputs["cidrIpv4"]) for r in d.of_type(INGRESS) if "metrics" in r.name}
    assert metrics == {(9091, "203.0.113.0/24"), (9092, "203.0.113.0/24")}
    assert not [r for r in deploy(with_(base_config, monitoring={"enabled": False})).of_type(INGRESS)
                if "metrics" in r.name]
    # With it (the default), the program turns them on itself, and only the monitoring group reaches them.
    monitored = deploy(base_config)
    assert "perf_counter_sink = prometheus" in monitored.resources["c1-replica-0-replica-config"].inputs["stdin"]
    assert "prometheus_port = 9092" in monitored.resources["c1-meta-0-collector-config"].inputs["stdin"]
    scrapes = {(r.inputs["fromPort"], r.inputs.get("cidrIpv4")) for r in monitored.of_type(INGRESS)
               if r.inputs["fromPort"] in (9091, 9092)}
    assert scrapes == {(9091, None), (9092, None)}


def test_hdfs_service_args_are_refused_until_supported(deploy, base_config):
    with pytest.raises(Exception) as error:
        deploy(with_(base_config, hdfsServiceArgs="hdfs://nn:8020 /backup"))
    assert "pegasus:hdfsServiceArgs" in str(error.value) and "Hadoop" in str(error.value)


def test_private_key_never_reaches_a_staged_config(deploy, base_config):
    d = deploy(base_config)
    assert PRIVATE_KEY.splitlines()[1] not in d.resources["c1-meta-0-meta-config"].inputs["stdin"]


def test_direct_zookeeper_access_opens_the_client_port_to_the_operators_only(deploy, base_config):
    # Found by the local cloud's security groups: the path guard runs where `pulumi up` runs.
    direct = deploy(with_(base_config, zookeeper={"count": 3, "access": "direct"},
                          network={"adminCidr": "10.8.0.0/16"}))
    rule = direct.resources["c1-zookeeper-client-from-operators"].inputs
    assert (rule["fromPort"], rule["cidrIpv4"]) == (2181, "10.8.0.0/16")
    tunnel = deploy(base_config)
    assert "c1-zookeeper-client-from-operators" not in tunnel.resources
    # Never beyond the private ranges: ZooKeeper takes no authentication from Pegasus 2.4/2.5 (issue 19).
    with pytest.raises(Exception) as error:
        deploy(with_(base_config, zookeeper={"count": 3, "access": "direct"}))
    assert "pegasus:zookeeper.access" in str(error.value) and "'203.0.113.0/24'" in str(error.value)


def test_only_the_metaservers_hosts_may_write_the_clusters_zookeeper_path(deploy, base_config):
    d = deploy(with_(base_config, network={"adminCidr": "203.0.113.0/24", "extraNics": 1}))
    metas = [i.name for i in d.of_type(INSTANCE) if i.inputs["tags"]["pegasus:role"] == "meta"]
    nics = [n.name for n in d.of_type("aws:ec2/networkInterface:NetworkInterface") if n.name.startswith("c1-meta-")]
    expected = {fake_address(PRIMARY_NET, m) for m in metas} | {fake_address(NIC_NET, n) for n in nics}
    assert len(expected) == 6  # each MetaServer host's own address and its extra NIC's
    assert sorted(d.resources["c1-zookeeper-path"].inputs["writers"]) == sorted(expected)


def test_servers_live_within_their_groups_rules(deploy, base_config):
    # Found by the local cloud's firewall: destroy removed the SSH rule side by side
    # with the commands that stop the roles, which then could not connect.
    d = deploy(base_config)
    for instance in d.of_type(INSTANCE):
        kind = instance.inputs["tags"]["pegasus:role"]
        ancestors = d.ancestors(instance.name)
        assert {f"c1-{kind}-ssh", f"c1-{kind}-egress"} <= ancestors, instance.name
    assert "c1-replica-34801-udp-from-meta" in d.ancestors("c1-replica-0")


def test_only_the_first_command_on_a_host_waits_for_it_to_boot(deploy, base_config):
    # A host gone for good must fail the next up within a minute, not a quarter hour.
    d = deploy(base_config)
    for r in d.of_type(COMMAND):
        dials = r.inputs["connection"]["dialErrorLimit"]
        # (the monitoring host's first command mounts its volume: it has no -prepare)
        first = r.name.endswith("-prepare") or r.name == "c1-monitoring-0-disks"
        assert dials == (60 if first else 4), (r.name, dials)
