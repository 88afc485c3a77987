"""The Pulumi program under mocks: what `pulumi up` would ask AWS and the hosts for."""

from __future__ import annotations

import copy
import re

import pulumi
import pytest

from components.operations.rolling_restart import RollingRestartProvider, changed_servers
from tests.program.conftest import PRIVATE_KEY
from tests.unit.script_runner import FakeMeta, run_script

INSTANCE = "aws:ec2/instance:Instance"
VOLUME = "aws:ebs/volume:Volume"
ATTACHMENT = "aws:ec2/volumeAttachment:VolumeAttachment"
NIC = "aws:ec2/networkInterface:NetworkInterface"
COMMAND = "command:remote:Command"
COPY = "command:remote:CopyToRemote"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
NIC_ATTACHMENT = "aws:ec2/networkInterfaceAttachment:NetworkInterfaceAttachment"


def with_(raw: dict, **changes) -> dict:
    raw = copy.deepcopy(raw)
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return raw


SHAPES = {
    # name: (config changes, instances, volumes, nics) of the cluster's hosts; the monitoring
    # host adds its own instance and volume unless monitoring is off or on a MetaServer's host
    "default": ({}, 3 + 3 + 3, 3 * 2, 0),
    "external zookeeper": ({"zookeeper": {"servers": "10.9.0.5:2181,10.9.0.6:2181,10.9.0.7:2181"}}, 3 + 3, 3 * 2, 0),
    "collector on its own host": ({"collector": {"colocate": False}}, 3 + 3 + 3 + 1, 3 * 2, 0),
    "no collector": ({"collector": {"enabled": False}}, 3 + 3 + 3, 3 * 2, 0),
    "extra nic": ({"network": {"adminCidr": "203.0.113.0/24", "extraNics": 1}}, 9, 6, 3 + 3),
    "slog disk, 4 data disks, 5 replicas": (
        {"replica": {"count": 5, "dataDisks": {"count": 4}, "slogDisk": {"type": "gp3", "sizeGiB": 50}}},
        3 + 3 + 5, 5 * 5, 0),
    "small": ({"meta": {"count": 2}, "zookeeper": {"count": 1, "allowSingleNode": True}}, 1 + 2 + 3, 6, 0),
    "monitoring on the first MetaServer's host": ({"monitoring": {"host": "meta"}}, 3 + 3 + 3, 3 * 2, 0),
    "no monitoring": ({"monitoring": {"enabled": False}}, 3 + 3 + 3, 3 * 2, 0),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_resource_counts(deploy, base_config, shape):
    changes, instances, volumes, nics = SHAPES[shape]
    raw = {**copy.deepcopy(base_config), **changes}
    d = deploy(raw)
    monitoring = raw.get("monitoring", {})
    own_monitoring_host = monitoring.get("enabled", True) and monitoring.get("host", "own") == "own"
    assert d.count(INSTANCE) == instances + own_monitoring_host
    assert d.count(VOLUME) == volumes + own_monitoring_host
    assert d.count(ATTACHMENT) == volumes + own_monitoring_host
    exporters = [r for r in d.of_type(COMMAND) if r.name.endswith("-node-exporter")]
    assert len(exporters) == (instances + own_monitoring_host if monitoring.get("enabled", True) else 0)
    assert d.count(NIC) == nics
    assert d.count(NIC_ATTACHMENT) == nics
    collector_runs = raw.get("collector", {}).get("enabled", True)
    metas, replicas = raw.get("meta", {}).get("count", 3), raw.get("replica", {}).get("count", 3)
    roles = metas + replicas + (1 if collector_runs else 0)
    pegasus_hosts = instances - (0 if "servers" in raw.get("zookeeper", {}) else raw.get("zookeeper", {}).get("count", 3))
    assert d.count(COPY) == 0  # the package comes from the stack's store (test_package_store.py)
    assert len([r for r in d.of_type(COMMAND) if r.name.endswith("-package")]) == pegasus_hosts
    # One staged config per role, written by a command (its text is unknown at preview).
    assert len([r for r in d.of_type(COMMAND) if r.name.endswith("-config")]) == roles
    # One rolling restart for the cluster holds every role's record; no per-server roll or check.
    (restart,) = [r for r in d.resources.values() if r.name == "c1-rolling-restart"]
    assert len(restart.inputs["restart_records"]) == roles
    assert not [r for r in d.of_type(COMMAND) if r.name.endswith(("-roll", "-roll-leader", "-check"))]
    zk_ready = [r for r in d.of_type(COMMAND) if r.name == "c1-zookeeper-ready"]
    assert len(zk_ready) == (0 if "servers" in raw.get("zookeeper", {}) else 1)


def test_security_baseline(deploy, base_config):
    d = deploy(with_(base_config, network={"adminCidr": "203.0.113.0/24", "extraNics": 1},
                     replica={"slogDisk": {"type": "io2", "sizeGiB": 100, "iops": 5000}}))
    for volume in d.of_type(VOLUME):
        assert volume.inputs["encrypted"] is True, volume.name
        assert {"pegasus:cluster", "pegasus:role", "pegasus:node", "pegasus:disk"} <= set(volume.inputs["tags"])
    instances = d.of_type(INSTANCE)
    assert {i.inputs["tags"]["pegasus:role"] for i in instances} == {"zookeeper", "meta", "replica", "monitoring"}
    for instance in instances:
        assert instance.inputs["metadataOptions"]["httpTokens"] == "required", instance.name
        # Every instance's own root disk is encrypted, and no instance has a public address.
        assert instance.inputs["rootBlockDevice"]["encrypted"] is True, instance.name
        assert instance.inputs["associatePublicIpAddress"] is False, instance.name
        # A newer AMI or a rotated key pair would otherwise replace the server and its data.
        # A new instance type would stop every server of the role at once: refused instead.
        # New user data (the host key given at launch) would stop and start it; the tag that says
        # which key it was launched with is set at launch only.
        # (The monitoring host's alone takes a new type in place: AWS stops and starts it.)
        pegasus = instance.inputs["tags"]["pegasus:role"] != "monitoring"
        assert set(instance.ignore_changes) == {"ami", "keyName", "userData", 'tags["pegasus:host-key"]'} | (
            {"instanceType"} if pegasus else set()), instance.ignore_changes
        # Its first commands install packages: the private subnet's route (via the NAT) comes first.
        assert "c1-private-subnet-routes" in d.ancestors(instance.name)
    for attachment in d.of_type(ATTACHMENT) + d.of_type(NIC_ATTACHMENT):
        assert attachment.delete_before_replace, f"{attachment.name} cannot attach anew while attached"
    for attachment in d.of_type(ATTACHMENT):
        # A volume is never pulled from under a running server's mounted file system.
        assert attachment.inputs["stopInstanceBeforeDetaching"] is True, attachment.name
    rules = d.of_type(INGRESS)
    assert rules
    # The operators' range reaches SSH, and the monitoring's web interfaces (Prometheus,
    # Alertmanager, Grafana) on its host; everything else comes from a group.
    for rule in rules:
        assert rule.inputs.get("cidrIpv4") != "0.0.0.0/0", rule.name
        if "cidrIpv4" in rule.inputs:
            assert rule.inputs["fromPort"] == rule.inputs["toPort"] in (22, 9090, 9093, 3000), rule.name
            assert rule.inputs["cidrIpv4"] == "203.0.113.0/24"
        else:
            assert rule.inputs["referencedSecurityGroupId"], rule.name
    ports = {(r.inputs["ipProtocol"], r.inputs["fromPort"]) for r in rules}
    assert ports == {("tcp", p) for p in (22, 2181, 2888, 3888, 34601, 34801, 34101)} | {
        ("udp", 34601), ("udp", 34801)} | {("tcp", p) for p in (9100, 9091, 9092, 9090, 9093, 3000)}
    # Rules live in rule resources only (mixing in inline rules makes the provider overwrite them).
    groups = d.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert groups and not any(g.inputs.get("egress") or g.inputs.get("ingress") for g in groups)
    egress = d.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    servers_out = {group_name(e.inputs["securityGroupId"]) for e in egress if e.inputs.get("cidrIpv4") == "0.0.0.0/0"}
    assert servers_out == {"zookeeper", "meta", "replica", "collector", "monitoring"}
    # The applications' group sends to the client ports only.
    assert {(group_name(e.inputs["securityGroupId"]), group_name(e.inputs["referencedSecurityGroupId"]),
             e.inputs["fromPort"]) for e in egress if "cidrIpv4" not in e.inputs} == {
        ("clients", "meta", 34601), ("clients", "replica", 34801)}


def group_name(group_id: str) -> str:
    """`meta` from the id the mocks give the group `c1-meta` (`c1-meta-<hex>`); a group
    id of the stack config (`sg-...`) as it is."""
    return group_id if group_id.startswith("sg-") else group_id.rsplit("-", 1)[0].removeprefix("c1-")


# (target group, protocol, port, source group): every rule between groups, read from
# Pegasus's and ZooKeeper's needs (network.py says why each is there), written out here
# so that a rule naming the wrong source fails.
RULES_BETWEEN_GROUPS = {
    ("zookeeper", "tcp", 2181, "zookeeper"), ("zookeeper", "tcp", 2181, "meta"),
    ("zookeeper", "tcp", 2888, "zookeeper"), ("zookeeper", "tcp", 3888, "zookeeper"),
    *{("meta", "tcp", 34601, s) for s in ("meta", "replica", "collector", "clients")},
    *{("replica", "tcp", 34801, s) for s in ("meta", "replica", "collector", "clients")},
    ("collector", "tcp", 34101, "meta"), ("collector", "tcp", 34101, "collector"),
    ("meta", "udp", 34601, "meta"), ("meta", "udp", 34601, "replica"), ("replica", "udp", 34801, "meta"),
    # The monitoring host scrapes: node_exporter on every host (its own too), each 2.5 process's
    # exporter (the MetaServer's 9091, the Collector beside it on 9092), ZooKeeper's mntr on 2181.
    *{(g, "tcp", 9100, "monitoring") for g in ("zookeeper", "meta", "replica", "collector", "monitoring")},
    ("meta", "tcp", 9091, "monitoring"), ("meta", "tcp", 9092, "monitoring"), ("replica", "tcp", 9091, "monitoring"),
    ("zookeeper", "tcp", 2181, "monitoring"),
}


def test_every_rule_admits_its_own_source_and_no_other(deploy, base_config):
    d = deploy(base_config)
    between = {(group_name(r.inputs["securityGroupId"]), r.inputs["ipProtocol"], r.inputs["fromPort"],
                group_name(r.inputs["referencedSecurityGroupId"]))
               for r in d.of_type(INGRESS) if "referencedSecurityGroupId" in r.inputs}
    assert between == RULES_BETWEEN_GROUPS
    ssh = {(group_name(r.inputs["securityGroupId"]), r.inputs["fromPort"], r.inputs["cidrIpv4"])
           for r in d.of_type(INGRESS) if "cidrIpv4" in r.inputs}
    # (and the monitoring's web interfaces, Prometheus, Alertmanager and Grafana, on its own host)
    assert ssh == {(g, 22, "203.0.113.0/24") for g in ("zookeeper", "meta", "replica", "collector", "monitoring")} | {
        ("monitoring", p, "203.0.113.0/24") for p in (9090, 9093, 3000)}


def test_applications_reach_the_client_ports_from_their_group_ranges_and_groups(deploy, base_config):
    d = deploy(with_(base_config, network={"adminCidr": "203.0.113.0/24", "clientCidrs": ["10.20.0.0/16"],
                                           "clientSecurityGroups": ["sg-0123456789abcdef0"]}))
    client_rules = {(group_name(r.inputs["securityGroupId"]), r.inputs["fromPort"], r.inputs["toPort"],
                     r.inputs.get("cidrIpv4") or group_name(r.inputs["referencedSecurityGroupId"]))
                    for r in d.of_type(INGRESS)
                    if r.inputs.get("cidrIpv4") == "10.20.0.0/16" or str(r.inputs.get("referencedSecurityGroupId")
                                                                           ).startswith(("sg-", "c1-clients-"))}
    assert client_rules == {(g, p, p, s) for g, p in (("meta", 34601), ("replica", 34801))
                            for s in ("10.20.0.0/16", "sg-0123456789abcdef0", "clients")}
    assert all(r.inputs["ipProtocol"] == "tcp" for r in d.of_type(INGRESS) if r.inputs.get("cidrIpv4") == "10.20.0.0/16")
    # The group applications join, and how each client is told where the MetaServers are.
    (clients,) = [g for g in d.of_type("aws:ec2/securityGroup:SecurityGroup") if g.name == "c1-clients"]
    assert d.exports["clientSecurityGroupId"].startswith("c1-clients-") and clients.inputs["tags"]["Name"] == "c1-clients"
    metas = d.exports["metaServers"].split(",")
    assert len(metas) == 3 and d.exports["clientConfig"] == {
        "java": f"meta_servers = {','.join(metas)}", "go": metas, "python": metas,
        "shell": f"[pegasus.clusters]\nc1 = {','.join(metas)}"}
    # Editing the lists replaces no other rule: each is named after its source.
    names = {r.name for r in d.of_type(INGRESS)}
    assert {"c1-meta-34601-from-10.20.0.0-16", "c1-replica-34801-from-sg-0123456789abcdef0",
            "c1-meta-34601-from-clients"} <= names


def test_public_client_ranges_only_with_the_flag(deploy, base_config):
    with pytest.raises(Exception) as error:
        deploy(with_(base_config, network={"adminCidr": "203.0.113.0/24", "clientCidrs": ["0.0.0.0/0"]}))
    assert "pegasus:network.clientCidrs[0]" in str(error.value) and "allowPublicClients" in str(error.value)
    d = deploy(with_(base_config, network={"adminCidr": "203.0.113.0/24", "clientCidrs": ["0.0.0.0/0"],
                                           "allowPublicClients": True}))
    world = [r for r in d.of_type(INGRESS) if r.inputs.get("cidrIpv4") == "0.0.0.0/0"]
    assert sorted(r.inputs["fromPort"] for r in world) == [34601, 34801]


def test_world_ssh_only_when_allowed(deploy, base_config):
    d = deploy(with_(base_config, network={"adminCidr": "0.0.0.0/0", "allowWorldSsh": True}))
    world = [r for r in d.of_type(INGRESS) if r.inputs.get("cidrIpv4") == "0.0.0.0/0"]
    # SSH only: the monitoring's web interfaces open to the admin range, never to the world.
    assert world and all(r.inputs["fromPort"] == 22 for r in world), [r.name for r in world]


def test_start_and_destroy_order(deploy, base_config):
    d = deploy(base_config)
    guard = "c1-zookeeper-path"
    assert "c1-zookeeper-ready" in d.ancestors(guard)
    for i in range(3):
        assert {f"c1-zk-{i}-zookeeper", f"c1-zk-{i}-prepare"} <= d.ancestors("c1-zookeeper-ready")
        assert guard in d.ancestors(f"c1-meta-{i}-meta")
        replica = d.ancestors(f"c1-replica-{i}-replica")
        assert {"c1-meta-0-meta", "c1-meta-1-meta", "c1-meta-2-meta"} <= replica
        assert {f"c1-replica-{i}-disks", f"c1-replica-{i}-package", f"c1-replica-{i}-replica-config"} <= replica
    assert {f"c1-replica-{i}-replica" for i in range(3)} <= d.ancestors("c1-meta-0-collector")
    health = d.ancestors("c1-health")
    services = {r.name for r in d.of_type(COMMAND) if r.name.split("-")[-1] in ("meta", "replica", "collector")}
    assert services <= health
    # The rolling restart (and, on a first deploy, every server's check) runs once every
    # server has started, before the cluster checks.
    assert services <= d.ancestors("c1-rolling-restart")
    assert "c1-rolling-restart" in health and "c1-rolling-restart" in d.ancestors("c1-replica-removal")
    # Destroy runs in reverse: MetaServers go before the guard, the guard before ZooKeeper.
    assert guard not in d.ancestors("c1-zookeeper-ready")
    assert all(f"c1-meta-{i}-meta" not in d.ancestors(guard) for i in range(3))


def test_one_rolling_restart_waits_for_every_start_and_package_and_nothing_waits_in_a_line(deploy, base_config):
    d = deploy(base_config)
    restart = d.resources["c1-rolling-restart"]
    # Records in Pegasus's rolling-update order are the provider's business; the
    # resource holds one record per role on each server, keyed host/role.
    assert set(restart.inputs["restart_records"]) == {
        f"replica-{i}/replica" for i in range(3)} | {f"meta-{i}/meta" for i in range(3)} | {"meta-0/collector"}
    assert set(restart.inputs["hosts"]) == {f"replica-{i}" for i in range(3)} | {f"meta-{i}" for i in range(3)}
    # A package that failed to install on any host stops the roll before the first restart.
    packages = {r.name for r in d.of_type(COMMAND) if r.name.endswith("-package")}
    assert len(packages) == 6 and packages <= d.ancestors("c1-rolling-restart")
    # First starts do not wait for each other: ReplicaServers start in parallel.
    for i in range(3):
        others = {f"c1-replica-{j}-replica" for j in range(3) if j != i}
        assert not others & d.ancestors(f"c1-replica-{i}-replica")


def _command(d, name):
    return d.resources[name].inputs


def test_delete_scripts_name_exactly_the_role_directories(deploy, base_config):
    d = deploy(with_(base_config, replica={"dataDisks": {"count": 3}, "slogDisk": {"type": "gp3", "sizeGiB": 50}}))
    replica_delete = _command(d, "c1-replica-0-replica")["delete"]
    for path in ("/home/work/app/pegasus/replica", "/home/work/ssd1/pegasus/c1", "/home/work/ssd2/pegasus/c1",
                 "/home/work/ssd3/pegasus/c1", "/home/work/slog/pegasus/c1"):
        assert path in replica_delete
    assert "/home/work/app/pegasus/meta" not in replica_delete
    meta_delete = _command(d, "c1-meta-0-meta")["delete"]
    assert "/home/work/app/pegasus/meta" in meta_delete and "/ssd1/" not in meta_delete
    assert "retain_data=false" in replica_delete.replace(" ", "")


def test_retain_data_keeps_directories_volumes_and_path(deploy, base_config):
    d = deploy(with_(base_config, retainData=True))
    assert "retain_data=true" in _command(d, "c1-replica-0-replica")["delete"].replace(" ", "")
    guard = d.resources["c1-zookeeper-path"]
    assert guard.inputs["retain"] is True


def test_private_key_is_secret_and_in_no_command(deploy, base_config):
    d = deploy(base_config)
    for r in d.of_type(COMMAND) + d.of_type(COPY):
        for field in ("create", "update", "delete"):
            assert PRIVATE_KEY.strip().splitlines()[1] not in str(r.inputs.get(field, "")), (r.name, field)
        raw = d.cloud.raw_inputs[r.name]["connection"]
        assert "4dabf18193072939515e22adb298388d" in str(raw), f"{r.name}: connection is not a secret"
    guard = "c1-zookeeper-path"
    assert "4dabf18193072939515e22adb298388d" in str(d.cloud.raw_inputs[guard]["tunnel"])


def _comparable(value):
    """Inputs as plain data: assets by their content, not their identity."""
    if isinstance(value, pulumi.StringAsset):
        return ("StringAsset", value.text)
    if isinstance(value, pulumi.FileAsset):
        return ("FileAsset", value.path)
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _snapshot(d) -> dict:
    return {name: repr(sorted((k, repr(_comparable(v))) for k, v in r.inputs.items()))
            for name, r in d.resources.items()}


def _roll_triggers(d) -> dict:
    """What makes the rolling restart restart a server: its record (host/role -> text)."""
    return dict(d.resources["c1-rolling-restart"].inputs["restart_records"])


def _changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if before[name] != after.get(name)}


