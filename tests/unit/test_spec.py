"""The stack config -> spec validation: defaults, and every refusal naming its key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from components.spec.reader import SpecError

from components.spec.validation import build_spec
from tests.support.package_builder import build_package

SECRET = {"pegasus:ssh"}


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return build_package(tmp_path_factory.mktemp("pkg"), server="placeholder")


def minimal(package: Path) -> dict:
    return {
        "clusterName": "c1",
        "package": str(package),
        "ssh": {"privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n", "publicKey": "ssh-ed25519 AAAAC3Nz me@host"},
        "network": {"adminCidr": "203.0.113.0/24"},
    }


def test_defaults_follow_the_deployment_guide(package):
    spec = build_spec(minimal(package), stack="dev", secret_keys=SECRET)
    assert (spec.meta.count, spec.replica.count, spec.zookeeper.count) == (3, 3, 3)
    assert spec.collector.enabled and spec.collector.colocate
    assert spec.home_dir == "/home/work" and spec.app_dir == "/home/work/app/pegasus"
    assert spec.replica.data_disks.count == 2 and spec.replica.data_disks.type == "gp3"
    assert (spec.replica.data_disks.iops, spec.replica.data_disks.throughput) == (3000, 125)
    assert spec.replica.slog_disk is None
    assert spec.ssh.user == "admin"  # Debian's default user
    assert spec.package.version == "2.5.0" and len(spec.package.sha256) == 64
    assert spec.cluster_root == "/pegasus/c1"
    assert not spec.retain_data
    assert spec.package_delivery == "s3" and spec.package_from_store  # one upload per stack


def test_direct_upload_is_a_choice(package):
    raw = {**minimal(package), "packageDelivery": "upload"}
    spec = build_spec(raw, stack="dev", secret_keys=SECRET)
    assert spec.package_delivery == "upload" and not spec.package_from_store


def test_external_zookeeper_and_overrides(package):
    raw = minimal(package)
    raw["zookeeper"] = {"servers": "10.0.0.5:2181,10.0.0.6:2181,10.0.0.7:2181"}
    raw["replica"] = {"configOverrides": {"replication": {"mutation_2pc_min_replica_count": 2}}}
    spec = build_spec(raw, stack="dev", secret_keys=SECRET)
    assert not spec.zookeeper.provisioned and spec.zookeeper.count == 0
    assert spec.zookeeper.external_servers == ("10.0.0.5:2181", "10.0.0.6:2181", "10.0.0.7:2181")
    assert spec.replica.config_overrides == {"replication": {"mutation_2pc_min_replica_count": "2"}}


def test_spec_is_immutable(package):
    spec = build_spec(minimal(package), stack="dev", secret_keys=SECRET)
    with pytest.raises(Exception):
        spec.cluster_name = "other"  # type: ignore[misc]


def _set(raw: dict, path: str, value) -> dict:
    raw = copy.deepcopy(raw)
    node = raw
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    if value is DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return raw


DELETE = object()

# (what is set, value, the key the message must name, a fragment of the message)
BAD_CONFIGS = [
    ("clusterName", DELETE, "pegasus:clusterName", "required"),
    ("clusterName", "my-cluster", "pegasus:clusterName", "letters, digits and _"),
    ("clusterName", "a/b", "pegasus:clusterName", "letters, digits and _"),
    ("package", DELETE, "pegasus:package", "required"),
    ("package", "/nonexistent/pegasus-server-2.5.0-8f3c2ab-glibc2.17-release.tar.gz", "pegasus:package", "does not exist"),
    ("package", "/tmp/server.tar.gz", "pegasus:package", "pack_server"),
    ("homeDir", "relative/dir", "pegasus:homeDir", "absolute path"),
    ("homeDir", "/home/work/../etc", "pegasus:homeDir", "not normalised"),
    ("homeDir", "/home/my work", "pegasus:homeDir", "absolute path"),
    ("homeDir", "/home/$(reboot)", "pegasus:homeDir", "absolute path"),
    ("appDir", "/", "pegasus:appDir", "must not be /"),
    ("appDir", "/home", "pegasus:appDir", "homeDir or a parent"),
    ("appDir", "/usr", "pegasus:appDir", "/usr"),
    ("appDir", "/home/work", "pegasus:appDir", "homeDir or a parent"),
    ("appDir", "/srv/pegasus/", "pegasus:appDir", "not normalised"),
    ("meta.count", 1, "pegasus:meta.count", "use 2 or 3"),
    ("meta.count", 5, "pegasus:meta.count", "use 2 or 3"),
    ("replica.count", 2, "pegasus:replica.count", "3 or more"),
    ("replica.count", "three", "pegasus:replica.count", "whole number"),
    ("zookeeper.count", 2, "pegasus:zookeeper.count", "safe majority"),
    ("zookeeper.count", 1, "pegasus:zookeeper.count", "allowSingleNode"),
    ("zookeeper.servers", "zk1.example.com:2181", "pegasus:zookeeper.servers", "host names are not allowed"),
    ("zookeeper.servers", "10.0.0.1", "pegasus:zookeeper.servers", "IPv4 address with a port"),
    ("zookeeper.servers", "10.0.0.1:99999", "pegasus:zookeeper.servers", "IPv4 address with a port"),
    ("replica.dataDisks.count", 0, "pegasus:replica.dataDisks.count", "outside 1..16"),
    ("replica.dataDisks.count", 17, "pegasus:replica.dataDisks.count", "outside 1..16"),
    ("replica.dataDisks.sizeGiB", 20000, "pegasus:replica.dataDisks.sizeGiB", "outside what gp3 allows"),
    ("replica.dataDisks.iops", 50000, "pegasus:replica.dataDisks.iops", "outside what gp3 allows"),
    ("replica.dataDisks", {"sizeGiB": 10, "iops": 6000}, "pegasus:replica.dataDisks.iops", "exceeds 500 IOPS per GiB"),
    ("replica.dataDisks.throughput", 2000, "pegasus:replica.dataDisks.throughput", "outside what gp3 allows"),
    ("replica.dataDisks.throughput", 900, "pegasus:replica.dataDisks.throughput", "needs at least 3600 IOPS"),
    ("replica.dataDisks.type", "st1", "pegasus:replica.dataDisks.type", "not supported"),
    ("replica.slogDisk", {"type": "io2", "sizeGiB": 100}, "pegasus:replica.slogDisk.iops", "need provisioned IOPS"),
    ("replica.slogDisk", {"type": "gp2", "sizeGiB": 100, "iops": 300}, "pegasus:replica.slogDisk.iops", "do not take"),
    ("replica.dataDisks.perServer", 2, "pegasus:replica.dataDisks.perServer", "not a known key"),
    ("configOverrides", {"meta_server": {"server_list": "1.2.3.4:34601"}}, "pegasus:configOverrides.meta_server.server_list", "owns this key"),
    ("configOverrides", {"zookeeper": {"hosts_list": "x"}}, "pegasus:configOverrides.zookeeper.hosts_list", "owns this key"),
    ("configOverrides", {"pegasus.clusters": {"c1": "x"}}, "pegasus:configOverrides.pegasus.clusters", "owns this section"),
    ("replica.configOverrides", {"replication": {"data_dirs": "a:/x"}}, "pegasus:replica.configOverrides.replication.data_dirs", "owns this key"),
    ("meta.configOverrides", {"meta_server": {"cluster_root": "/x"}}, "pegasus:meta.configOverrides.meta_server.cluster_root", "owns this key"),
    ("collector.configOverrides", {"core": {"data_dir": "/x"}}, "pegasus:collector.configOverrides.core.data_dir", "owns this key"),
    ("configOverrides", {"core": {"x": "a\nb"}}, "pegasus:configOverrides.core.x", "one line"),
    ("network.adminCidr", "0.0.0.0/0", "pegasus:network.adminCidr", "whole internet"),
    ("network.adminCidr", "not-a-cidr", "pegasus:network.adminCidr", "not an IPv4 CIDR"),
    ("network.adminCidr", DELETE, "pegasus:network.adminCidr", "required when no ssh.bastion"),
    ("network.extraNics", 2, "pegasus:network.extraNics", "use 0 or 1"),
    ("ssh.bastion", {"host": "10.0.0.9"}, "pegasus:ssh.bastion", "in the VPC this stack creates"),
    ("network.vpcId", "vpc-0123456789abcdef0", "pegasus:network.subnetId", "go together"),
    ("network.subnetId", "sub-1", "pegasus:network.subnetId", "not an AWS subnet id"),
    ("network.primaryInterface", "eth0; reboot", "pegasus:network.primaryInterface", "not an interface name"),
    ("ssh.privateKey", DELETE, "pegasus:ssh.privateKey", "required"),
    ("ssh.publicKey", "not a key", "pegasus:ssh.publicKey", "OpenSSH public key"),
    ("meta.instanceType", "huge", "pegasus:meta.instanceType", "not an EC2 instance type"),
    ("replica.instanceType", "r4.2xlarge", "pegasus:replica.instanceType", "not on the Nitro system"),
    ("collector.enabled", "maybe", "pegasus:collector.enabled", "true or false"),
    ("retainData", "yes", "pegasus:retainData", "true or false"),
    ("image.distribution", "centos-7", "pegasus:image.distribution", "not supported"),
    ("replicas", 5, "pegasus:replicas", "not a known key"),
    ("clustername", "c2", "pegasus:clustername", "did you mean clusterName?"),
    ("replica.dataDisk", {"count": 1}, "pegasus:replica.dataDisk", "did you mean dataDisks?"),
    ("meta.instanceType", "", "pegasus:meta.instanceType", "not an EC2 instance type"),
    ("ssh.privateKey", "~/.ssh/pegasus_dev", "pegasus:ssh.privateKey", "looks like a file path"),
    ("network.vpcCidr", "10.42.0.1/16", "pegasus:network.vpcCidr", "did you mean 10.42.0.0/16?"),
    ("network.adminCidr", "203.0.113.7/24", "pegasus:network.adminCidr", "did you mean 203.0.113.0/24?"),
    ("hdfsServiceArgs", "hdfs://nn:8020 /backup", "pegasus:hdfsServiceArgs", "not supported yet"),
    ("serverUser", "root", "pegasus:serverUser", "a server that runs as root can change anything on its host"),
    ("serverUser", "admin", "pegasus:serverUser", "the SSH login user, who may become root with sudo"),
    ("serverUser", "Pegasus Server", "pegasus:serverUser", "is not a user name"),
    ("serverUser", "-oops", "pegasus:serverUser", "is not a user name"),
    ("packageDelivery", "scp", "pegasus:packageDelivery", "'scp' is not a way to deliver the package; use s3 ("),
    ("packageDelivery", "S3", "pegasus:packageDelivery", "or upload (`pulumi up` copies it over SSH"),
    ("packageDelivery", True, "pegasus:packageDelivery", "must be a string"),
    ("packagedelivery", "s3", "pegasus:packagedelivery", "did you mean packageDelivery?"),
    ("network.s3Endpoint", "skip", "pegasus:network.s3Endpoint", "use create (an S3 gateway endpoint"),
    ("network.s3Endpoint", "existing", "pegasus:network.s3Endpoint", "set network.vpcId and network.subnetId"),
    ("network.clientCidrs", ["0.0.0.0/0"], "pegasus:network.clientCidrs[0]", "reaches beyond the private ranges"),
    ("network.clientCidrs", ["10.0.0.0/8", "203.0.113.0/24"], "pegasus:network.clientCidrs[1]",
     "set network.allowPublicClients: true knowingly"),
    ("network.clientCidrs", ["10.1.2.3/16"], "pegasus:network.clientCidrs[0]", "did you mean 10.1.0.0/16?"),
    ("network.clientCidrs", ["apps"], "pegasus:network.clientCidrs[0]", "not an IPv4 CIDR"),
    ("network.clientCidrs", "10.0.0.0/8", "pegasus:network.clientCidrs", "must be a list of strings"),
    ("network.clientCidrs", ["10.0.0.0/8", "10.0.0.0/8"], "pegasus:network.clientCidrs", "lists '10.0.0.0/8' twice"),
    ("network.clientSecurityGroups", ["sg-123"], "pegasus:network.clientSecurityGroups[0]",
     "not a security group id; copy it from the AWS console"),
    ("network.clientSecurityGroups", ["sg-0123456789abcdef0\n"], "pegasus:network.clientSecurityGroups[0]",
     "not a security group id"),
    ("zookeeper.access", "direct", "pegasus:zookeeper.access", "would open ZooKeeper's port 2181 to network.adminCidr"),
    ("monitoring.enabled", "maybe", "pegasus:monitoring.enabled", "must be true or false"),
    ("monitoring.host", "elsewhere", "pegasus:monitoring.host", "use own (a host of its own) or meta"),
    ("monitoring.retentionDays", 0, "pegasus:monitoring.retentionDays", "outside 1..3650"),
    ("monitoring.downForSeconds", 7200, "pegasus:monitoring.downForSeconds", "outside 0..3600"),
    ("monitoring.availabilityPercent", 100, "pegasus:monitoring.availabilityPercent", "between 0 and 100"),
    ("monitoring.receivers.webhook.url", "ftp://hooks.example.com", "pegasus:monitoring.receivers.webhook.url",
     "not an http(s) URL"),
    ("monitoring.receivers.webhook.url", "https://hooks.example.com/x\n", "pegasus:monitoring.receivers.webhook.url",
     "not an http(s) URL"),
    ("monitoring.grafana.adminPassword", "correct-horse", "pegasus:monitoring.grafana.adminPassword",
     "plain text"),
    ("configOverrides", {"pegasus.server": {"perf_counter_sink": "falcon"}},
     "pegasus:configOverrides.pegasus.server.perf_counter_sink", "turns off the exporter the monitoring reads"),
    ("replica.configOverrides", {"pegasus.server": {"prometheus_port": "9100"}},
     "pegasus:replica.configOverrides.pegasus.server.prometheus_port", "which node_exporter holds"),
    ("roll.maxParallel", 0, "pegasus:roll.maxParallel", "must be 1 or more, got 0"),
    ("roll.maxParallel", "all", "pegasus:roll.maxParallel", "whole number"),
    ("roll.maxparallel", 4, "pegasus:roll.maxparallel", "did you mean maxParallel?"),
    # read even where they change nothing: a typo is not silently taken for false
    ("network.allowPublicClients", "maybe", "pegasus:network.allowPublicClients", "must be true or false"),
    ("zookeeper.allowSingleNode", "yes", "pegasus:zookeeper.allowSingleNode", "must be true or false"),
    ("network.allowWorldSsh", "maybe", "pegasus:network.allowWorldSsh", "must be true or false"),
    # Whole values only (issue 19, item 4): `re.match` with `$` let a trailing newline through.
    ("clusterName", "prod\n", "pegasus:clusterName", "letters, digits and _"),
    ("homeDir", "/home/work\n", "pegasus:homeDir", "absolute path"),
    ("meta.instanceType", "m6i.large\n", "pegasus:meta.instanceType", "not an EC2 instance type"),
    ("image.ami", "ami-0123456789abcdef0\n", "pegasus:image.ami", "not an AMI id"),
    ("network.primaryInterface", "eth1\n", "pegasus:network.primaryInterface", "not an interface name"),
    ("network", {"vpcId": "vpc-0123456789abcdef0\n", "subnetId": "subnet-0123456789abcdef0"},
     "pegasus:network.vpcId", "not an AWS vpc id"),
    # Names that reach ssh's command line: never an option, and checked.
    ("ssh.bastion", {"host": "-oProxyCommand=touch /tmp/x"}, "pegasus:ssh.bastion.host", "not a host name"),
    ("ssh.bastion", {"host": "bastion.example.net\n"}, "pegasus:ssh.bastion.host", "not a host name"),
    ("ssh.bastion", {"host": "-J"}, "pegasus:ssh.bastion.host", "not a host name"),
    ("ssh.user", "admin\n", "pegasus:ssh.user", "not a user name"),
    ("ssh.user", "-oProxyCommand=x", "pegasus:ssh.user", "not a user name"),
    ("ssh.user", "ops team", "pegasus:ssh.user", "not a user name"),
    ("ssh.bastion", {"host": "10.0.0.9", "user": "jump;id"}, "pegasus:ssh.bastion.user", "not a user name"),
    # The bastion's host key (issue 19, item 1): one OpenSSH public key line the connection checks.
    ("ssh.bastion", {"host": "10.0.0.9", "hostKey": "SHA256:abc"}, "pegasus:ssh.bastion.hostKey",
     "not one OpenSSH public key line"),
    ("ssh.bastion", {"host": "10.0.0.9", "hostKey": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ"},
     "pegasus:ssh.bastion.hostKey", "RSA key"),
]


@pytest.mark.parametrize("path,value,key,fragment", BAD_CONFIGS, ids=[f"{c[0]}={c[1]!r}"[:60] for c in BAD_CONFIGS])
def test_bad_config_is_refused_naming_the_key(package, path, value, key, fragment):
    raw = _set(minimal(package), path, value)
    with pytest.raises(SpecError) as error:
        build_spec(raw, stack="dev", secret_keys=SECRET)
    matching = [p for p in error.value.problems if p.startswith(f"{key}:")]
    assert matching, f"no problem names {key}: {error.value.problems}"
    assert any(fragment in p for p in matching), matching
    assert "nothing was created" in str(error.value)


def test_plain_text_private_key_is_refused(package):
    with pytest.raises(SpecError) as error:
        build_spec(minimal(package), stack="dev", secret_keys=set())
    assert any(p.startswith("pegasus:ssh.privateKey:") and "--secret" in p for p in error.value.problems)


def test_every_problem_is_reported_at_once(package):
    raw = _set(_set(_set(minimal(package), "meta.count", 7), "replica.count", 1), "clusterName", "bad name")
    with pytest.raises(SpecError) as error:
        build_spec(raw, stack="dev", secret_keys=SECRET)
    keys = {p.split(":")[1] for p in error.value.problems}
    assert {"meta.count", "replica.count", "clusterName"} <= keys


def test_small_gp3_disks_keep_the_baseline_iops(package):
    raw = _set(minimal(package), "replica.dataDisks", {"sizeGiB": 1})
    assert build_spec(raw, stack="dev", secret_keys=SECRET).replica.data_disks.iops == 3000


def test_world_ssh_needs_an_explicit_opt_in(package):
    raw = _set(minimal(package), "network.adminCidr", "0.0.0.0/0")
    raw["network"]["allowWorldSsh"] = True
    assert build_spec(raw, stack="dev", secret_keys=SECRET).network.admin_cidr == "0.0.0.0/0"


def test_client_ranges_and_groups_are_kept_and_public_ranges_need_the_flag(package):
    raw = _set(minimal(package), "network.clientCidrs", ["10.20.0.0/16", "192.168.7.0/24"])
    raw["network"]["clientSecurityGroups"] = ["sg-0123456789abcdef0", "sg-89abcdef"]
    network = build_spec(raw, stack="dev", secret_keys=SECRET).network
    assert network.client_cidrs == ("10.20.0.0/16", "192.168.7.0/24")
    assert network.client_security_groups == ("sg-0123456789abcdef0", "sg-89abcdef")
    raw["network"].update(clientCidrs=["0.0.0.0/0"], allowPublicClients=True)
    assert build_spec(raw, stack="dev", secret_keys=SECRET).network.client_cidrs == ("0.0.0.0/0",)
    assert build_spec(minimal(package), stack="dev", secret_keys=SECRET).network.client_cidrs == ()


def test_direct_zookeeper_access_is_taken_from_a_private_range_only(package):
    raw = _set(minimal(package), "zookeeper.access", "direct")
    raw["network"]["adminCidr"] = "10.8.0.0/16"  # a VPN's range
    assert build_spec(raw, stack="dev", secret_keys=SECRET).zookeeper.access == "direct"
    raw["network"].update(adminCidr="0.0.0.0/0", allowWorldSsh=True)  # allowWorldSsh speaks of SSH only
    with pytest.raises(SpecError) as error:
        build_spec(raw, stack="dev", secret_keys=SECRET)
    assert any(p.startswith("pegasus:zookeeper.access:") and "'0.0.0.0/0'" in p for p in error.value.problems)
    raw["zookeeper"]["servers"] = "10.0.0.5:2181,10.0.0.6:2181,10.0.0.7:2181"  # nothing of ours to open
    assert build_spec(raw, stack="dev", secret_keys=SECRET).zookeeper.access == "direct"


def test_single_zookeeper_needs_an_explicit_opt_in(package):
    raw = _set(minimal(package), "zookeeper", {"count": 1, "allowSingleNode": True})
    assert build_spec(raw, stack="dev", secret_keys=SECRET).zookeeper.count == 1


def test_package_without_the_server_binary_is_refused(tmp_path):
    import io
    import tarfile

    path = tmp_path / "pegasus-server-2.5.0-8f3c2ab-glibc2.17-release.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        data = b"[core]\n"
        info = tarfile.TarInfo("pegasus-server-2.5.0-8f3c2ab-glibc2.17-release/bin/config.ini")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    raw = minimal(path)
    with pytest.raises(SpecError) as error:
        build_spec(raw, stack="dev", secret_keys=SECRET)
    assert any(p.startswith("pegasus:package:") and "bin/pegasus_server" in p for p in error.value.problems)


def test_relative_package_resolves_against_the_project(package):
    raw = minimal(package)
    raw["package"] = package.name
    spec = build_spec(raw, stack="dev", secret_keys=SECRET, project_dir=package.parent)
    assert Path(spec.package.path) == package


def test_package_is_read_once_per_run(package, monkeypatch):
    import components.spec.server_package as pkg

    reads = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        if str(path).endswith(".tar.gz"):
            reads.append(path)
        return real_open(path, *args, **kwargs)

    pkg._scan.cache_clear()
    monkeypatch.setattr("builtins.open", counting_open)
    for _ in range(3):
        build_spec(minimal(package), stack="dev", secret_keys=SECRET)
    pkg.release_config_template(build_spec(minimal(package), stack="dev", secret_keys=SECRET).package)
    assert len(reads) == 1


def test_a_bastion_outside_a_new_vpc_needs_public_addresses_and_an_admin_range(package):
    raw = _set(minimal(package), "ssh.bastion", {"host": "bastion.example.com"})
    raw["network"] = {"publicAddresses": True}
    with pytest.raises(SpecError) as error:
        build_spec(raw, stack="dev", secret_keys=SECRET)
    assert any(p.startswith("pegasus:network.adminCidr:") and "bastion outside" in p for p in error.value.problems)
    raw["network"]["adminCidr"] = "198.51.100.7/32"
    assert build_spec(raw, stack="dev", secret_keys=SECRET).ssh.bastion.host == "bastion.example.com"
    in_vpc = _set(minimal(package), "ssh.bastion", {"host": "10.0.0.9"})
    in_vpc["network"] = {"vpcId": "vpc-0123456789abcdef0", "subnetId": "subnet-0123456789abcdef0"}
    assert build_spec(in_vpc, stack="dev", secret_keys=SECRET).network.admin_cidr is None


@pytest.mark.parametrize("stack_file", sorted((Path(__file__).parents[2] / "stacks").glob("Pulumi.*.yaml")),
                         ids=lambda p: p.name)
def test_example_stacks_are_valid(package, stack_file):
    """The shipped stack files pass validation once the user's key and package are in."""
    config = yaml.safe_load(stack_file.read_text())["config"]
    raw = {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith("pegasus:")}
    raw["package"] = str(package)
    raw["ssh"] = {**raw.get("ssh", {}), **minimal(package)["ssh"]}
    stack = stack_file.name.split(".")[1]
    assert build_spec(raw, stack=stack, secret_keys=SECRET).cluster_name == raw["clusterName"]


