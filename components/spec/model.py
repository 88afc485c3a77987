"""The validated cluster spec: immutable dataclasses, built only by `build_spec` (validation.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from components.spec.monitoring import DISABLED, MonitoringSpec
from components.spec.own_servers import OwnServers
from components.spec.server_package import PackageInfo
from components.spec.tools_package import ToolsPackage

DISTRIBUTIONS = {
    # name: (default SSH user, AMI owner, AMI name pattern with {arch})
    "debian-12": ("admin", "136693071363", "debian-12-{arch}-*"),
    "ubuntu-22.04": ("ubuntu", "099720109477", "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-{arch}-server-*"),
    "ubuntu-24.04": ("ubuntu", "099720109477", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-*"),
}


@dataclass(frozen=True)
class Bastion:
    host: str
    user: str
    port: int
    host_key: str | None = None  # `<type> <base64>`; None: the operator's known_hosts holds it


@dataclass(frozen=True)
class SshSpec:
    user: str
    private_key: str = field(repr=False)
    public_key: str
    bastion: Bastion | None


@dataclass(frozen=True)
class ImageSpec:
    distribution: str
    architecture: str
    ami: str | None

    @property
    def ami_owner(self) -> str:
        return DISTRIBUTIONS[self.distribution][1]

    @property
    def ami_name_pattern(self) -> str:
        return DISTRIBUTIONS[self.distribution][2].format(arch=self.architecture)


@dataclass(frozen=True)
class DiskSpec:
    count: int
    type: str
    size_gib: int
    iops: int | None
    throughput: int | None


@dataclass(frozen=True)
class RoleSpec:
    count: int
    instance_type: str
    config_overrides: Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class ReplicaSpec(RoleSpec):
    data_disks: DiskSpec
    slog_disk: DiskSpec | None


@dataclass(frozen=True)
class CollectorSpec:
    enabled: bool
    colocate: bool
    instance_type: str
    config_overrides: Mapping[str, Mapping[str, str]]

    @property
    def own_host(self) -> bool:
        return self.enabled and not self.colocate


@dataclass(frozen=True)
class ZooKeeperSpec:
    count: int  # 0 when an external ensemble is used
    instance_type: str
    external_servers: tuple[str, ...]  # "ip:port" of an existing ensemble
    adopt_existing_path: bool
    access: str  # how the path guard reaches ZooKeeper: "ssh" tunnel or "direct"

    @property
    def provisioned(self) -> bool:
        return not self.external_servers


@dataclass(frozen=True)
class NetworkSpec:
    vpc_id: str | None
    subnet_id: str | None
    availability_zone: str | None
    vpc_cidr: str
    extra_nics: int
    primary_interface: str
    admin_cidr: str | None
    public_addresses: bool
    # The S3 gateway endpoint the package store needs: "create" it on the servers'
    # route table, or use the one an existing VPC already has ("existing").
    s3_endpoint: str = "create"
    # Who may reach the MetaServers' and ReplicaServers' client ports, beside the
    # stack's own <cluster>-clients group.
    client_cidrs: tuple[str, ...] = ()
    client_security_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Timeouts:
    start_seconds: int
    health_seconds: int
    zookeeper_seconds: int
    meta_pause_seconds: int = 30  # between two MetaServers of a roll


# roll.maxParallel's default: at most one ReplicaServer in ten restarts at once.
DEFAULT_ROLL_SHARE = 10


def default_max_parallel(replicas: int) -> int:
    """While a group is down its primaries are served by the other ReplicaServers (n/(n-k)
    of their load: at most 11% more at one in ten), and once back its servers learn what
    they missed from those primaries: one in ten bounds both. At least one."""
    return max(1, replicas // DEFAULT_ROLL_SHARE)


@dataclass(frozen=True)
class RollSpec:
    max_parallel: int = 1  # roll.maxParallel: ReplicaServers restarting at once, at most


@dataclass(frozen=True)
class ClusterSpec:
    stack: str
    cluster_name: str
    package: PackageInfo
    home_dir: str
    app_dir: str
    ssh: SshSpec
    image: ImageSpec
    meta: RoleSpec
    replica: ReplicaSpec
    collector: CollectorSpec
    zookeeper: ZooKeeperSpec
    network: NetworkSpec
    config_overrides: Mapping[str, Mapping[str, str]]
    hdfs_service_args: str
    retain_data: bool
    timeouts: Timeouts
    # Some override was set with --secret: every rendered config.ini stays secret.
    config_has_secrets: bool = False
    # Your own servers (`servers`): listed instead of made on AWS.
    servers: OwnServers | None = None
    package_delivery: str = "s3"  # a key of PACKAGE_DELIVERIES

    @property
    def package_from_store(self) -> bool:
        return self.package_delivery == "s3"
    # Pegasus's admin tools (pack_tools): rolls move primaries first, scale-in drains.
    tools: ToolsPackage | None = None
    # The cluster's monitoring (spec/monitoring.py).
    monitoring: MonitoringSpec = DISABLED
    roll: RollSpec = RollSpec()
    # The system user every Pegasus role runs as (`serverUser`; made when the host lacks it).
    server_user: str = "pegasus"
    # '<organization>/<project>/<stack>' that owns the cluster's hosts and data
    # (set by the cluster component from the running program; marks every host).
    owner: str = ""

    @property
    def cluster_root(self) -> str:
        return f"/pegasus/{self.cluster_name}"


def listed_disks(count: int) -> DiskSpec:
    """The disks of your own servers: listed, so no type or size to provision."""
    return DiskSpec(count=count, type="listed", size_gib=0, iops=None, throughput=None)