def test_role_override_restarts_only_that_role(deploy, base_config):
    before = deploy(base_config)
    after = deploy(with_(base_config, replica={"configOverrides": {"replication": {"gc_interval_ms": "60000"}}}))
    changed = _changed(_roll_triggers(before), _roll_triggers(after))
    assert changed == {f"replica-{i}/replica" for i in range(3)}
    changed_resources = _changed(_snapshot(before), _snapshot(after))
    # (the cluster's health and host-key checks run at every up: a new trigger each run)
    assert changed_resources == {f"c1-replica-{i}-replica-config" for i in range(3)} | {
        "c1-health", "c1-host-keys", "c1-rolling-restart"}


def test_shared_override_or_package_restarts_every_server(deploy, base_config, other_package):
    before = _roll_triggers(deploy(base_config))
    shared = _roll_triggers(deploy(with_(base_config, configOverrides={"network": {"io_service_worker_count": "8"}})))
    package = _roll_triggers(deploy(with_(base_config, package=str(other_package))))
    assert _changed(before, shared) == set(before)
    assert _changed(before, package) == set(before)


def test_scale_out_keeps_every_existing_server(deploy, base_config):
    before = deploy(base_config)
    after = deploy(with_(base_config, replica={"count": 5}))
    snap_before, snap_after = _snapshot(before), _snapshot(after)
    assert set(snap_before) <= set(snap_after)  # nothing renamed or removed
    # (and Prometheus's targets: the new servers are scraped)
    assert _changed(snap_before, snap_after) == {"c1-health", "c1-host-keys", "c1-replica-removal",
                                                 "c1-rolling-restart", "c1-monitoring-targets"}
    # The rolling restart learns of the new servers but restarts none of the old ones.
    assert changed_servers(_roll_triggers(before), _roll_triggers(after)) == []
    new = set(snap_after) - set(snap_before)
    assert new and all(n.startswith(("c1-replica-3", "c1-replica-4")) for n in new)
    targets = after.resources["c1-monitoring-targets"].inputs["create"]
    assert all(replica.split(":")[0] + ":9091" in targets for replica in after.exports["replicaServers"])
    health = after.resources["c1-health"].inputs["script"]
    assert all(replica in health for replica in after.exports["replicaServers"])
    assert len(after.exports["replicaServers"]) == 5


