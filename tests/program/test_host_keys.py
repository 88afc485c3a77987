"""Every connection checks the server's SSH host key (issue 19, item 1), under mocks.

The providers' own behaviour (generating, pinning, recording, checking) is
tested in tests/unit/test_host_key_providers.py; the local cloud's e2e suite
shows a changed key refused. Here: that every connection carries the key, where
each key comes from, and that nothing runs on a server before the check.
"""

from __future__ import annotations

import copy
import subprocess

import pytest
import yaml

from components.spec.host_key import parse_host_key
from tests.program.conftest import Deployment
from tests.program.fake_aws import HOST_KEY, FakeCloud
from tests.program.test_program import COMMAND, COPY, INSTANCE, with_

PAIR = "pulumi-python:dynamic/pegasus:HostKeyPair"
PIN = "pulumi-python:dynamic/pegasus:HostKeyPin"
CHECK = "c1-host-keys"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
VPC = {"vpcId": "vpc-0123456789abcdef0", "subnetId": "subnet-0123456789abcdef0"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, str]:
    """Real Ed25519 public key lines, by name."""
    directory = tmp_path_factory.mktemp("keys")
    lines = {}
    for name in ("bastion", "zk", "meta0", "meta1", "replica0", "replica1", "replica2"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)], check=True)
        lines[name] = " ".join((directory / f"{name}.pub").read_text().split()[:2])
    return lines


def remote(d) -> list:
    return [r for r in d.resources.values() if r.type in (COMMAND, COPY)]


def behind_a_bastion(base_config, keys) -> dict:
    return with_(base_config, network=VPC, ssh={**base_config["ssh"], "bastion": {"host": "bastion.example.net",
                                                                                 "hostKey": keys["bastion"]}})


def test_every_remote_command_and_upload_checks_the_servers_key_and_the_bastions(deploy, base_config, keys):
    d = deploy(with_(behind_a_bastion(base_config, keys), packageDelivery="upload"))
    assert remote(d) and any(r.type == COPY for r in remote(d))
    for resource in remote(d):
        connection = resource.inputs["connection"]
        assert connection.get("hostKey"), f"{resource.name} would accept any server"
        assert connection["proxy"]["hostKey"] == keys["bastion"], resource.name