def test_a_key_set_without_path_gets_the_path_hint_alone(package):
    # `pulumi config set pegasus:ssh.privateKey` (no --path) makes one key with a dot in its name.
    raw = minimal(package)
    raw["ssh.privateKey"] = raw["ssh"].pop("privateKey")
    with pytest.raises(SpecError) as error:
        build_spec(raw, stack="dev", secret_keys=SECRET)
    assert error.value.problems == [
        "pegasus:ssh.privateKey: was set as one key named with a dot, not as a path; set it again with --path: "
        "pulumi config rm pegasus:ssh.privateKey && pulumi config set --path pegasus:ssh.privateKey <value> "
        "(add --secret for secrets)"]


def test_a_slash_24_vpc_is_split_in_two(package):
    from components.resources.network import subnet_ranges
    raw = _set(minimal(package), "network.vpcCidr", "10.42.0.0/24")
    spec = build_spec(raw, stack="dev", secret_keys=SECRET)
    assert subnet_ranges(spec.network.vpc_cidr) == ("10.42.0.0/25", "10.42.0.128/25")
    assert subnet_ranges("10.42.0.0/16") == ("10.42.0.0/24", "10.42.1.0/24")  # as before: no replacement


# ---------------------------------------------------------------- toolsPackage (pack_tools)