def test_outputs(deploy, base_config):
    d = deploy(with_(base_config, network={"adminCidr": "203.0.113.0/24", "extraNics": 1}))
    out = d.exports
    metas = out["metaServers"].split(",")
    assert len(metas) == 3 and all(m.startswith("10.43.") and m.endswith(":34601") for m in metas)
    assert len(out["zookeeperServers"].split(",")) == 3
    assert out["clusterRoot"] == "/pegasus/c1" and out["clusterName"] == "c1"
    assert len(out["replicaServers"]) == 3 and out["collector"] == metas[0].replace("34601", "34101")
    assert out["packageVersion"] == "2.5.0"
    assert out["ssh"]["replica-0"].startswith("ssh admin@")


def test_extra_nic_interface_reaches_the_config(deploy, base_config):
    d = deploy(with_(base_config, network={"adminCidr": "203.0.113.0/24", "extraNics": 1}))
    config = d.resources["c1-replica-0-replica-config"].inputs["stdin"]
    assert "primary_interface = ens6" in config


def test_a_named_primary_interface_still_sets_the_extra_nic_up(deploy, base_config):
    # Its source routing (AWS drops what leaves from another NIC's address) and its boot
    # unit are what makes the NIC usable, named or not.
    d = deploy(with_(base_config, network={"adminCidr": "203.0.113.0/24", "extraNics": 1,
                                           "primaryInterface": "ens6"}))
    for host in ("meta-0", "meta-1", "meta-2", "replica-0", "replica-1", "replica-2"):
        nic = _command(d, f"c1-{host}-nic")["create"]
        assert "pegasus-extra-nic.service" in nic and "systemctl enable" in nic
        # The NIC's interface must be the one named: Pegasus binds it, every list names its address.
        assert "network.primaryInterface is" in nic and "ens6" in nic
    assert "primary_interface = ens6" in d.resources["c1-replica-0-replica-config"].inputs["stdin"]
    assert "c1-replica-0-nic" in d.ancestors("c1-replica-0-replica-config")
    assert not [r for r in d.of_type(COMMAND) if r.name.startswith("c1-zk-") and r.name.endswith("-nic")]


