"""`servers` (your own servers) -> spec: what a stack lists, and every refusal naming its key and fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from components.spec.reader import SpecError

from components.spec.validation import build_spec
from tests.support.package_builder import build_package

SECRET = {"pegasus:ssh"}
DISK = "/dev/disk/by-id/ata-INTEL_SSDSC2KB960G8_PHYF{}"


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return build_package(tmp_path_factory.mktemp("pkg"), server="placeholder")


def own(package: Path) -> dict:
    return {
        "clusterName": "c1",
        "package": str(package),
        "ssh": {"user": "ops", "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n",
                "publicKey": "ssh-ed25519 AAAAC3Nz me@host"},
        "servers": {
            "zookeeper": [{"host": f"zk{i}.dc1"} for i in range(3)],
            "meta": [{"host": "10.0.0.11", "nic": "bond0"}, {"host": "10.0.0.12", "nic": "bond0"}],
            "replica": [{"host": f"10.0.0.2{i}", "nic": f"02:00:0A:00:00:2{i}",
                         "dataDisks": [DISK.format(i), "/data/ssd2"], "slogDisk": DISK.format(f"slog{i}")}
                        for i in range(3)],
        },
    }


def problems(raw: dict) -> str:
    with pytest.raises(SpecError) as error:
        build_spec(raw, stack="own", secret_keys=SECRET)
    return str(error.value)


def test_a_listed_cluster_needs_no_aws_key(package):
    spec = build_spec(own(package), stack="own", secret_keys=SECRET)
    assert spec.servers is not None and spec.network.admin_cidr is None
    assert (spec.meta.count, spec.replica.count, spec.zookeeper.count) == (2, 3, 3)
    assert spec.replica.data_disks.count == 2 and spec.replica.slog_disk is not None
    assert spec.servers.replica[1].nic == "02:00:0a:00:00:21"  # MACs compared in lower case
    assert spec.servers.mounted_dirs() == ("", "/data/ssd2") and spec.servers.mounted_slog() == ""
    assert spec.ssh.user == "ops"


def test_no_public_key_is_needed_it_is_never_installed_on_your_own_servers(package):
    raw = own(package)
    del raw["ssh"]["publicKey"]
    assert build_spec(raw, stack="own", secret_keys=SECRET).ssh.public_key == ""


def edit(raw: dict, path: str, value) -> dict:
    raw = copy.deepcopy(raw)
    node = raw
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is DELETE:
        del node[int(leaf) if isinstance(node, list) else leaf]
    elif isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return raw


DELETE = object()

# (what is set, value, the key the message names, a fragment of the message)
BAD = [
    ("ssh.user", DELETE, "pegasus:ssh.user", "required with your own servers"),
    ("network", {"adminCidr": "10.0.0.0/8"}, "pegasus:network", "does not apply to your own servers"),
    ("image", {"distribution": "debian-12"}, "pegasus:image", "does not apply"),
    ("meta.count", 3, "pegasus:meta.count", "list the servers (and their disks) under servers.meta"),
    ("replica.instanceType", "m6i.large", "pegasus:replica.instanceType", "does not apply"),
    ("replica.dataDisks", {"count": 2}, "pegasus:replica.dataDisks", "does not apply"),
    ("zookeeper.count", 3, "pegasus:zookeeper.count", "does not apply"),
    ("collector.instanceType", "m6i.large", "pegasus:collector.instanceType", "does not apply"),
    ("servers.meta", [{"host": "a"}], "pegasus:servers.meta", "list 2 or 3"),
    ("servers.meta", "10.0.0.11", "pegasus:servers.meta", "must be a list of servers"),
    ("servers.replica.2", DELETE, "pegasus:servers.replica", "cannot hold 3 replicas"),
    ("servers.zookeeper.2", DELETE, "pegasus:servers.zookeeper", "no safe majority"),
    ("servers.zookeeper", [{"host": "zk0.dc1"}], "pegasus:servers.zookeeper", "allowSingleNode"),
    ("servers.zookeeper", DELETE, "pegasus:servers.zookeeper", "an existing ensemble as zookeeper.servers"),
    ("servers.meta.0.host", "bad host!", "pegasus:servers.meta[0].host", "not a host name or address"),
    ("servers.meta.1.host", "zk0.dc1", "pegasus:servers.meta[1].host", "is also servers.zookeeper[0]"),
    ("servers.meta.0.nic", "eth 1", "pegasus:servers.meta[0].nic", "neither an interface name nor a MAC"),
    ("servers.meta.0.dataDisks", [DISK.format(9)], "pegasus:servers.meta[0].dataDisks", "only ReplicaServers have disks"),
    ("servers.meta.0.port", 22, "pegasus:servers.meta[0].port", "is not a known key"),
    ("servers.replica.0.dataDisks", DELETE, "pegasus:servers.replica[0].dataDisks", "is required"),
    ("servers.replica.0.dataDisks", ["/dev/sdb", "/data/ssd2"], "pegasus:servers.replica[0].dataDisks[0]",
     "not a stable device name"),
    ("servers.replica.0.dataDisks", [DISK.format(0), "data/ssd2"], "pegasus:servers.replica[0].dataDisks[1]",
     "not an absolute path"),
    ("servers.replica.0.dataDisks", [DISK.format(0), DISK.format(0)], "pegasus:servers.replica[0].dataDisks",
     "listed twice"),
    ("servers.replica.1.dataDisks", [DISK.format(1)], "pegasus:servers.replica[1].dataDisks",
     "give every ReplicaServer the same disks"),
    ("servers.replica.1.dataDisks", [DISK.format(1), "/data/other"], "pegasus:servers.replica[1].dataDisks",
     "mounted directories at the same paths"),
    ("servers.replica.2.slogDisk", DELETE, "pegasus:servers.replica[2].dataDisks", "a slogDisk on all or none"),
    ("servers.collector", [{"host": "10.0.0.31"}], "pegasus:servers.collector", "runs on the first MetaServer"),
    # Whole values only, and no host name that ssh would take for an option (issue 19, item 4).
    ("servers.meta.0.host", "-oProxyCommand=touch /tmp/x", "pegasus:servers.meta[0].host", "not a host name"),
    ("servers.meta.0.host", "10.0.0.11\n", "pegasus:servers.meta[0].host", "not a host name"),
    ("servers.meta.0.host", ".example.net", "pegasus:servers.meta[0].host", "not a host name"),
    ("servers.meta.0.nic", "eth1\n", "pegasus:servers.meta[0].nic", "neither an interface name nor a MAC"),
    ("servers.meta.0.nic", "02:00:0a:00:00:05\n", "pegasus:servers.meta[0].nic", "neither an interface name"),
    ("servers.replica.0.dataDisks", [DISK.format(0), "/data/ssd2\n"], "pegasus:servers.replica[0].dataDisks[1]",
     "not an absolute path"),
    # A server's host key (issue 19, item 1)
    ("servers.meta.0.hostKey", "SHA256:Jd/A1l78k9ZTAdBV", "pegasus:servers.meta[0].hostKey",
     "not one OpenSSH public key line"),
    ("servers.meta.0.hostKey", "ssh-ed25519 AAAAB3NzaC1yc2E=", "pegasus:servers.meta[0].hostKey",
     "its data is not a ssh-ed25519 key"),
    ("servers.meta.0.host", "-vvv", "pegasus:servers.meta[0].host", "not a host name"),
]


@pytest.mark.parametrize("path,value,key,fragment", BAD, ids=[f"{b[0]}={b[1]!r}"[:60] for b in BAD])
def test_bad_own_servers_config_is_refused_naming_the_key(package, path, value, key, fragment):
    message = problems(edit(own(package), path, value))
    line = next((line for line in message.splitlines() if line.strip().startswith(f"- {key}:")), None)
    assert line is not None, message
    assert fragment in line, line


def test_a_directory_where_a_listed_device_gets_mounted_is_refused(package):
    raw = own(package)
    for server in raw["servers"]["replica"]:  # device first (mounted at <homeDir>/ssd1), then that path
        server["dataDisks"] = [server["dataDisks"][0], "/home/work/ssd1"]
    assert "pegasus:servers.replica[0].dataDisks[1]: /home/work/ssd1 is where a listed device gets mounted" \
        in problems(raw)
    for server in raw["servers"]["replica"]:
        server["dataDisks"] = [server["dataDisks"][0], "/home/work/app/pegasus/data"]
    assert "overlaps homeDir or appDir" in problems(raw)


def test_a_collector_on_its_own_host_needs_exactly_one_server(package):
    raw = own(package)
    raw["collector"] = {"colocate": False}
    assert "pegasus:servers.collector: 0 servers listed" in problems(raw)
    raw["servers"]["collector"] = [{"host": "10.0.0.31"}]
    assert build_spec(raw, stack="own", secret_keys=SECRET).servers.collector[0].host == "10.0.0.31"


def test_an_external_ensemble_instead_of_listed_zookeeper_servers(package):
    raw = own(package)
    raw["zookeeper"] = {"servers": "10.0.0.5:2181"}
    assert "lists servers while zookeeper.servers names an existing ensemble" in problems(raw)
    del raw["servers"]["zookeeper"]
    spec = build_spec(raw, stack="own", secret_keys=SECRET)
    assert not spec.zookeeper.provisioned and spec.zookeeper.count == 0


def test_every_problem_is_reported_at_once(package):
    raw = edit(own(package), "servers.meta.0.nic", "eth 1")
    raw = edit(raw, "network", {"adminCidr": "10.0.0.0/8"})
    raw = edit(raw, "servers.replica.0.dataDisks", ["/dev/sdb", "/data/ssd2"])
    message = problems(raw)
    assert "3 problem(s)" in message


def test_your_own_servers_get_the_package_over_ssh_and_the_store_is_refused(package):
    assert build_spec(own(package), stack="own", secret_keys=SECRET).package_delivery == "upload"
    message = problems({**own(package), "packageDelivery": "s3"})
    assert "pegasus:packageDelivery" in message and "set it to upload" in message
