"""The Pulumi program under mocks: what `pulumi up` would ask AWS and the hosts for."""

from __future__ import annotations

import copy

import pulumi
import pytest

from components.operations.rolling_restart import RollingRestartProvider, changed_servers
from tests.program.conftest import PRIVATE_KEY

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
    # name: (config changes, instances, volumes, nics)
    "default": ({}, 3 + 3 + 3, 3 * 2, 0),
    "external zookeeper": ({"zookeeper": {"servers": "10.9.0.5:2181,10.9.0.6:2181,10.9.0.7:2181"}}, 3 + 3, 3 * 2, 0),
    "collector on its own host": ({"collector": {"colocate": False}}, 3 + 3 + 3 + 1, 3 * 2, 0),
    "no collector": ({"collector": {"enabled": False}}, 3 + 3 + 3, 3 * 2, 0),
    "extra nic": ({"network": {"adminCidr": "203.0.113.0/24", "extraNics": 1}}, 9, 6, 3 + 3),
    "slog disk, 4 data disks, 5 replicas": (
        {"replica": {"count": 5, "dataDisks": {"count": 4}, "slogDisk": {"type": "gp3", "sizeGiB": 50}}},
        3 + 3 + 5, 5 * 5, 0),
    "small": ({"meta": {"count": 2}, "zookeeper": {"count": 1, "allowSingleNode": True}}, 1 + 2 + 3, 6, 0),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_resource_counts(deploy, base_config, shape):
    changes, instances, volumes, nics = SHAPES[shape]
    raw = {**copy.deepcopy(base_config), **changes}
    d = deploy(raw)
    assert d.count(INSTANCE) == instances
    assert d.count(VOLUME) == volumes
    assert d.count(ATTACHMENT) == volumes
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
    for instance in d.of_type(INSTANCE):
        assert instance.inputs["metadataOptions"]["httpTokens"] == "required", instance.name
        # A newer AMI or a rotated key pair would otherwise replace the server and its data.
        # A new instance type would stop every server of the role at once: refused instead.
        # New user data (the host key given at launch) would stop and start it; the tag that says
        # which key it was launched with is set at launch only.
        assert set(instance.ignore_changes) == {"ami", "keyName", "instanceType", "userData",
                                                'tags["pegasus:host-key"]'}, instance.ignore_changes
        # Its first commands install packages: the private subnet's route (via the NAT) comes first.
        assert "c1-private-subnet-routes" in d.ancestors(instance.name)
    for attachment in d.of_type(ATTACHMENT) + d.of_type(NIC_ATTACHMENT):
        assert attachment.delete_before_replace, f"{attachment.name} cannot attach anew while attached"
    for attachment in d.of_type(ATTACHMENT):
        # A volume is never pulled from under a running server's mounted file system.
        assert attachment.inputs["stopInstanceBeforeDetaching"] is True, attachment.name
        assert instance.inputs["rootBlockDevice"]["encrypted"] is True
        assert instance.inputs["associatePublicIpAddress"] is False
    rules = d.of_type(INGRESS)
    assert rules
    for rule in rules:
        assert rule.inputs.get("cidrIpv4") != "0.0.0.0/0", rule.name
        if "cidrIpv4" in rule.inputs:
            assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (22, 22)
            assert rule.inputs["cidrIpv4"] == "203.0.113.0/24"
        else:
            assert rule.inputs["referencedSecurityGroupId"], rule.name
    ports = {(r.inputs["ipProtocol"], r.inputs["fromPort"]) for r in rules}
    assert ports == {("tcp", p) for p in (22, 2181, 2888, 3888, 34601, 34801, 34101)} | {
        ("udp", 34601), ("udp", 34801)}
    # Rules live in rule resources only (mixing in inline rules makes the provider overwrite them).
    groups = d.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert groups and not any(g.inputs.get("egress") or g.inputs.get("ingress") for g in groups)
    egress = d.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    assert len(egress) == len(groups) and all(e.inputs["cidrIpv4"] == "0.0.0.0/0" for e in egress)


def test_world_ssh_only_when_allowed(deploy, base_config):
    d = deploy(with_(base_config, network={"adminCidr": "0.0.0.0/0", "allowWorldSsh": True}))
    world = [r for r in d.of_type(INGRESS) if r.inputs.get("cidrIpv4") == "0.0.0.0/0"]
    assert world and all(r.inputs["fromPort"] == 22 for r in world)


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
    assert _changed(snap_before, snap_after) == {"c1-health", "c1-host-keys", "c1-replica-removal",
                                                 "c1-rolling-restart"}
    # The rolling restart learns of the new servers but restarts none of the old ones.
    assert changed_servers(_roll_triggers(before), _roll_triggers(after)) == []
    new = set(snap_after) - set(snap_before)
    assert new and all(n.startswith(("c1-replica-3", "c1-replica-4")) for n in new)
    health = after.resources["c1-health"].inputs["script"]
    assert all(replica in health for replica in after.exports["replicaServers"])
    assert len(after.exports["replicaServers"]) == 5


def test_outputs(deploy, base_config):
    d = deploy(with_(base_config, network={"adminCidr": "203.0.113.0/24", "extraNics": 1}))
    out = d.exports
    metas = out["metaServers"].split(",")
    assert len(metas) == 3 and all(m.startswith("10.43.") and m.endswith(":34601") for m in metas)
    assert len(out["zookeeperServers"].split(",")) == 3
    assert out["clusterRoot"] == "/pegasus/c1"
    assert len(out["replicaServers"]) == 3 and out["collector"] == metas[0].replace("34601", "34101")
    assert out["packageVersion"] == "2.5.0"
    assert out["ssh"]["replica-0"].startswith("ssh admin@")


def test_extra_nic_interface_reaches_the_config(deploy, base_config):
    d = deploy(with_(base_config, network={"adminCidr": "203.0.113.0/24", "extraNics": 1}))
    config = d.resources["c1-replica-0-replica-config"].inputs["create"]
    assert "primary_interface = ens6" in config


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


def test_scale_in_runs_the_removal_guard_before_any_delete(deploy, base_config):
    # Pulumi deletes dropped resources last: the guard (an update) runs before them.
    after = deploy(with_(base_config, replica={"count": 3}))
    guard = after.resources["c1-replica-removal"].inputs["create"]
    assert "replica-2=" in guard and "replica-3=" not in guard
    assert {f"c1-replica-{i}-replica" for i in range(3)} <= after.ancestors("c1-replica-removal")


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
    assert "settle_seconds=6" in d.resources["c1-replica-0-replica-config"].inputs["create"]
    assert "settle_seconds=0" in d.resources["c1-meta-0-meta-config"].inputs["create"]
    default = deploy(base_config).resources["c1-replica-1-replica-config"].inputs["create"]
    assert "settle_seconds=9" in default  # the release's 3 s beacon, 3 MetaServers