def test_bad_config_creates_nothing(deploy, base_config):
    with pytest.raises(pulumi.RunError) as error:  # Pulumi prints its message, no traceback
        deploy(with_(base_config, meta={"count": 4}))
    assert "pegasus:meta.count" in str(error.value)


def test_a_change_updates_the_rolling_restart_in_place(deploy, base_config, other_package):
    # Replacing it would run its create: a check of every server instead of the restarts.
    before = deploy(base_config).resources["c1-rolling-restart"].inputs
    after = deploy(with_(base_config, package=str(other_package))).resources["c1-rolling-restart"].inputs
    diff = RollingRestartProvider().diff("id", dict(before), dict(after))
    assert diff.changes is True and not diff.replaces


def test_the_health_check_runs_at_every_up(deploy, base_config):
    first, second = deploy(base_config), deploy(base_config)
    health = [d.resources["c1-health"].inputs for d in (first, second)]
    assert health[0]["script"] == health[1]["script"] and health[0]["run"] != health[1]["run"]
    servers = first.exports["replicaServers"] + first.exports["metaServers"].split(",") + [first.exports["collector"]]
    keys = [f"replica-{i}/replica" for i in range(3)] + [f"meta-{i}/meta" for i in range(3)] + ["meta-0/collector"]
    assert all(f"{key}={address}" in health[0]["script"] for key, address in zip(keys, servers))
    assert health[0]["check_hosts"] == ["meta-0", "meta-1", "meta-2"]