def test_a_tools_package_is_read_like_the_server_package(package, tmp_path):
    from tests.support.package_builder import build_tools_package
    tools = build_tools_package(tmp_path)
    spec = build_spec({**minimal(package), "toolsPackage": str(tools)}, stack="dev", secret_keys=SECRET)
    assert spec.tools is not None and spec.tools.release == "pegasus-tools-2.5.0-8f3c2ab-glibc2.17-release"
    assert spec.tools.version == "2.5.0" and len(spec.tools.sha256) == 64
    assert build_spec(minimal(package), stack="dev", secret_keys=SECRET).tools is None


@pytest.mark.parametrize("case, expected", [
    ("misnamed", "is not named as pack_tools names a package"),
    ("missing", "does not exist or is not a file"),
    ("no shell", "lacks bin/pegasus_shell/pegasus_shell"),
    ("no libraries", "lacks lib/ (the shell's libraries)"),
    ("server package", "is not named as pack_tools names a package"),
])
def test_a_bad_tools_package_is_refused_naming_the_key_and_the_fix(package, tmp_path, case, expected):
    from tests.support.package_builder import build_tools_package
    if case == "misnamed":
        path = build_tools_package(tmp_path)
        path = path.rename(tmp_path / "tools.tar.gz")
    elif case == "missing":
        path = tmp_path / "pegasus-tools-2.5.0-8f3c2ab-glibc2.17-release.tar.gz"
    elif case == "no shell":
        path = build_tools_package(tmp_path, omit=("bin/pegasus_shell/pegasus_shell",))
    elif case == "no libraries":
        path = build_tools_package(tmp_path, omit=("lib/libpegasus_standin.so",))
    else:
        path = package
    with pytest.raises(SpecError) as raised:
        build_spec({**minimal(package), "toolsPackage": str(path)}, stack="dev", secret_keys=SECRET)
    message = str(raised.value)
    assert "pegasus:toolsPackage:" in message and expected in message
    assert "rebuild the package with pack_tools, or remove the key" in message
