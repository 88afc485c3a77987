"""The cluster spec: the stack's `pegasus:*` config, validated into immutable dataclasses.

`build_spec` is the only place that looks at raw config. It collects every
problem it finds and raises one `SpecError` listing them all, each naming the
key, what is wrong and what to do; nothing downstream re-validates. No Pulumi
resources here: this runs (and fails) before anything is created.

Each key's type, default, choices and place come from its declaration
(keys.py), through the reader; what is here is the checks a declaration
cannot say: ranges with their own words, limits of a volume type, keys that
go together.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

from components.spec import keys
from components.spec.monitoring import check_exporter_overrides, read_monitoring
from components.spec.model import (DISTRIBUTIONS, Bastion, ClusterSpec, CollectorSpec, DiskSpec, ImageSpec,
                                   NetworkSpec, ReplicaSpec, RoleSpec, RollSpec, SshSpec, Timeouts, ZooKeeperSpec,
                                   default_max_parallel, listed_disks)
from components.spec.config_overrides import read_overrides as _overrides
from components.spec.host_key import read_host_key
from components.spec.own_servers import read_own_servers
from components.spec.reader import NAMESPACE, ConfigReader, SpecError, known_keys_fix
from components.spec.server_package import PackageError, PackageInfo, inspect_package
from components.spec.tools_package import ToolsPackage, inspect_tools_package
from components.spec.values import CLUSTER_NAME, HOST_NAME, INTERFACE_NAME, MAX_DATA_DISKS, SYSTEM_DIRS, \
    SERVER_USER_NAME, USER_NAME, check_path, is_within

# Families on the older Xen hypervisor: their EBS volumes are /dev/xvd* devices,
# not the NVMe devices (found by volume id) that disk preparation relies on.
XEN_FAMILIES = frozenset({"t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "r3", "r4", "i2", "i3", "d2",
                          "x1", "x1e", "g2", "g3", "g3s", "p2", "p3", "h1", "f1", "cc2", "cr1", "hs1"})
AWS_ID = {"vpcId": re.compile(r"vpc-[0-9a-f]{8,17}"), "subnetId": re.compile(r"subnet-[0-9a-f]{8,17}")}
AMI_ID = re.compile(r"ami-[0-9a-f]{8,17}")
PUBLIC_KEY = re.compile(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?")
SECURITY_GROUP_ID = re.compile(r"sg-(?:[0-9a-f]{8}|[0-9a-f]{17})")
# The ranges a VPC's addresses come from (RFC 1918, and RFC 6598's shared range that
# AWS also accepts for a VPC): nothing of the internet.
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(n) for n in
                       ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"))
# EBS limits per volume type: size GiB, IOPS, throughput MiB/s, IOPS per GiB
# (above a baseline every size gets: gp3 gives 3000 IOPS even to 1 GiB).
VOLUME_LIMITS: dict[str, dict[str, Any]] = {
    "gp3": {"size": (1, 16384), "iops": (3000, 16000), "throughput": (125, 1000), "iops_per_gib": 500,
            "baseline_iops": 3000},
    "io2": {"size": (4, 16384), "iops": (100, 64000), "throughput": None, "iops_per_gib": 500,
            "baseline_iops": 0},
    "io1": {"size": (4, 16384), "iops": (100, 64000), "throughput": None, "iops_per_gib": 50,
            "baseline_iops": 0},
    "gp2": {"size": (1, 16384), "iops": None, "throughput": None, "iops_per_gib": None, "baseline_iops": 0},
}
# How the package reaches the servers: fetched by each server from the stack's
# S3 bucket (uploaded once), or copied over SSH to each server by `pulumi up`.
PACKAGE_DELIVERIES = {
    "s3": "each server fetches it from the stack's S3 bucket, where `pulumi up` uploads it once",
    "upload": "`pulumi up` copies it over SSH to every server (for servers that cannot reach S3)",
}


def _nitro_instance_type(r: ConfigReader, raw: Mapping[str, Any], key: str) -> str:
    value = r.instance_type(raw, key)
    family, _, size = value.partition(".")
    if family in XEN_FAMILIES and size != "metal":
        r.problem(key, f"{value} is not on the Nitro system: its EBS volumes are not NVMe devices, "
                  "which disk preparation finds by volume id", "use a current family, e.g. m6i, r6i or i4i")
    return value


def _check_app_dir(r: ConfigReader, app_dir: str, home_dir: str) -> None:
    if is_within(home_dir, app_dir):
        r.problem("appDir", f"{app_dir!r} is homeDir or a parent of it, and destroy removes appDir",
                  "use a directory below homeDir, e.g. <homeDir>/app/pegasus")
    for system in SYSTEM_DIRS:
        if is_within(system, app_dir):
            r.problem("appDir", f"{app_dir!r} is {system} or a parent of it, and destroy removes appDir",
                      "use a dedicated directory such as /home/work/app/pegasus")
            break


def _disk(r: ConfigReader, raw: Mapping[str, Any], key: str, with_count: bool) -> DiskSpec:
    d = r.obj(raw, key)
    count = r.integer(d, f"{key}.count") if with_count else 1
    vtype = r.choice(d, f"{key}.type")
    limits = VOLUME_LIMITS[vtype]
    size = r.integer(d, f"{key}.sizeGiB") or 0
    iops = r.integer(d, f"{key}.iops")
    throughput = r.integer(d, f"{key}.throughput")
    if with_count and not 1 <= (count or 0) <= MAX_DATA_DISKS:
        r.problem(f"{key}.count", f"{count} disks per ReplicaServer is outside 1..{MAX_DATA_DISKS}",
                  "every ReplicaServer gets this many identical disks")
    low, high = limits["size"]
    if not low <= size <= high:
        r.problem(f"{key}.sizeGiB", f"{size} GiB is outside what {vtype} allows ({low}..{high})",
                  "pick a size in range")
    if vtype == "gp3":
        iops = 3000 if iops is None else iops
        throughput = 125 if throughput is None else throughput
    if vtype in ("io1", "io2") and iops is None:
        r.problem(f"{key}.iops", f"{vtype} volumes need provisioned IOPS", "set iops")
    if iops is not None:
        if limits["iops"] is None:
            r.problem(f"{key}.iops", f"{vtype} volumes do not take provisioned IOPS", "remove iops or use gp3/io2")
        else:
            low, high = limits["iops"]
            if not low <= iops <= high:
                r.problem(f"{key}.iops", f"{iops} is outside what {vtype} allows ({low}..{high})",
                          "pick a value in range")
            elif iops > max(limits["baseline_iops"], limits["iops_per_gib"] * max(size, 1)):
                r.problem(f"{key}.iops", f"{iops} IOPS on {size} GiB exceeds {limits['iops_per_gib']} IOPS per GiB",
                          "lower iops or grow sizeGiB")
    if throughput is not None:
        if limits["throughput"] is None:
            r.problem(f"{key}.throughput", f"{vtype} volumes do not take a throughput setting", "remove it or use gp3")
        else:
            low, high = limits["throughput"]
            if not low <= throughput <= high:
                r.problem(f"{key}.throughput", f"{throughput} MiB/s is outside what gp3 allows ({low}..{high})",
                          "pick a value in range")
            elif iops is not None and throughput * 4 > iops:
                r.problem(f"{key}.throughput", f"{throughput} MiB/s needs at least {throughput * 4} IOPS on gp3 "
                          f"(0.25 MiB/s per IOPS), iops is {iops}", "raise iops or lower throughput")
    return DiskSpec(count=count or 1, type=vtype, size_gib=size, iops=iops, throughput=throughput)


def _ip_port_list(r: ConfigReader, key: str, value: str) -> tuple[str, ...]:
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if not entries:
        r.problem(key, "is empty", "list the ensemble as ip:port,ip:port")
    for entry in entries:
        host, _, port = entry.rpartition(":")
        try:
            ipaddress.IPv4Address(host)
            ok = port.isdigit() and 0 < int(port) < 65536
        except ValueError:
            ok = False
        if not ok:
            r.problem(key, f"{entry!r} is not an IPv4 address with a port (host names are not allowed: "
                      "Pegasus wants IP addresses)", "write it as 10.0.0.5:2181")
    return tuple(entries)


def build_spec(
    raw: Mapping[str, Any],
    *,
    stack: str,
    secret_keys: set[str] | frozenset[str] = frozenset(),
    project_dir: Path = Path("."),
    inspect: Callable[[Path], PackageInfo] = inspect_package,
    inspect_tools: Callable[[Path], ToolsPackage] = inspect_tools_package,
) -> ClusterSpec:
    """Validate the `pegasus:*` config (keys without the namespace) into a ClusterSpec."""
    r = ConfigReader()
    # `pulumi config set pegasus:ssh.privateKey` (no --path) stores one key named
    # "ssh.privateKey" rather than privateKey inside ssh.
    flat = {k for k in raw if "." in k and k.split(".", 1)[0] in keys.children("")}
    for key in sorted(flat):
        r.problem(key, "was set as one key named with a dot, not as a path",
                  f"set it again with --path: pulumi config rm {NAMESPACE}:{key} && "
                  f"pulumi config set --path {NAMESPACE}:{key} <value> (add --secret for secrets)")
    for unknown in sorted(set(raw) - set(keys.children("")) - flat):
        r.problem(unknown, "is not a known key", known_keys_fix(unknown, keys.children("")))

    cluster_name = r.string(raw, "clusterName")
    if cluster_name is None:
        r.problem("clusterName", "is required", "pulumi config set pegasus:clusterName <name>")
        cluster_name = "invalid"
    elif not CLUSTER_NAME.fullmatch(cluster_name):
        r.problem("clusterName", f"{cluster_name!r} may hold only letters, digits and _ (1-64 chars)",
                  "it becomes a ZooKeeper path and a config key")

    package = None
    package_value = r.string(raw, "package")
    if package_value is None:
        r.problem("package", "is required", "point it at the .tar.gz that pack_server made")
    else:
        path = Path(package_value)
        path = path if path.is_absolute() else project_dir / path
        try:
            package = inspect(path)
        except PackageError as exc:
            r.problem("package", str(exc), "fix the path or rebuild the package with pack_server")

    # Your own servers get the package over SSH: the store is a bucket, an
    # endpoint and an instance role of this stack on AWS.
    own = raw.get("servers") is not None
    delivery = r.string(raw, "packageDelivery", "upload" if own else "s3")
    if delivery not in PACKAGE_DELIVERIES:
        r.problem("packageDelivery", f"{delivery!r} is not a way to deliver the package",
                  "use " + " or ".join(f"{k} ({v})" for k, v in PACKAGE_DELIVERIES.items()))
        delivery = "upload" if own else "s3"
    elif own and delivery == "s3":
        r.problem("packageDelivery", "'s3' needs the bucket, endpoint and instance role this program makes on AWS, "
                  "and `servers` lists your own servers", "remove packageDelivery (your own servers get the "
                  "package over SSH) or set it to upload")
    tools = None
    tools_value = r.string(raw, "toolsPackage")
    if tools_value:
        path = Path(tools_value)
        path = path if path.is_absolute() else project_dir / path
        try:
            tools = inspect_tools(path)
        except PackageError as exc:
            r.problem("toolsPackage", str(exc),
                      "fix the path, rebuild the package with pack_tools, or remove the key to roll without "
                      "moving primaries first")

    home_dir = r.string(raw, "homeDir") or keys.key("homeDir").default
    home_ok = check_path(r, "homeDir", home_dir)
    app_dir = r.string(raw, "appDir") or f"{home_dir}/app/pegasus"
    if check_path(r, "appDir", app_dir) and home_ok:
        _check_app_dir(r, app_dir, home_dir)

    image = ImageSpec(distribution="debian-12", architecture="amd64", ami=None)
    if not own:
        image_raw = r.obj(raw, "image")
        image = ImageSpec(
            distribution=r.choice(image_raw, "image.distribution"),
            architecture=r.choice(image_raw, "image.architecture"),
            ami=r.string(image_raw, "image.ami"),
        )
        if image.ami is not None and not AMI_ID.fullmatch(image.ami):
            r.problem("image.ami", f"{image.ami!r} is not an AMI id", "use ami-<hex> or leave it out to look one up")

    ssh = _ssh(r, raw, image, secret_keys, flat, own=own)
    server_user = _server_user(r, raw, ssh)
    meta = _role(r, raw, "meta")
    if meta.count not in keys.key("meta.count").choices:
        r.problem("meta.count", f"{meta.count} MetaServers is not supported", "use 2 or 3 (3 survives a loss)")
    replica = _replica(r, raw)
    collector = _collector(r, raw)
    zookeeper = _zookeeper(r, raw)
    monitoring = read_monitoring(r, raw, own_servers=own, secret=f"{NAMESPACE}:monitoring" in secret_keys)
    servers = None
    if own:
        servers = read_own_servers(r, raw, home_dir=home_dir, app_dir=app_dir,
                                   external_zookeeper=not zookeeper.provisioned,
                                   single_zookeeper_allowed=_flag(raw.get("zookeeper"), "allowSingleNode"),
                                   collector_host=collector.own_host, monitoring_host=monitoring.own_host)
        disks = servers.replica[0] if servers.replica else None
        meta = replace(meta, count=len(servers.meta), instance_type="")
        replica = replace(replica, count=len(servers.replica), instance_type="", data_disks=listed_disks(
            len(disks.data_disks) if disks else 0), slog_disk=listed_disks(1) if disks and disks.slog_disk else None)
        collector = replace(collector, instance_type="")
        zookeeper = replace(zookeeper, count=len(servers.zookeeper) if zookeeper.provisioned else 0,
                            instance_type="")
        network = NetworkSpec(vpc_id=None, subnet_id=None, availability_zone=None, vpc_cidr="", extra_nics=0,
                              primary_interface="", admin_cidr=None, public_addresses=False)
    else:
        network = _network(r, raw, ssh)
        _zookeeper_reach(r, zookeeper, network)
    overrides = _overrides(r, raw.get("configOverrides"), "configOverrides")
    if package is not None:
        check_exporter_overrides(r, monitoring, perf_counters=package.name.version_tuple < (2, 6, 0),
                                 shared=overrides, roles={"meta": meta.config_overrides,
                                                          "replica": replica.config_overrides,
                                                          "collector": collector.config_overrides},
                                 colocated_collector=collector.enabled and collector.colocate)
    timeouts_raw = r.obj(raw, "timeouts")

    def seconds(name: str) -> int:
        """0 (or nothing) is the declared default."""
        return r.integer(timeouts_raw, f"timeouts.{name}") or keys.key(f"timeouts.{name}").default

    timeouts = Timeouts(start_seconds=seconds("startSeconds"), health_seconds=seconds("healthSeconds"),
                        zookeeper_seconds=seconds("zookeeperSeconds"),
                        meta_pause_seconds=r.integer(timeouts_raw, "timeouts.metaPauseSeconds") or 0)
    roll_raw = r.obj(raw, "roll")
    max_parallel = r.integer(roll_raw, "roll.maxParallel")
    if max_parallel == 0:
        r.problem("roll.maxParallel", "must be 1 or more, got 0",
                  "set 1 to restart the ReplicaServers one at a time, or leave it out for one in ten at most")
    roll = RollSpec(max_parallel or default_max_parallel(replica.count))
    hdfs_args = r.string(raw, "hdfsServiceArgs") or ""
    if hdfs_args:
        # The HDFS block service runs in the JVM pegasus_server starts, which needs
        # Hadoop's CLASSPATH and LIBHDFS_OPTS (as Pegasus's own config_hdfs.sh sets
        # them); this program installs no Hadoop client yet.
        r.problem("hdfsServiceArgs", "is not supported yet: the servers would need a Hadoop client "
                  "(its CLASSPATH and LIBHDFS_OPTS=-Xrs) that this program does not install",
                  "remove the key; set up cold backup to HDFS by hand until this program supports it")
    retain = r.boolean(raw, "retainData")

    if r.problems:
        raise SpecError(r.problems)
    assert package is not None
    return ClusterSpec(
        stack=stack, cluster_name=cluster_name, package=package, home_dir=home_dir,
        app_dir=app_dir, ssh=ssh, image=image, meta=meta, replica=replica,
        collector=collector, zookeeper=zookeeper, network=network,
        config_overrides=overrides, hdfs_service_args=hdfs_args, retain_data=retain,
        timeouts=timeouts, package_delivery=delivery or ("upload" if own else "s3"), tools=tools, roll=roll,
        config_has_secrets=any(f"{NAMESPACE}:{key}" in secret_keys
                               for key in ("configOverrides", "meta", "replica", "collector")),
        servers=servers, monitoring=monitoring, server_user=server_user,
    )


def _server_user(r: ConfigReader, raw: Mapping[str, Any], ssh: SshSpec) -> str:
    """The user the servers run as: a plain system user, never one that may become root."""
    user = r.string(raw, "serverUser") or keys.key("serverUser").default
    if not SERVER_USER_NAME.fullmatch(user):
        r.problem("serverUser", f"{user!r} is not a user name (lower-case letters, digits, _ and -, starting with a "
                  "letter or _, at most 32)", "name the system user Pegasus runs as, e.g. pegasus")
    elif user == "root":
        r.problem("serverUser", "is root: a server that runs as root can change anything on its host",
                  "name a user of Pegasus's own, e.g. pegasus (made when a server lacks it)")
    elif user == ssh.user:
        r.problem("serverUser", f"is {user}, the SSH login user, who may become root with sudo",
                  "name a user of Pegasus's own, e.g. pegasus (made when a server lacks it)")
    return user



def _flag(section: Any, key: str) -> bool:
    value = section.get(key, False) if isinstance(section, Mapping) else False
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _ssh(r: ConfigReader, raw: Mapping[str, Any], image: ImageSpec, secret_keys, flat: set[str], own: bool) -> SshSpec:
    s = r.obj(raw, "ssh")
    if own and s.get("user") is None:
        r.problem("ssh.user", "is required with your own servers (there is no image to know it from)",
                  "set the login user: root, or a user with passwordless sudo (pulumi config set --path "
                  "pegasus:ssh.user admin)")
    user = r.string(s, "ssh.user", DISTRIBUTIONS[image.distribution][0]) or "admin"
    _user_name(r, "ssh.user", user)
    private_key = r.string(s, "ssh.privateKey")
    if private_key is None:
        if "ssh.privateKey" not in flat:
            r.problem("ssh.privateKey", "is required (the remote commands log in with it)",
                      "pulumi config set --secret --path pegasus:ssh.privateKey < key")
    elif "PRIVATE KEY-----" not in private_key:
        looks_like = " (it looks like a file path)" if private_key.strip().startswith(("/", "~", ".")) else ""
        r.problem("ssh.privateKey", f"is not a private key{looks_like}",
                  "give the key's content, not its path: pulumi config set --secret --path "
                  "pegasus:ssh.privateKey < ~/.ssh/your_key")
    elif f"{NAMESPACE}:ssh" not in secret_keys:
        r.problem("ssh.privateKey", "is stored in plain text in the stack file",
                  "set it again with --secret: pulumi config set --secret --path pegasus:ssh.privateKey < key")
    public_key = r.string(s, "ssh.publicKey")
    if public_key is None:
        # Installed on the servers AWS makes; your own servers must already authorize it.
        if "ssh.publicKey" not in flat and not own:
            r.problem("ssh.publicKey", "is required (installed on every server)", "set it to the key's .pub line")
    elif not PUBLIC_KEY.fullmatch(public_key.strip()):
        r.problem("ssh.publicKey", "is not an OpenSSH public key line", "paste the content of the .pub file")
    bastion = None
    if s.get("bastion") is not None:
        b = r.obj(s, "ssh.bastion")
        host = r.string(b, "ssh.bastion.host")
        if not host or not HOST_NAME.fullmatch(host):
            r.problem("ssh.bastion.host", f"{host!r} is not a host name or address", "set the bastion's address")
        port = r.integer(b, "ssh.bastion.port") or keys.key("ssh.bastion.port").default
        if not 0 < port < 65536:
            r.problem("ssh.bastion.port", f"{port} is not a TCP port", "use 1..65535")
        bastion_user = r.string(b, "ssh.bastion.user", user) or user
        if bastion_user != user:
            _user_name(r, "ssh.bastion.user", bastion_user)
        bastion = Bastion(host=host or "", user=bastion_user, port=port,
                          host_key=read_host_key(r, "ssh.bastion.hostKey", b.get("hostKey"), "bastion"))
    return SshSpec(user=user, private_key=private_key or "", public_key=(public_key or "").strip(), bastion=bastion)


def _user_name(r: ConfigReader, key: str, user: str) -> None:
    if not USER_NAME.fullmatch(user):
        r.problem(key, f"{user!r} is not a user name (letters, digits, _ . -, not starting with - or a digit, "
                  "at most 32)", "give the login user's name as the server knows it")


def _role(r: ConfigReader, raw, name: str) -> RoleSpec:
    d = r.obj(raw, name)
    return RoleSpec(
        count=r.integer(d, f"{name}.count") or 0,
        instance_type=r.instance_type(d, f"{name}.instanceType"),
        config_overrides=_overrides(r, d.get("configOverrides"), f"{name}.configOverrides"),
    )


def _replica(r: ConfigReader, raw) -> ReplicaSpec:
    d = r.obj(raw, "replica")
    count = r.integer(d, "replica.count") or 0
    if count < 3:
        r.problem("replica.count", f"{count} ReplicaServers cannot hold 3 replicas of a partition",
                  "use 3 or more")
    data = _disk(r, d, "replica.dataDisks", with_count=True)
    slog = _disk(r, d, "replica.slogDisk", with_count=False) if d.get("slogDisk") is not None else None
    return ReplicaSpec(
        count=count,
        instance_type=_nitro_instance_type(r, d, "replica.instanceType"),
        config_overrides=_overrides(r, d.get("configOverrides"), "replica.configOverrides"),
        data_disks=data,
        slog_disk=slog,
    )


def _collector(r: ConfigReader, raw) -> CollectorSpec:
    d = r.obj(raw, "collector")
    return CollectorSpec(
        enabled=r.boolean(d, "collector.enabled"),
        colocate=r.boolean(d, "collector.colocate"),
        instance_type=r.instance_type(d, "collector.instanceType"),
        config_overrides=_overrides(r, d.get("configOverrides"), "collector.configOverrides"),
    )


def _zookeeper(r: ConfigReader, raw) -> ZooKeeperSpec:
    d = r.obj(raw, "zookeeper")
    servers_raw = r.string(d, "zookeeper.servers")
    access = r.choice(d, "zookeeper.access")
    adopt = r.boolean(d, "zookeeper.adoptExistingPath")
    if servers_raw is not None:
        for clash in ("count", "instanceType", "allowSingleNode"):
            if clash in d:
                r.problem(f"zookeeper.{clash}", "does not apply to an external ensemble (zookeeper.servers is set)",
                          "remove it, or remove servers to provision ZooKeeper")
        servers = _ip_port_list(r, "zookeeper.servers", servers_raw)
        return ZooKeeperSpec(count=0, instance_type="", external_servers=servers,
                             adopt_existing_path=adopt, access=access)
    count = r.integer(d, "zookeeper.count") or 0
    single_allowed = r.boolean(d, "zookeeper.allowSingleNode")  # read even when unused: a typo is an error
    if count not in keys.key("zookeeper.count").choices:
        r.problem("zookeeper.count", f"an ensemble of {count} has no safe majority", "use 3 or 5 (or 1 for tests)")
    elif count == 1 and not single_allowed:
        r.problem("zookeeper.count", "1 ZooKeeper server is a single point of failure",
                  "use 3, or set zookeeper.allowSingleNode: true for a throwaway stack")
    return ZooKeeperSpec(count=count, instance_type=r.instance_type(d, "zookeeper.instanceType"),
                         external_servers=(), adopt_existing_path=adopt, access=access)


def _cidr(r: ConfigReader, key: str, value: str, example: str) -> ipaddress.IPv4Network | None:
    """An IPv4 range, or None after recording what is wrong with it."""
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        pass
    try:
        network = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        r.problem(key, f"{value!r} is not an IPv4 CIDR", f"write it as address/prefix, e.g. {example}")
        return None
    r.problem(key, f"{value!r} has host bits set", f"did you mean {network}?")
    return None


def _network(r: ConfigReader, raw, ssh: SshSpec) -> NetworkSpec:
    d = r.obj(raw, "network")
    vpc_id = r.string(d, "network.vpcId")
    subnet_id = r.string(d, "network.subnetId")
    for key, value in (("vpcId", vpc_id), ("subnetId", subnet_id)):
        if value is not None and not AWS_ID[key].fullmatch(value):
            r.problem(f"network.{key}", f"{value!r} is not an AWS {key[:-2]} id", "copy it from the AWS console")
    if (vpc_id is None) != (subnet_id is None):
        r.problem("network.subnetId", "vpcId and subnetId go together",
                  "set both to use an existing network, or neither")
    vpc_cidr = r.string(d, "network.vpcCidr") or keys.key("network.vpcCidr").default
    net = _cidr(r, "network.vpcCidr", vpc_cidr, "10.42.0.0/16")
    if net is not None and (not net.is_private or net.prefixlen > 24):
        r.problem("network.vpcCidr", f"{vpc_cidr!r} is not a private IPv4 range of /24 or larger",
                  "use e.g. 10.42.0.0/16 (Pegasus picks private addresses)")
    extra = r.integer(d, "network.extraNics") or 0
    if extra not in keys.key("network.extraNics").choices:
        r.problem("network.extraNics", f"{extra} extra NICs is not supported", "use 0 or 1")
    primary = r.string(d, "network.primaryInterface") or ""
    if primary and not INTERFACE_NAME.fullmatch(primary):
        r.problem("network.primaryInterface", f"{primary!r} is not an interface name", "e.g. ens6, or leave it empty")
    admin = r.string(d, "network.adminCidr")
    allow_world = r.boolean(d, "network.allowWorldSsh")  # read even when unused: a typo is an error
    if admin is not None:
        admin_net = _cidr(r, "network.adminCidr", admin, "203.0.113.0/24")
        if admin_net is not None and admin_net.prefixlen == 0 and not allow_world:
            r.problem("network.adminCidr", "0.0.0.0/0 opens SSH to the whole internet",
                      "use your office or VPN range, or set network.allowWorldSsh: true knowingly")
    elif ssh.bastion is None:
        r.problem("network.adminCidr", "is required when no ssh.bastion is set (nothing else may reach SSH)",
                  "set the range your operators connect from, or an ssh.bastion")
    public_addresses = r.boolean(d, "network.publicAddresses")
    if ssh.bastion is not None and vpc_id is None:
        # A VPC this stack creates has no bastion inside it and nothing peers it.
        if not public_addresses:
            r.problem("ssh.bastion", "cannot reach servers on private addresses in the VPC this stack creates "
                      "(the bastion is not inside it)",
                      "set network.vpcId and network.subnetId to the VPC your bastion serves")
        elif admin is None:
            r.problem("network.adminCidr", "is required with a bastion outside the VPC this stack creates "
                      "(SSH is otherwise open only from inside it)", "set it to the bastion's public address range")
    s3_endpoint = r.string(d, "network.s3Endpoint") or keys.key("network.s3Endpoint").default
    if s3_endpoint not in ("create", "existing"):
        r.problem("network.s3Endpoint", f"{s3_endpoint!r} is not supported",
                  "use create (an S3 gateway endpoint on the servers' route table) or existing (the VPC's "
                  "route table already has one)")
        s3_endpoint = "create"
    elif s3_endpoint == "existing" and vpc_id is None:
        r.problem("network.s3Endpoint", "'existing' needs a VPC you bring: the one this stack creates has no "
                  "endpoint but its own", "remove the key, or set network.vpcId and network.subnetId")
    client_cidrs, client_groups = _clients(r, d)
    return NetworkSpec(
        vpc_id=vpc_id, subnet_id=subnet_id, availability_zone=r.string(d, "network.availabilityZone"),
        vpc_cidr=vpc_cidr, extra_nics=extra, primary_interface=primary, admin_cidr=admin,
        public_addresses=public_addresses, s3_endpoint=s3_endpoint,
        client_cidrs=client_cidrs, client_security_groups=client_groups,
    )


def is_private_range(network: ipaddress.IPv4Network) -> bool:
    return any(network.subnet_of(private) for private in PRIVATE_RANGES)


def _string_list(r: ConfigReader, raw: Mapping[str, Any], key: str, example: str) -> list[str]:
    value = raw.get(key.rsplit(".", 1)[-1])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        r.problem(key, f"must be a list of strings, got {value!r}", f"write it as a YAML list, e.g. [{example}]")
        return []
    return value


def _clients(r: ConfigReader, d: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """network.clientCidrs and network.clientSecurityGroups: who may reach the client ports."""
    allow_public = r.boolean(d, "network.allowPublicClients")  # read even when unused: a typo is an error
    cidrs = []
    for i, value in enumerate(_string_list(r, d, "network.clientCidrs", "10.20.0.0/16")):
        key = f"network.clientCidrs[{i}]"
        network = _cidr(r, key, value, "10.20.0.0/16")
        if network is None:
            continue
        if not is_private_range(network) and not allow_public:
            r.problem(key, f"{value!r} reaches beyond the private ranges (10.0.0.0/8, 172.16.0.0/12, "
                      "192.168.0.0/16, 100.64.0.0/10): Pegasus's RPC is not encrypted and, without Kerberos, not "
                      "authenticated", "list your applications' private ranges or security groups, or set "
                      "network.allowPublicClients: true knowingly")
        cidrs.append(value)
    groups = []
    for i, value in enumerate(_string_list(r, d, "network.clientSecurityGroups", "sg-0123456789abcdef0")):
        if not SECURITY_GROUP_ID.fullmatch(value):
            r.problem(f"network.clientSecurityGroups[{i}]", f"{value!r} is not a security group id",
                      "copy it from the AWS console: sg- followed by 8 or 17 hex digits")
            continue
        groups.append(value)
    for key, values in (("network.clientCidrs", cidrs), ("network.clientSecurityGroups", groups)):
        for duplicate in sorted({v for v in values if values.count(v) > 1}):
            r.problem(key, f"lists {duplicate!r} twice", "keep one")
    return tuple(cidrs), tuple(groups)


def _zookeeper_reach(r: ConfigReader, zookeeper: ZooKeeperSpec, network: NetworkSpec) -> None:
    """`zookeeper.access: direct` opens 2181 of a provisioned ensemble to adminCidr: never
    beyond the private ranges (ZooKeeper takes no authentication from Pegasus 2.4/2.5,
    so whoever reaches it can rewrite or delete the cluster's state)."""
    if zookeeper.access != "direct" or not zookeeper.provisioned or network.admin_cidr is None:
        return
    try:
        admin = ipaddress.IPv4Network(network.admin_cidr, strict=True)
    except ValueError:
        return  # reported for network.adminCidr already
    if not is_private_range(admin):
        r.problem("zookeeper.access", f"'direct' would open ZooKeeper's port 2181 to network.adminCidr "
                  f"{network.admin_cidr!r}, beyond the private ranges: ZooKeeper takes no authentication from "
                  "Pegasus 2.4/2.5, so anyone there could rewrite or delete the cluster's state",
                  "use zookeeper.access: ssh (the default: a tunnel through a cluster host), or an adminCidr of "
                  "your VPN's private range")