def test_scale_in_runs_the_removal_guard_before_any_delete(deploy, base_config, tmp_path):
    before = deploy(with_(base_config, replica={"count": 4}))
    after = deploy(base_config)  # replica.count 3: replica-3 goes
    dropped = set(before.resources) - set(after.resources)
    assert dropped and all(name.startswith("c1-replica-3") for name in dropped), dropped
    # Pulumi deletes dropped resources after every create and update of the deployment:
    # the guard is an update of a kept resource (its script changed), so it runs first.
    guards = [d.resources["c1-replica-removal"].inputs["create"] for d in (before, after)]
    assert guards[0] != guards[1] and "replica-3=" in guards[0] and "replica-3=" not in guards[1]
    assert {f"c1-replica-{i}-replica" for i in range(3)} <= after.ancestors("c1-replica-removal")
    assert not dropped & after.ancestors("c1-replica-removal")
    # Run both guards as the MetaServer host would, in order, with replica-3 still holding replicas.
    meta = FakeMeta()
    try:
        leaving = before.exports["replicaServers"][3]
        meta.nodes = {address: "ALIVE" for address in before.exports["replicaServers"]}
        meta.replica_counts = {leaving: 5}
        first, second = (_on_fake_meta(guard, meta, tmp_path) for guard in guards)
        assert run_script(first, tmp_path).returncode == 0
        refused = run_script(second, tmp_path)
        assert refused.returncode == 1 and f"replica-3 ({leaving}) still holds 5 replicas" in refused.stderr
        meta.replica_counts = {}
        assert run_script(second, tmp_path).returncode == 0
    finally:
        meta.close()