def test_an_aws_server_is_launched_with_its_own_key_and_every_connection_expects_that_key(deploy, base_config):
    d = deploy(base_config)
    instances = d.of_type(INSTANCE)
    assert len(d.of_type(PAIR)) == len(instances) == 10  # the cluster's 9 and the monitoring's own host
    for instance in instances:
        node = instance.inputs["tags"]["pegasus:node"]
        # Its own pair, generated before it (user data), given to cloud-init as ssh_keys.
        assert f"c1-{node}-host-key-pair" in d.ancestors(instance.name)
        user_data = instance.inputs["userData"]
        assert user_data.startswith("#cloud-config\n")
        given = yaml.safe_load(user_data)
        assert given["ssh_deletekeys"] is True
        assert given["ssh_keys"]["ed25519_public"] == HOST_KEY
        assert given["ssh_keys"]["ed25519_private"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
        # It says which key it was launched with, in a tag set at launch only...
        assert instance.inputs["tags"]["pegasus:host-key"] == parse_host_key(HOST_KEY).fingerprint
        # ...and the pin takes that key: never a first answer.
        pin = d.resources[f"c1-{node}-host-key"]
        assert (pin.inputs["launched"], pin.inputs["configured"]) == (HOST_KEY, "")
        for resource in remote(d):
            if resource.name.startswith(f"c1-{node}-"):
                assert resource.inputs["connection"]["hostKey"] == HOST_KEY, resource.name
        assert SECRET_SIG in str(d.cloud.raw_inputs[instance.name]["userData"]), \
            f"{instance.name}: the private host key would be plain text in the state"


def test_an_instance_launched_before_the_stack_gave_keys_has_its_key_recorded_once(base_config):
    # Its tags, as the provider holds them: no host-key tag (it is ignored after launch), whatever
    # else the program now asks for; another key's fingerprint is not this one either.
    old_tags = {"pegasus:cluster": "c1", "Name": "c1-replica-0"}
    cloud = FakeCloud(existing={"c1-replica-0": {"tags": old_tags},
                                "c1-replica-1": {"tags": {**old_tags, "pegasus:host-key": "SHA256:other"}}})
    d = Deployment(base_config, cloud=cloud)
    for node in ("replica-0", "replica-1"):
        pin = d.resources[f"c1-{node}-host-key"]
        assert pin.inputs["launched"] == "" and pin.inputs["may_record"] is True
        assert pin.inputs["access"]["user"] == "admin"  # to log in while it records
    assert d.resources["c1-replica-2-host-key"].inputs["launched"] == HOST_KEY


def test_every_server_is_checked_at_every_up_before_the_operations_that_reach_them_all(deploy, base_config):
    d = deploy(base_config)
    pins = {r.name for r in d.of_type(PIN)}
    assert len(pins) == 10 and pins <= d.ancestors(CHECK)  # the monitoring's own host too
    for operation in ("c1-rolling-restart", "c1-health", "c1-replica-removal"):
        assert CHECK in d.ancestors(operation), operation
    # Commands run beside it, each with its own server's pin: no server's command waits on every
    # other server (the SDK's dependency checks would grow with the square of the cluster).
    for resource in remote(d):
        if resource.name == "c1-replica-removal":
            continue
        assert CHECK not in d.ancestors(resource.name), resource.name
        if resource.name.startswith(("c1-zk-", "c1-meta-", "c1-replica-")):
            assert any(p in d.ancestors(resource.name) for p in pins), resource.name
    assert d.resources[CHECK].inputs["run"] != deploy(base_config).resources[CHECK].inputs["run"]


def test_the_operations_ssh_checks_every_server_and_the_bastion(deploy, base_config, keys):
    d = deploy(behind_a_bastion(base_config, keys))
    servers = {"zk-0", "zk-1", "zk-2", "meta-0", "meta-1", "meta-2", "replica-0", "replica-1", "replica-2",
               "monitoring-0"}
    for name in ("c1-rolling-restart", "c1-health", CHECK):
        known = d.resources[name].inputs["access"]["known_hosts"]
        assert {pin["name"] for pin in known} == servers | {"the bastion"}, name
        assert all(pin["key"] for pin in known) and all(pin["accept"] for pin in known), name
        assert {pin["key"] for pin in known if pin["name"] == "the bastion"} == {keys["bastion"]}
    # The ZooKeeper roll reaches the ensemble only: a server added elsewhere changes nothing of it.
    roll = d.resources["c1-zookeeper-roll"].inputs["access"]["known_hosts"]
    assert {pin["name"] for pin in roll} == {"zk-0", "zk-1", "zk-2", "the bastion"}
    tunnel = d.resources["c1-zookeeper-path"].inputs["tunnel"]
    assert [pin["name"] for pin in tunnel["known_hosts"]] == ["zk-0", "the bastion"]
    assert tunnel["known_hosts"][0]["host"] == tunnel["host"]
    assert {pin["name"] for pin in d.resources[CHECK].inputs["servers"]} == servers
    # How to accept a rebuilt server, per server: an instance this stack launched is replaced.
    accept = {pin["name"]: pin["accept"] for pin in d.resources[CHECK].inputs["servers"]}
    assert "pulumi up --replace 'urn:pulumi:" in accept["replica-1"] and "c1-replica-1'" in accept["replica-1"]
    # The same keys for the operator's own ssh (`pulumi stack output knownHosts`).
    lines = d.exports["knownHosts"].splitlines()
    assert len(lines) == len(servers) + 1 and f"bastion.example.net {keys['bastion']}" in lines
    bastion = d.resources["c1-bastion-host-key"]
    assert (bastion.inputs["configured"], bastion.inputs["address"], bastion.inputs["port"]) == (
        keys["bastion"], "bastion.example.net", 22)


@pytest.fixture
def own_config(base_config, keys) -> dict:
    raw = copy.deepcopy(base_config)
    del raw["network"]
    raw["zookeeper"] = {"allowSingleNode": True}
    raw["servers"] = {
        "zookeeper": [{"host": "zk1.example.net", "hostKey": keys["zk"]}],
        "meta": [{"host": f"10.1.0.1{i}", "hostKey": keys[f"meta{i}"]} for i in range(2)],
        "replica": [{"host": f"10.1.0.2{i}", "hostKey": keys[f"replica{i}"],
                     "dataDisks": [f"/dev/disk/by-id/nvme-disk-{i}"]} for i in range(3)],
    }
    return raw


def test_your_own_servers_are_held_to_their_hostkey(deploy, own_config, keys):
    d = deploy(own_config)
    expected = {"zk-0": keys["zk"], "meta-0": keys["meta0"], "meta-1": keys["meta1"],
                **{f"replica-{i}": keys[f"replica{i}"] for i in range(3)}}
    assert not d.of_type(PAIR)
    for host, key in expected.items():
        pin = d.resources[f"c1-{host}-host-key"]
        assert (pin.inputs["configured"], pin.inputs["may_record"]) == (key, False)
        kind, _, index = host.rpartition("-")
        assert pin.inputs["where"] == f"servers.{'zookeeper' if kind == 'zk' else kind}[{index}]"
        for resource in remote(d):
            if resource.name.startswith(f"c1-{host}-"):
                assert resource.inputs["connection"]["hostKey"] == key, resource.name
    assert "c1-replica-2-host-key" in d.ancestors("c1-replica-2-address")
    accept = {pin["name"]: pin["accept"] for pin in d.resources[CHECK].inputs["servers"]}
    assert "pegasus:servers.replica[2].hostKey" in accept["replica-2"]


def test_an_own_server_without_hostkey_is_left_to_the_known_hosts_check_of_its_pin(deploy, own_config):
    del own_config["servers"]["meta"][1]["hostKey"]
    pin = deploy(own_config).resources["c1-meta-1-host-key"]
    assert (pin.inputs["configured"], pin.inputs["launched"], pin.inputs["may_record"]) == ("", "", False)
    assert pin.inputs["address"] == "10.1.0.11"
