"""Every `pegasus:*` stack key, declared once: type, default, choices, when it may change, its doc.

The validation (validation.py, own_servers.py) reads each key through its
declaration: the default when the key is absent, the choices it accepts, the
keys an object may hold (an unknown one gets a "did you mean"), the keys that
mean nothing with your own servers. The fixed-settings check
(operations/fixed_settings.py) takes the keys an existing cluster cannot
change from here, and docs/config.md's reference table is generated from
here (`python -m components.spec.keys`; tests/unit/test_keys.py keeps them
equal). Checks that span several keys, and messages written for one key,
stay in the validation code, next to the key's own read.

To add a key: declare it here (parents before children, siblings in the
order messages list them), read it in validation.py with the reader
(`r.integer(d, "section.key")` takes the declared default), regenerate the
docs, and add a bad value of it to tests/unit/test_spec.py's catalog.

Plain frozen dataclasses rather than a schema library: the messages (key,
what is wrong, what to do, all at once) are the project's own and a library
would impose its own; no new dependency; a declaration is one line a reader
can find by its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# after_deploy: what a change of the key does to a cluster that exists
APPLIED = "applied"  # carried out by the next `pulumi up` (servers restart one at a time where needed)
FIXED = "fixed"  # refused by preview once the cluster exists
GROW_ONLY = "grow only"  # may grow, refused smaller
NEW_SERVERS = "new servers"  # applies to servers created afterwards; running ones keep theirs
BY_HAND = "by hand first"  # refused while a running server has another value: change those one at a time first
SAME_ENSEMBLE = "same ensemble"  # another list of the same ZooKeeper ensemble (a server replaced); any other, refused

# modes: where a key means something
BOTH, AWS, OWN = "both", "aws", "own"


@dataclass(frozen=True)
class Key:
    path: str  # dotted, as `pulumi config set --path pegasus:<path>` takes it; `[]` marks a list's items
    type: str  # string, integer, boolean, object, map, list
    doc: str  # one line for the reference (markdown)
    default: Any = None  # None: absent unless set (or computed, then `default_doc` says how)
    default_doc: str = ""  # how the reference shows the default when it is not `default` itself
    choices: tuple = ()
    after_deploy: str = APPLIED
    secret: bool = False  # must be set with --secret
    modes: str = BOTH
    required: bool = False
    state_name: str = ""  # the fixed-settings input that keeps it (FIXED and GROW_ONLY keys)

    @property
    def parent(self) -> str:
        return self.path.rpartition(".")[0]

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]


def _servers(role: str, disks: bool = False) -> tuple[Key, ...]:
    where = f"servers.{role}[]"
    keys: tuple[Key, ...] = (
        Key(f"{where}.host", "string", "where SSH logs in: a host name or an address", required=True, modes=OWN),
        Key(f"{where}.nic", "string", "the interface Pegasus binds, by name or MAC address",
            default_doc="the one Pegasus picks (first private IPv4)", modes=OWN),
        Key(f"{where}.hostKey", "string", "the server's SSH host key, its `/etc/ssh/ssh_host_ed25519_key.pub` line "
            "(Ed25519 or ECDSA): every connection checks it; a new value accepts a server rebuilt on purpose",
            default_doc="the key your `known_hosts` holds for `host`", modes=OWN))
    if disks:
        keys += (Key(f"{where}.dataDisks", "list", "data disks: `/dev/disk/by-id/...` devices (formatted only when "
                     "blank) or directories you mounted; the same on every ReplicaServer", required=True, modes=OWN),
                 Key(f"{where}.slogDisk", "string", "a disk for the shared log, as a data disk", modes=OWN,
                     after_deploy=FIXED, state_name="slog_disk"))
    return keys


def _disk(path: str, what: str, with_count: bool) -> tuple[Key, ...]:
    keys: tuple[Key, ...] = (
        Key(f"{path}.type", "string", f"EBS volume type of {what}", default="gp3", choices=("gp3", "io2", "io1", "gp2"),
            modes=AWS),
        Key(f"{path}.sizeGiB", "integer", "size in GiB, within the type's limits; grown in place, its file "
            "system with it", default=100, after_deploy=GROW_ONLY, modes=AWS,
            state_name="data_disk_size_gib" if with_count else "slog_disk_size_gib"),
        Key(f"{path}.iops", "integer", "provisioned IOPS (gp3, io1, io2), within the type's limits and per-GiB ratio",
            default_doc="3000 on gp3; required on io1/io2", modes=AWS),
        Key(f"{path}.throughput", "integer", "MiB/s (gp3 only, at most 0.25 per IOPS)", default_doc="125 on gp3",
            modes=AWS),
    )
    if with_count:
        keys += (Key(f"{path}.count", "integer", "disks per ReplicaServer, 1..16, the same on every one", default=2,
                     after_deploy=GROW_ONLY, modes=AWS, state_name="data_disk_count"),)
    return keys


KEYS: tuple[Key, ...] = (
    Key("clusterName", "string", "`%{cluster.name}`: letters, digits, `_`; the ZooKeeper root is "
        "`/pegasus/<clusterName>`", required=True, after_deploy=FIXED, state_name="cluster_name"),
    Key("package", "string", "path (absolute, or relative to the project) of the `pack_server` tarball; its name "
        "gives the version; it must hold `bin/pegasus_server` and `bin/config.ini`", required=True),
    Key("packageDelivery", "string", "how the package reaches the servers: `s3` (uploaded once to the stack's "
        "bucket, each server fetches it with its own role through an S3 gateway endpoint) or `upload` (copied over "
        "SSH to every server); see [How the server package reaches the servers]"
        "(deploying.md#how-the-server-package-reaches-the-servers)", choices=("s3", "upload"),
        default_doc="`s3`; `upload` (the only choice) with your own servers"),
    Key("toolsPackage", "string", "path of the `pack_tools` tarball (`pegasus-tools-<version>-<gitSHA>-<platform>-"
        "<buildType>.tar.gz`, holding `run.sh`, `bin/pegasus_shell/pegasus_shell`, `lib/` and "
        "`src/shell/config.ini`); installed on every MetaServer host and used by rolls and scale-in (see "
        "[Day-2 operations](operating.md#day-2-operations))",
        default_doc="none: rolls are health-gated only, scale-in needs a drained server"),
    Key("homeDir", "string", "`%{home.dir}`; data disks are mounted below it", default="/home/work",
        after_deploy=FIXED, state_name="home_dir"),
    Key("appDir", "string", "where the package, releases and each role's `%{app.dir}` live; never `/`, a system "
        "directory, or `homeDir` or a parent of it (destroy removes it)", default_doc="`<homeDir>/app/pegasus`",
        after_deploy=FIXED, state_name="app_dir"),
    Key("serverUser", "string", "the system user every Pegasus role runs as, owning its data, logs and config "
        "(never root or `ssh.user`); made as a system account without login on a server that lacks it, and removed "
        "at destroy only then; a change moves every server to the new user in one roll", default="pegasus"),
    Key("ssh", "object", "how `pulumi up` logs in to the servers"),
    Key("ssh.user", "string", "login user on the servers: root, or one with passwordless sudo",
        default_doc="per image: `admin` (Debian), `ubuntu` (Ubuntu); required with your own servers"),
    Key("ssh.privateKey", "string", "the private key's content (not its path)", required=True, secret=True),
    Key("ssh.publicKey", "string", "the matching `.pub` line, installed on every server AWS makes (with your own "
        "servers it must already be authorized, and is not needed)", default_doc="required on AWS"),
    Key("ssh.bastion", "object", "jump host for every SSH connection (remote commands, the rolling restart, the "
        "ZooKeeper tunnel). It must reach the servers: with private addresses, give `network.vpcId`/`subnetId` of the "
        "VPC it serves (a VPC this stack creates has no bastion in it)"),
    Key("ssh.bastion.host", "string", "the bastion's address", required=True),
    Key("ssh.bastion.user", "string", "login user on the bastion", default_doc="`ssh.user`"),
    Key("ssh.bastion.port", "integer", "SSH port of the bastion", default=22),
    Key("ssh.bastion.hostKey", "string", "the bastion's SSH host key, a `.pub` line (Ed25519 or ECDSA): every "
        "connection through it checks it", default_doc="the key your `known_hosts` holds for the bastion"),
    Key("image", "object", "the machine image of servers AWS makes", modes=AWS),
    Key("image.distribution", "string", "the distribution whose newest AMI is looked up", default="debian-12",
        choices=("debian-12", "ubuntu-22.04", "ubuntu-24.04"), after_deploy=NEW_SERVERS, modes=AWS),
    Key("image.architecture", "string", "CPU architecture of the AMI", default="amd64", choices=("amd64", "arm64"),
        after_deploy=NEW_SERVERS, modes=AWS),
    Key("image.ami", "string", "a fixed AMI id instead of the lookup", after_deploy=NEW_SERVERS, modes=AWS),
    Key("meta", "object", "the MetaServers"),
    Key("meta.count", "integer", "MetaServers: 2 or 3", default=3, choices=(2, 3), modes=AWS),
    Key("meta.instanceType", "string", "EC2 instance type (see \"Change an instance type\" in "
        "[operating.md](operating.md#day-2-operations))", default="m6i.large", after_deploy=BY_HAND, modes=AWS),
    Key("meta.configOverrides", "map", "`{section: {key: value}}` for the MetaServers' config.ini, after the shared "
        "`configOverrides`"),
    Key("replica", "object", "the ReplicaServers"),
    Key("replica.count", "integer", "ReplicaServers: 3 or more; lowering it removes the highest-numbered ones once "
        "drained (see \"Scale in\" in [operating.md](operating.md#day-2-operations))", default=3, modes=AWS),
    Key("replica.instanceType", "string", "a Nitro family (older Xen families such as r4 or i3 are refused: their "
        "volumes are not NVMe devices)", default="m6i.2xlarge", after_deploy=BY_HAND, modes=AWS),
    Key("replica.configOverrides", "map", "as `meta.configOverrides`, for the ReplicaServers"),
    Key("replica.dataDisks", "object", "the same data disks on every ReplicaServer", modes=AWS),
    *_disk("replica.dataDisks", "the data disks", with_count=True),
    Key("replica.slogDisk", "object", "a disk dedicated to the shared log (releases up to 2.5; from 2.4 on "
        "ReplicaServers write nothing to it)", default_doc="absent", after_deploy=FIXED, modes=AWS,
        state_name="slog_disk"),
    *_disk("replica.slogDisk", "the shared-log disk", with_count=False),
    Key("collector", "object", "the Collector"),
    Key("collector.enabled", "boolean", "run the Collector", default=True),
    Key("collector.colocate", "boolean", "on the first MetaServer's host (the guide's advice) or on its own host",
        default=True),
    Key("collector.instanceType", "string", "when on its own host", default="m6i.large", after_deploy=BY_HAND,
        modes=AWS),
    Key("collector.configOverrides", "map", "as `meta.configOverrides`, for the Collector"),
    Key("zookeeper", "object", "the ZooKeeper ensemble: provisioned, or an existing one"),
    Key("zookeeper.count", "integer", "ensemble size to provision: 3 or 5 (1 only with `allowSingleNode`)",
        default=3, choices=(1, 3, 5), after_deploy=FIXED, modes=AWS, state_name="zookeeper_count"),
    Key("zookeeper.instanceType", "string", "EC2 instance type of the ZooKeeper servers", default="t3.medium",
        after_deploy=BY_HAND, modes=AWS),
    Key("zookeeper.servers", "string", "`ip:port,...` of an existing ensemble: nothing is provisioned (IP addresses "
        "only)", after_deploy=SAME_ENSEMBLE, state_name="zookeeper_servers"),
    Key("zookeeper.allowSingleNode", "boolean", "allow an ensemble of one server (a single point of failure: for "
        "throwaway stacks)", default=False),
    Key("zookeeper.adoptExistingPath", "boolean", "take over `/pegasus/<clusterName>` even if another stack or "
        "cluster left state there", default=False),
    Key("zookeeper.access", "string", "how `pulumi up` reaches ZooKeeper to guard the path: `ssh` (a tunnel through "
        "a cluster host, and the bastion) or `direct`", default="ssh", choices=("ssh", "direct")),
    Key("network", "object", "the network AWS makes, or the one you bring", modes=AWS),
    Key("network.vpcId", "string", "an existing VPC (with `subnetId`)", default_doc="a new VPC", modes=AWS),
    Key("network.subnetId", "string", "an existing subnet of that VPC (with `vpcId`)", default_doc="a new subnet",
        modes=AWS),
    Key("network.availabilityZone", "string", "zone of the new subnet; read once: the subnets keep the zone they "
        "were made in", default_doc="the region's first", after_deploy=NEW_SERVERS, modes=AWS),
    Key("network.vpcCidr", "string", "range of the new VPC (private, /24 or larger; a /24 is split into two /25 "
        "subnets)", default="10.42.0.0/16", modes=AWS),
    Key("network.extraNics", "integer", "0 or 1: a second NIC on every Pegasus server; Pegasus binds to it",
        default=0, choices=(0, 1), modes=AWS),
    Key("network.primaryInterface", "string", "`[network] primary_interface` when you know the name; with an extra "
        "NIC and no name it is resolved on the host from the NIC's MAC",
        default_doc="empty (Pegasus picks the first private address, skipping loopback and Docker bridges)",
        modes=AWS),
    Key("network.adminCidr", "string", "the range allowed to SSH in (and to reach ZooKeeper with "
        "`zookeeper.access: direct`, which wants a private range); required unless `ssh.bastion` is set",
        modes=AWS),
    Key("network.allowWorldSsh", "boolean", "allow `adminCidr: 0.0.0.0/0` (refused otherwise)", default=False,
        modes=AWS),
    Key("network.clientCidrs", "list", "ranges your applications connect from: the MetaServers' 34601/tcp and the "
        "ReplicaServers' 34801/tcp accept them (see [Connecting applications](connecting-applications.md)); private "
        "ranges only, unless `allowPublicClients`", default_doc="none", modes=AWS),
    Key("network.clientSecurityGroups", "list", "security group ids (`sg-...`, in the cluster's VPC or a peered "
        "one) whose instances may connect as `clientCidrs` may; the stack's own `<cluster>-clients` group "
        "(output `clientSecurityGroupId`) always may", default_doc="none", modes=AWS),
    Key("network.allowPublicClients", "boolean", "allow `clientCidrs` beyond the private ranges, `0.0.0.0/0` "
        "included (refused otherwise: Pegasus's RPC is not encrypted)", default=False, modes=AWS),
    Key("network.publicAddresses", "boolean", "give servers public addresses (SSH then goes there, still only from "
        "`adminCidr`)", default=False, modes=AWS),
    Key("network.s3Endpoint", "string", "`create`: an S3 gateway endpoint on the servers' route table, for the "
        "package store; `existing`: the VPC you bring already routes S3 through one", default="create",
        choices=("create", "existing"), modes=AWS),
    Key("configOverrides", "map", "`{section: {key: value}}` applied to the release's config.ini for every role"),
    Key("retainData", "boolean", "`pulumi destroy` keeps data volumes, data directories and the ZooKeeper path "
        "(see [operating.md](operating.md#day-2-operations), \"Retain data\")", default=False),
    Key("hdfsServiceArgs", "string", "`%{hdfs_service_args}` (2.6+: the HDFS block service for cold backup). "
        "**Refused for now**: the JVM that `pegasus_server` starts would need a Hadoop client (`CLASSPATH`, "
        "`LIBHDFS_OPTS=-Xrs`) that this program does not install", default=""),
    Key("roll", "object", "how a rolling restart restarts the ReplicaServers"),
    Key("roll.maxParallel", "integer", "at most this many ReplicaServers restart at once, in groups that share no "
        "partition, planned from the cluster's partition map before each group; 1 restarts them one at a time (see "
        "\"Rolling restarts in groups\" in [operating.md](operating.md#rolling-restarts-in-groups))",
        default_doc="one ReplicaServer in ten (at least 1)"),
    Key("timeouts", "object", "how long each wait of `pulumi up` may take"),
    Key("timeouts.startSeconds", "integer", "a role's start", default=180),
    Key("timeouts.healthSeconds", "integer", "the health checks (cluster and per server)", default=600),
    Key("timeouts.zookeeperSeconds", "integer", "the ZooKeeper quorum", default=300),
    Key("timeouts.metaPauseSeconds", "integer", "the pause between two MetaServers of a roll", default=30),
    Key("servers", "object", "your own servers instead of AWS, per role (see [Your own servers]"
        "(deploying.md#your-own-servers))", default_doc="none (AWS)", modes=OWN),
    Key("servers.zookeeper", "list", "the ZooKeeper servers to provision (or none with `zookeeper.servers`); as "
        "many once deployed (a server replaced is rolled in)",
        modes=OWN),
    Key("servers.meta", "list", "the MetaServers: 2 or 3", modes=OWN),
    Key("servers.replica", "list", "the ReplicaServers: 3 or more, each with the same disks", modes=OWN),
    Key("servers.collector", "list", "the Collector's own host, with `collector.colocate: false`", modes=OWN),
    Key("servers.monitoring", "list", "the monitoring host (one server), with `monitoring.host: own`",
        default_doc="none: the first MetaServer's host", modes=OWN),
    *_servers("zookeeper"), *_servers("meta"), *_servers("replica", disks=True), *_servers("collector"),
    *_servers("monitoring"),
    Key("monitoring", "object", "Prometheus, Alertmanager, node_exporter on every host, and Grafana, deployed with "
        "the cluster (see [docs/monitoring.md](monitoring.md))"),
    Key("monitoring.enabled", "boolean", "deploy the monitoring; `false` removes it (the Debian packages stay)",
        default=True),
    Key("monitoring.host", "string", "where Prometheus and Alertmanager run: `own` (a host of their own: an instance "
        "on AWS, `servers.monitoring` with your own servers) or `meta` (the first MetaServer's host)",
        choices=("own", "meta"), default_doc="`own` on AWS and with `servers.monitoring`, else `meta`"),
    Key("monitoring.instanceType", "string", "EC2 instance type of the monitoring host (`host: own`)",
        default="t3.medium", modes=AWS),
    Key("monitoring.dataDiskGiB", "integer", "size of the monitoring host's encrypted gp3 volume for Prometheus's "
        "storage, 10..16384 (AWS grows a volume in place and cannot shrink one)", default=50, modes=AWS),
    Key("monitoring.retentionDays", "integer", "days of metrics Prometheus keeps, 1..3650", default=15),
    Key("monitoring.scrapeIntervalSeconds", "integer", "seconds between two scrapes (and rule evaluations), 1..300",
        default=15),
    Key("monitoring.diskFullPercent", "integer", "percent of a data disk in use above which DataDiskNearlyFull "
        "fires, 1..99", default=85),
    Key("monitoring.availabilityPercent", "number", "the Collector's availability (2.4/2.5) below which "
        "PegasusAvailabilityLow fires, between 0 and 100", default=99.0, default_doc="`99`"),
    Key("monitoring.downForSeconds", "integer", "how long a Pegasus server, a host or a ZooKeeper server stays "
        "down (or a ReplicaServer not ALIVE) before its alert fires, 0..3600", default=60),
    Key("monitoring.grafana", "object", "Grafana on the monitoring host, from Grafana's apt repository"),
    Key("monitoring.grafana.enabled", "boolean", "install Grafana (`false` where the host cannot reach "
        "https://apt.grafana.com)", default=True),
    Key("monitoring.grafana.adminPassword", "string", "the password of Grafana's `admin`, 8 characters or more",
        default_doc="one made on the monitoring host, kept root-only", secret=True),
    Key("monitoring.receivers", "object", "where Alertmanager sends alerts", default_doc="none: alerts are listed "
        "in Alertmanager only"),
    Key("monitoring.receivers.webhook", "object", "an HTTP endpoint Alertmanager posts alerts to"),
    Key("monitoring.receivers.webhook.url", "string", "its http(s) URL (set the key with `--secret` if it holds a "
        "token)", required=True),
    Key("monitoring.receivers.email", "object", "e-mail through an SMTP server (STARTTLS required)"),
    Key("monitoring.receivers.email.to", "string", "the address alerts go to", required=True),
    Key("monitoring.receivers.email.from", "string", "the sender's address", required=True),
    Key("monitoring.receivers.email.smarthost", "string", "the SMTP server, `host:port`", required=True),
    Key("monitoring.receivers.email.username", "string", "login on the SMTP server, with `password`"),
    Key("monitoring.receivers.email.password", "string", "its password", secret=True),
    Key("monitoring.receivers.sns", "object", "an SNS topic, published to with the monitoring instance's own role "
        "(`host: own`)", modes=AWS),
    Key("monitoring.receivers.sns.topicArn", "string", "the topic's ARN", required=True, modes=AWS),
)

BY_PATH = {key.path: key for key in KEYS}


def key(path: str) -> Key:
    return BY_PATH[path]


def _children() -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for k in KEYS:
        found[k.parent] = found.get(k.parent, ()) + (k.name,)
    return found


_CHILDREN = _children()


def children(parent: str) -> tuple[str, ...]:
    """Names of the keys an object holds ("" for the top level), in declaration order."""
    return _CHILDREN.get(parent, ())


def aws_only() -> dict[str, tuple[str, ...] | None]:
    """Keys that mean nothing with your own servers: whole sections (None), then keys within sections."""
    whole = {k.path: None for k in KEYS if k.modes == AWS and not k.parent}
    within: dict[str, tuple[str, ...] | None] = {}
    for k in KEYS:
        if k.modes == AWS and k.parent and "." not in k.parent and k.parent not in whole:
            within[k.parent] = (within.get(k.parent) or ()) + (k.name,)
    return {**whole, **within}


def state_names(after_deploy: str) -> dict[str, str]:
    """Fixed-settings input -> the key's path, for the keys kept by the fixed-settings check
    (the first declared, when a key of AWS and one of your own servers share an input)."""
    found: dict[str, str] = {}
    for k in KEYS:
        if k.after_deploy == after_deploy and k.state_name:
            found.setdefault(k.state_name, k.path)
    return found


# ---------------------------------------------------------------- the reference in docs/config.md

TABLE_START = "<!-- keys: generated from components/spec/keys.py by `make config-docs` -->"
TABLE_END = "<!-- end of keys -->"


def _default_cell(k: Key) -> str:
    if k.default_doc:
        return k.default_doc
    if k.required:
        return "required"
    if k.default is None or k.type in ("object", "map", "list"):
        return "none"
    if isinstance(k.default, bool):
        return f"`{str(k.default).lower()}`"
    if k.default == "":
        return "empty"
    return f"`{k.default}`"


def reference_table() -> str:
    rows = ["| key | meaning | default | once deployed |", "|---|---|---|---|"]
    for k in KEYS:
        if k.type == "object" and any(c.parent == k.path for c in KEYS):
            meaning = f"{k.doc}: {', '.join(f'`{c}`' for c in children(k.path))}"
        else:
            meaning = k.doc
        if k.choices:
            meaning += f" (one of {', '.join(f'`{c}`' for c in k.choices)})"
        if k.secret:
            meaning += "; **set with `--secret`** (plain text is refused)"
        where = {AWS: " *(AWS only)*", OWN: " *(your own servers only)*"}.get(k.modes, "")
        rows.append(f"| `{k.path}`{where} | {meaning} | {_default_cell(k)} | {k.after_deploy} |")
    return "\n".join([TABLE_START, *rows, TABLE_END])


def with_reference(page: str) -> str:
    """`page` with the table between its markers replaced by today's."""
    start, end = page.index(TABLE_START), page.index(TABLE_END) + len(TABLE_END)
    return page[:start] + reference_table() + page[end:]