def _on_fake_meta(guard: str, meta, tmp_path) -> str:
    """A rendered guard asking `meta` and keeping its record under tmp_path."""
    guard = re.sub(r"^meta_addresses=\(.*\)$", f"meta_addresses=({meta.address})", guard, count=1, flags=re.M)
    return re.sub(r"^record=.*$", f"record={tmp_path / 'replica-servers'}", guard, count=1, flags=re.M)


def test_a_planned_restart_says_in_plain_words_what_changed(deploy, base_config, other_package):
    before = _roll_triggers(deploy(base_config))["replica-0/replica"].splitlines()
    tuned = with_(base_config, replica={"configOverrides": {"pegasus.server": {"rocksdb_write_buffer_size": "134217728"}}})
    after = _roll_triggers(deploy(tuned))["replica-0/replica"].splitlines()
    added = set(after) - set(before)
    assert "[pegasus.server] rocksdb_write_buffer_size = 134217728" in added
    upgraded = _roll_triggers(deploy(with_(base_config, package=str(other_package))))["replica-0/replica"]
    assert "package pegasus-server-2.5.1-1234abc-glibc2.17-release (sha256 " in upgraded
    secret = deploy(tuned, secret_keys=("pegasus:ssh", "pegasus:replica"))
    assert "rocksdb_write_buffer_size = [secret]" in _roll_triggers(secret)["replica-0/replica"]


def test_a_tools_package_is_installed_on_every_metaserver_before_the_roll_and_silences_the_warning(
        deploy, base_config, tmp_path, caplog):
    from tests.support.package_builder import build_tools_package
    caplog.set_level("WARNING")
    deploy(base_config)
    assert any("no toolsPackage" in r.getMessage() for r in caplog.records)
    caplog.clear()
    d = deploy({**base_config, "toolsPackage": str(build_tools_package(tmp_path))})
    assert not any("no toolsPackage" in r.getMessage() for r in caplog.records)
    installs = {r.name for r in d.of_type(COMMAND) if r.name.endswith("-tools")}
    assert installs == {f"c1-meta-{i}-tools" for i in range(3)}
    assert installs <= d.ancestors("c1-rolling-restart")
    release = "pegasus-tools-2.5.0-8f3c2ab-glibc2.17-release-"
    assert release in _command(d, "c1-meta-1-tools")["create"] and "remove-tools" in _command(d, "c1-meta-1-tools")["delete"]
    tools = d.resources["c1-rolling-restart"].inputs["tools"]
    assert tools["host"] == "meta-0" and tools["dir"].startswith(f"/home/work/app/pegasus/tools/{release}")
    assert tools["meta_list"].count(":34601") == 3
    assert tools["release"] == "2.5.0"  # the shell's dialect: how it names nodes and answers
    assert set(d.resources["c1-rolling-restart"].inputs["replica_nodes"]) == {f"replica-{i}" for i in range(3)}


def test_a_restarted_replicaserver_waits_one_beacon_per_metaserver_before_its_gate(deploy, base_config):
    d = deploy(with_(base_config, replica={"configOverrides": {"replication": {"fd_beacon_interval_seconds": "2"}}}))
    assert "settle_seconds=6" in d.resources["c1-replica-0-replica-config"].inputs["stdin"]
    assert "settle_seconds=0" in d.resources["c1-meta-0-meta-config"].inputs["stdin"]
    default = deploy(base_config).resources["c1-replica-1-replica-config"].inputs["stdin"]
    assert "settle_seconds=9" in default  # the release's 3 s beacon, 3 MetaServers


def test_the_ensemble_rolls_once_its_clients_list_its_servers_as_they_are(deploy, base_config):
    # A MetaServer still listing a replaced ZooKeeper server's address could spend its
    # session trying it while the server it used restarts: the MetaServers roll first.
    d = deploy(base_config)
    assert "c1-rolling-restart" in d.ancestors("c1-zookeeper-roll")
    assert {"c1-zookeeper-roll", "c1-rolling-restart"} <= d.ancestors("c1-health")
    assert "c1-zookeeper-roll" not in d.ancestors("c1-zookeeper-ready")
    assert "c1-zookeeper-roll" not in {r.name for r in deploy(
        with_(base_config, zookeeper={"servers": "10.9.0.5:2181,10.9.0.6:2181,10.9.0.7:2181"})).resources.values()}
