"""Everything one server receives, as text: config.ini, units and the scripts run on it.

Pure functions of the spec and a server's addresses; the Pulumi components
call them inside `Output.apply` once the addresses are known, and the
benchmark calls them directly. Scripts come back wrapped by `as_root`, ready to
be a remote.Command's create/update/delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from components.render import host_layout as hl
from components.render.config_ini import (NodeValues, apply_overrides, content_hash, declared_tables, read_sections,
                         render_config_ini)
from components.render.templates import ROOT_SHELL_ON_STDIN, as_root, as_root_on_stdin, render
from components.spec.server_package import release_config_template
from components.spec.model import ClusterSpec, CollectorSpec, RoleSpec
from components.spec.monitoring import DEFAULT_PROMETHEUS_PORT, METRICS_SECTION
from components.spec.topology import ROLE_ORDER, has_shared_log

REQUIRED_COMMANDS = ("systemctl", "journalctl", "tar", "sha256sum", "blkid", "mkfs.ext4",
                     "mountpoint", "findmnt", "curl", "python3")
DEVICE_WAIT_SECONDS = 300
GIB = 1024**3
NIC_WAIT_SECONDS = 120
EXTRA_NIC_SCRIPT = "/usr/local/sbin/pegasus-extra-nic"
EXTRA_NIC_UNIT = "pegasus-extra-nic.service"
JVM_ROOT = "/usr/lib/jvm"  # where Debian and Ubuntu install Java runtimes


def layout(spec: ClusterSpec) -> hl.HostLayout:
    own = spec.servers  # your own servers: a disk may be a directory the operator mounted
    return hl.HostLayout(home_dir=spec.home_dir, app_dir=spec.app_dir, cluster_name=spec.cluster_name,
                         mounted_dirs=own.mounted_dirs() if own else (), mounted_slog=own.mounted_slog() if own else "")


def address_list(ips: Sequence[str], port: int) -> str:
    return ",".join(f"{ip}:{port}" for ip in ips)


def meta_addresses(meta_ips: Sequence[str]) -> list[str]:
    """The MetaServers' "ip:port", as the host scripts ask them."""
    return [f"{ip}:{hl.ROLE_PORTS['meta']}" for ip in meta_ips]


# ------------------------------------------------------------ host preparation


def owner_text(spec: ClusterSpec) -> str:
    """What marks a host, its app dir and every role directory as this stack's cluster's."""
    return hl.owner_text(spec.owner or spec.stack, spec.cluster_name)


def prepare_host_script(spec: ClusterSpec) -> str:
    lay = layout(spec)
    return as_root(render("prepare_host.sh", home_dir=spec.home_dir, app_dir=spec.app_dir,
                          app_subdirs=[lay.packages_dir, lay.releases_dir, lay.staged_dir],
                          upload_dirs=[lay.packages_dir], upload_owner=spec.ssh.user, private_dirs=[lay.staged_dir],
                          marker=hl.CREATED_MARKER, required_commands=list(REQUIRED_COMMANDS),
                          owner_file=hl.OWNER_FILE, owner_text=owner_text(spec), cluster_name=spec.cluster_name,
                          legacy_units=[f"{hl.SYSTEMD_DIR}/{hl.legacy_role_unit(role)}" for role in ROLE_ORDER],
                          server_user=spec.server_user, created_user_file=hl.CREATED_USER_FILE))


def remove_app_dir_script(spec: ClusterSpec) -> str:
    return as_root(render("remove_app_dir.sh", app_dir=spec.app_dir, marker=hl.CREATED_MARKER,
                          retain_data=spec.retain_data, owner_file=hl.OWNER_FILE, owner_text=owner_text(spec),
                          server_user=spec.server_user, created_user_file=hl.CREATED_USER_FILE))


def disk_entries(spec: ClusterSpec, data_devices: Sequence[str], slog_device: str | None) -> list[dict]:
    """A disk is a device (by its stable path) or, on your own servers, a directory the
    operator mounted: used where it is, never formatted, unmounted or removed. A device
    made on AWS carries its volume's size: the disk script grows its file system to it."""
    lay = layout(spec)
    data_bytes = spec.replica.data_disks.size_gib * GIB
    disks: list[dict[str, Any]] = [
        {"device": dev, "mount_point": lay.data_mount(i), "label": f"pg-ssd{i + 1}", "size_bytes": data_bytes}
        for i, dev in enumerate(data_devices)]
    if slog_device:
        slog = spec.replica.slog_disk
        disks.append({"device": slog_device, "mount_point": lay.slog_mount, "label": "pg-slog",
                      "size_bytes": slog.size_gib * GIB if slog else 0})
    return [d if d["device"].startswith("/dev/") else {"directory": d["device"]} for d in disks]


def _split_disks(disks: list[dict]) -> dict:
    return {"disks": [d for d in disks if "device" in d],
            "directories": [d["directory"] for d in disks if "directory" in d]}


def prepare_disks_script(disks: list[dict]) -> str:
    return as_root(render("prepare_disks.sh", **_split_disks(disks), wait_seconds=DEVICE_WAIT_SECONDS,
                          fstab="/etc/fstab", marker=hl.CREATED_MARKER))


def cleanup_disks_script(disks: list[dict]) -> str:
    return as_root(render("cleanup_disks.sh", **_split_disks(disks), fstab="/etc/fstab", marker=hl.CREATED_MARKER))


def resolve_nic_script(mac: str, cluster_name: str, expected: str = "") -> str:
    """Sets the extra NIC up now and at every boot, before the cluster's roles start; prints
    its interface name, which must be `expected` when one is given (network.primaryInterface)."""
    before = [unit for role in ROLE_ORDER for unit in (hl.role_unit(role, cluster_name), hl.legacy_role_unit(role))]
    return as_root(render(
        "install_extra_nic.sh",
        script_text=render("resolve_nic.sh", mac=mac.lower(), wait_seconds=NIC_WAIT_SECONDS, expected=expected),
        script_path=EXTRA_NIC_SCRIPT,
        unit_text=render("extra_nic.service", mac=mac.lower(), script_path=EXTRA_NIC_SCRIPT, before=before),
        unit_path=f"{hl.SYSTEMD_DIR}/{EXTRA_NIC_UNIT}", unit_name=EXTRA_NIC_UNIT))


def resolve_address_script(nic: str) -> str:
    """Your own servers: prints "<interface> <IPv4>" of the NIC Pegasus binds, changing nothing."""
    return as_root(render("resolve_address.sh", nic=nic))


# ------------------------------------------------------------ package


def install_package_script(spec: ClusterSpec) -> str:
    """Installs a package uploaded over SSH (packageDelivery: upload)."""
    return as_root(_install_package(spec))


def _install_package(spec: ClusterSpec) -> str:
    lay, pkg = layout(spec), spec.package
    return render("install_package.sh", tarball=lay.package_path(pkg.file_name), sha256=pkg.sha256,
                  release=installed_release(spec), releases_dir=lay.releases_dir,
                  current_link=lay.current_link, needs_jvm=needs_jvm(spec), jvm_root=JVM_ROOT,
                  jvm_lib_link=lay.jvm_lib_link, jvm_home_link=lay.jvm_home_link)


# Where every EC2 instance reaches its metadata service (IMDS), from inside.
METADATA_URL = "http://169.254.169.254"
FETCH_ATTEMPTS = 6
FETCH_RETRY_SECONDS = 10


def object_url(bucket: str, region: str, key: str) -> str:
    """An S3 object's virtual-hosted-style HTTPS URL (S3 User Guide, "Virtual hosting of
    buckets"); China regions live under amazonaws.com.cn."""
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{bucket}.s3.{region}.{domain}/{key}"


def fetch_package_script(spec: ClusterSpec, host: str, bucket: str, region: str, key: str) -> str:
    """The unwrapped script that fetches the package from the stack's store (package_store.py)."""
    lay = layout(spec)
    return render("fetch_package.sh", host=host, tarball=lay.package_path(spec.package.file_name),
                  sha256=spec.package.sha256, url=object_url(bucket, region, key), object=f"s3://{bucket}/{key}",
                  region=region, metadata_url=METADATA_URL, attempts=FETCH_ATTEMPTS,
                  retry_seconds=FETCH_RETRY_SECONDS, permission=f"s3:GetObject on arn:aws:s3:::{bucket}/{key}")


def fetch_and_install_package_script(spec: ClusterSpec, host: str, bucket: str, region: str, key: str) -> str:
    """Fetch, then install as install_package_script does, in one shell (the fetch exits only on error)."""
    return as_root(fetch_package_script(spec, host, bucket, region, key) + _install_package(spec))


def needs_jvm(spec: ClusterSpec) -> bool:
    """pegasus_server links libjvm.so (for HDFS) from 2.4 on; pack_server does not ship it."""
    return spec.package.name.version_tuple >= (2, 4, 0)


def remove_package_script(spec: ClusterSpec) -> str:
    lay, pkg = layout(spec), spec.package
    return as_root(render("remove_package.sh", tarball=lay.package_path(pkg.file_name), sha256=pkg.sha256,
                          release=installed_release(spec), releases_dir=lay.releases_dir,
                          current_link=lay.current_link, role_links=[lay.release_link(role) for role in ROLE_ORDER]))


def tools_release_dir(spec: ClusterSpec) -> str:
    """Where the admin tools of this build live on a MetaServer host."""
    assert spec.tools is not None
    return f"{layout(spec).tools_dir}/{spec.tools.release}-{spec.tools.sha256[:12]}"


def install_tools_script(spec: ClusterSpec) -> str:
    lay, tools = layout(spec), spec.tools
    assert tools is not None
    return as_root(render("install_tools.sh", tarball=lay.package_path(tools.file_name), sha256=tools.sha256,
                          release=tools_release_dir(spec).rpartition("/")[2], tools_dir=lay.tools_dir))


def remove_tools_script(spec: ClusterSpec) -> str:
    lay, tools = layout(spec), spec.tools
    assert tools is not None
    return as_root(render("remove_tools.sh", tarball=lay.package_path(tools.file_name), sha256=tools.sha256,
                          release=tools_release_dir(spec).rpartition("/")[2], tools_dir=lay.tools_dir))


def installed_release(spec: ClusterSpec) -> str:
    """The release's directory name: the build, not only the commit (pack_server
    names two builds of one commit alike)."""
    return f"{spec.package.release}-{spec.package.sha256[:12]}"


# ------------------------------------------------------------ Pegasus roles


@dataclass(frozen=True)
class RoleFiles:
    """What one role on one server runs with, and the scripts that drive it."""

    config: str
    config_hash: str
    unit: str
    stage: str  # stages config.ini and restart_script on the host: STAGE_COMMAND's standard input
    start: str
    restart_script: str  # staged on the host; the rolling restart runs it with a phase as argument
    stop: str

    restart_reasons: tuple[str, ...]  # what the server runs with, one fact a line

    @property
    def restart_record(self) -> str:
        """What the rolling restart compares: it changes exactly when a restart is
        due, and a preview's diff of it says in plain words what changed."""
        lines = [*self.restart_reasons, f"unit {content_hash(self.unit)}", f"config.ini {self.config_hash}"]
        return "".join(f"{line}\n" for line in lines)


def role_dirs(spec: ClusterSpec, role: str) -> list[str]:
    """Directories a role owns on its server: made at start, removed at destroy."""
    lay = layout(spec)
    dirs = [lay.role_dir(role)]
    if role == "replica":
        dirs += [lay.data_dir(i) for i in range(spec.replica.data_disks.count)]
        if spec.replica.slog_disk is not None and has_shared_log(release_config_template(spec.package)):
            dirs.append(lay.slog_dir(True))
    return dirs


def restart_reasons(spec: ClusterSpec, role: str, interface: str, meta_ips: Sequence[str],
                    zk_servers: str) -> tuple[str, ...]:
    """What a role's server runs with, as a reviewer reads it (secret values hidden)."""
    lines = [f"package {spec.package.release} (sha256 {spec.package.sha256[:12]})", f"runs as {spec.server_user}",
             f"MetaServers {address_list(meta_ips, hl.ROLE_PORTS['meta'])}", f"ZooKeeper {zk_servers}",
             f"interface {interface or '(Pegasus picks the first private address)'}"]
    for layer in _override_layers(spec, role):
        for section, entries in sorted(layer.items()):
            for key, value in sorted(entries.items()):
                lines.append(f"[{section}] {key} = {'[secret]' if spec.config_has_secrets else value}")
    return tuple(lines)


def role_mounts(spec: ClusterSpec, role: str) -> list[str]:
    """Disks a role must not run without: a ReplicaServer started while a data
    disk is missing would create its data directory on the root disk."""
    if role != "replica":
        return []
    lay = layout(spec)
    mounts = [lay.data_mount(i) for i in range(spec.replica.data_disks.count)]
    if spec.replica.slog_disk is not None:
        mounts.append(lay.slog_mount)
    return mounts


def node_values(spec: ClusterSpec, role: str, interface: str, meta_ips: Sequence[str],
                zk_servers: str) -> NodeValues:
    lay = layout(spec)
    if role == "replica":
        data_dirs = lay.data_dirs_value(spec.replica.data_disks.count)
        slog_dir = lay.slog_dir(spec.replica.slog_disk is not None)
    else:
        data_dirs = lay.role_data_dirs_value(role)
        slog_dir = f"{lay.role_dir(role)}/slog"
    return NodeValues(
        cluster_name=spec.cluster_name, home_dir=spec.home_dir, app_dir=lay.role_dir(role),
        data_dirs=data_dirs, slog_dir=slog_dir,
        meta_server_list=address_list(meta_ips, hl.ROLE_PORTS["meta"]),
        zk_server_list=zk_servers, hdfs_service_args=spec.hdfs_service_args,
        primary_interface=interface,
    )


def role_config(spec: ClusterSpec, role: str, interface: str, meta_ips: Sequence[str], zk_servers: str) -> str:
    return render_config_ini(release_config_template(spec.package),
                             node_values(spec, role, interface, meta_ips, zk_servers), _override_layers(spec, role))


def _override_layers(spec: ClusterSpec, role: str) -> list[Mapping[str, Mapping[str, str]]]:
    """What a role's config.ini gets on top of the release's, in the order applied."""
    return [spec.config_overrides, _role_overrides(spec, role), _metrics_override(spec, role)]


def _user_config_template(spec: ClusterSpec, role: str) -> str:
    """The release's config.ini with the user's overrides for `role` (variables not filled)."""
    return apply_overrides(release_config_template(spec.package), [spec.config_overrides, _role_overrides(spec, role)])


def _role_settings(spec: ClusterSpec, role: str, section: str) -> dict[str, str]:
    """One section of a role's config as the release and the overrides make it."""
    return read_sections(_user_config_template(spec, role)).get(section, {})


def _monitored_by_perf_counters(spec: ClusterSpec) -> bool:
    """The cluster's monitoring reads 2.4/2.5 through each process's own exporter,
    which the program turns on; 2.6 serves /metrics on its RPC port anyway."""
    return spec.monitoring.enabled and spec.package.name.version_tuple < (2, 6, 0)


def _exports_prometheus(spec: ClusterSpec, role: str) -> bool:
    return (_monitored_by_perf_counters(spec)
            or _role_settings(spec, role, METRICS_SECTION).get("perf_counter_sink") == "prometheus")


def _metrics_override(spec: ClusterSpec, role: str) -> dict[str, dict[str, str]]:
    """With `perf_counter_sink = prometheus` every role binds `[pegasus.server]
    prometheus_port` on 0.0.0.0 (pegasus_counter_reporter.cpp, v2.4.0/v2.5.0):
    the monitoring turns it on (2.4/2.5), and a Collector on a MetaServer's host
    takes the next port, unless set."""
    entries: dict[str, str] = {}
    if _monitored_by_perf_counters(spec) and \
            _role_settings(spec, role, METRICS_SECTION).get("perf_counter_sink") != "prometheus":
        entries["perf_counter_sink"] = "prometheus"
    if role == "collector" and spec.collector.colocate and "prometheus_port" not in \
            spec.collector.config_overrides.get(METRICS_SECTION, {}) and _exports_prometheus(spec, "meta"):
        meta = _role_settings(spec, "meta", METRICS_SECTION)
        entries["prometheus_port"] = str(_port(meta.get("prometheus_port")) + 1)
    return {METRICS_SECTION: entries} if entries else {}


def metrics_port(spec: ClusterSpec, role: str) -> int | None:
    """The Prometheus port a role binds, None when it exports no Prometheus metrics."""
    settings = {**_role_settings(spec, role, METRICS_SECTION),
                **_metrics_override(spec, role).get(METRICS_SECTION, {})}
    if settings.get("perf_counter_sink") != "prometheus":
        return None
    return _port(settings.get("prometheus_port"))


def _port(value: str | None) -> int:
    return int(value) if value and value.isdigit() else DEFAULT_PROMETHEUS_PORT


def _role_overrides(spec: ClusterSpec, role: str) -> Mapping[str, Mapping[str, str]]:
    roles: dict[str, RoleSpec | CollectorSpec] = {"meta": spec.meta, "replica": spec.replica,
                                                  "collector": spec.collector}
    return roles[role].config_overrides


def role_files(spec: ClusterSpec, role: str, address: str, interface: str, meta_ips: Sequence[str],
               zk_servers: str) -> RoleFiles:
    lay = layout(spec)
    config = role_config(spec, role, interface, meta_ips, zk_servers)
    jvm = dict(jvm_lib_dir=lay.jvm_lib_link, java_home=lay.jvm_home_link) if needs_jvm(spec) else {}
    dirs = role_dirs(spec, role)
    unit = render("pegasus.service", role=role, cluster_name=spec.cluster_name, bin_dir=lay.bin_dir(role),
                  role_dir=lay.role_dir(role), config_path=lay.config_path(role), mounts=role_mounts(spec, role),
                  user=spec.server_user, write_dirs=dirs, **jvm)
    owner = role_owner(spec, role)
    common = dict(
        role=role, unit_text=unit, role_dir=lay.role_dir(role), **owner,
        dirs=dirs + [lay.log_dir(role)], staged_config=lay.staged_config_path(role),
        config_path=lay.config_path(role), release_link=lay.release_link(role), current_link=lay.current_link,
        address=address, port=hl.ROLE_PORTS[role],
        meta_addresses=meta_addresses(meta_ips),
        wait_seconds=spec.timeouts.start_seconds, log_dir=lay.log_dir(role),
        needs_reverse_name=spec.package.name.version_tuple >= (2, 6, 0),
    )
    leader_last = role == "meta" and len(meta_ips) > 1
    pause = spec.timeouts.meta_pause_seconds if role == "meta" else 0
    restart_script = render("restart_role.sh", defer_if_leader=leader_last, pause_seconds=pause,
                            settle_seconds=settle_seconds(spec, role, len(meta_ips)),
                            check_seconds=spec.timeouts.health_seconds, **common)
    return RoleFiles(
        restart_reasons=restart_reasons(spec, role, interface, meta_ips, zk_servers),
        config=config,
        config_hash=content_hash(config),
        unit=unit,
        stage=as_root_on_stdin(render("stage_config.sh", staged_config=lay.staged_config_path(role), config=config,
                                      restart_script_path=lay.staged_restart_path(role),
                                      restart_script=restart_script)),
        start=as_root(render("start_role.sh", **common)),
        restart_script=restart_script,
        stop=as_root(render("stop_role.sh", role=role, remove_dirs=dirs, retain_data=spec.retain_data, **owner)),
    )


STAGED_STAMP = "stage-config: staged "


def staged_stamp(stage_output: str) -> str:
    """The stamp line of a config command's output (its last one), or all of it."""
    lines = [line for line in (stage_output or "").splitlines() if line.startswith(STAGED_STAMP)]
    return lines[-1][len(STAGED_STAMP):] if lines else stage_output or ""


# The command line of every `-config` command: the script comes on its standard input.
STAGE_COMMAND = ROOT_SHELL_ON_STDIN


def role_owner(spec: ClusterSpec, role: str) -> dict:
    """The role's unit (named per cluster), the one stacks deployed before named it, the
    user its server runs as and the mark its directories carry (_role_owner.sh.j2)."""
    return dict(unit_name=hl.role_unit(role, spec.cluster_name),
                unit_path=f"{hl.SYSTEMD_DIR}/{hl.role_unit(role, spec.cluster_name)}",
                legacy_unit_name=hl.legacy_role_unit(role),
                legacy_unit_path=f"{hl.SYSTEMD_DIR}/{hl.legacy_role_unit(role)}",
                server_user=spec.server_user, marker=hl.CREATED_MARKER, owner_text=owner_text(spec))


def replica_units(spec: ClusterSpec) -> list[str]:
    """The units a ReplicaServer of this cluster may run under: what a removal stops."""
    return [hl.role_unit("replica", spec.cluster_name), hl.legacy_role_unit("replica")]


def settle_seconds(spec: ClusterSpec, role: str, meta_count: int) -> int:
    """How long a restarted ReplicaServer may take to reach the leading MetaServer: it
    beacons a random MetaServer first and follows a non-leader's answer to the leader
    at its next beacon (failure_detector_multimaster.cpp:62 and :116, v2.5.0). Until
    then the leader still lists it ALIVE with its partitions healthy, so the roll's
    health gate would pass before the restart is even seen."""
    if role != "replica":
        return 0
    beacon = _role_settings(spec, "replica", "replication").get("fd_beacon_interval_seconds") or "3"
    return (int(beacon) if beacon.isdigit() else 3) * max(1, meta_count)


def health_check_script(spec: ClusterSpec, meta_ips: Sequence[str], server_ips: Mapping[str, str]) -> str:
    """`server_ips`: "<host>/<role>" -> cluster address, for every Pegasus server of the stack.
    The script itself: cluster_health.py runs it as root, in passes."""
    return render(
        "health_check.sh",
        meta_addresses=meta_addresses(meta_ips),
        servers=[f"{key}={ip}:{hl.ROLE_PORTS[key.rpartition('/')[2]]}" for key, ip in server_ips.items()],
        tables=declared_tables(_user_config_template(spec, "meta")),
        wait_seconds=spec.timeouts.health_seconds,
        log_dir=layout(spec).log_dir("meta"),
    )


def partition_map_script(meta_ips: Sequence[str]) -> str:
    """What a MetaServer host runs to print the partition map a grouped roll plans from."""
    return render("partition_map.sh", meta_addresses=meta_addresses(meta_ips))


def _setting(spec: ClusterSpec, role: str, section: str, key: str, default: int) -> int:
    value = _role_settings(spec, role, section).get(key, "")
    return int(value) if value.lstrip("-").isdigit() else default


def roll_limits(spec: ClusterSpec, max_parallel: int) -> dict[str, int]:
    """What bounds a group of ReplicaServers restarting at once (operations/roll_plan.py
    RollLimits), from the servers' own config: a partition keeps at least
    mutation_2pc_min_replica_count replicas (never fewer than 2; a value of 0 or less
    means half the table's replicas plus one, 2 for 3: replication_common.cpp), and the
    MetaServer's freeze thresholds (meta_service.cpp check_freeze: 65% in the code)."""
    return {
        "max_parallel": max_parallel,
        "min_replicas": max(2, _setting(spec, "replica", "replication", "mutation_2pc_min_replica_count", 2)),
        "min_live": _setting(spec, "meta", "meta_server", "min_live_node_count_for_unfreeze", 3),
        "live_percentage": _setting(spec, "meta", "meta_server", "node_live_percentage_threshold_for_update", 65),
    }


def replica_removal_guard(spec: ClusterSpec, meta_ips: Sequence[str], replica_ips: dict[str, str]) -> str:
    """The scale-in guard, unwrapped (the rolling restart runs it with the servers it drops as
    arguments). `replica_ips`: host name -> cluster address of every ReplicaServer the stack keeps."""
    lay = layout(spec)
    min_alive = _role_settings(spec, "meta", "meta_server").get("min_live_node_count_for_unfreeze") or "3"
    return render(
        "replica_removal_guard.sh",
        meta_addresses=meta_addresses(meta_ips),
        members=[f"{name}={ip}:{hl.ROLE_PORTS['replica']}" for name, ip in replica_ips.items()],
        record=f"{lay.staged_dir}/replica-servers", min_alive=min_alive if min_alive.isdigit() else "3")


def replica_removal_guard_script(spec: ClusterSpec, meta_ips: Sequence[str], replica_ips: dict[str, str]) -> str:
    """The guard as `<cluster>-replica-removal` runs it: the servers dropped since its last run."""
    return as_root(replica_removal_guard(spec, meta_ips, replica_ips))


# ------------------------------------------------------------ ZooKeeper


def zookeeper_servers(ips: Sequence[str]) -> str:
    return address_list(ips, hl.ZOOKEEPER_CLIENT_PORT)


@dataclass(frozen=True)
class ZooKeeperFiles:
    """What one ZooKeeper server of the ensemble runs with, and how it gets it."""

    # installs ZooKeeper, stages restart_script, starts a server that does not run: the standard
    # input of STAGE_COMMAND, as every staged script (`ps` shows none of it)
    install: str
    restart_script: str  # carries zoo.cfg, myid and unit; the ZooKeeper roll runs it by phase
    record: str  # what the ZooKeeper roll compares, one fact a line (a preview's diff shows it)


def zookeeper_files(spec: ClusterSpec, ips: Sequence[str], my_index: int) -> ZooKeeperFiles:
    zoo_cfg = render("zoo.cfg", servers=[{"id": i + 1, "ip": ip} for i, ip in enumerate(ips)],
                     client_port=hl.ZOOKEEPER_CLIENT_PORT, client_address=ips[my_index],
                     peer_port=hl.ZOOKEEPER_PEER_PORT,
                     election_port=hl.ZOOKEEPER_ELECTION_PORT, data_dir=hl.ZOOKEEPER_DATA_DIR)
    unit = render("zookeeper.service", conf_dir=hl.ZOOKEEPER_CONF_DIR, log_dir=hl.ZOOKEEPER_LOG_DIR,
                  data_dir=hl.ZOOKEEPER_DATA_DIR, user="zookeeper")
    dirs = dict(conf_dir=hl.ZOOKEEPER_CONF_DIR, data_dir=hl.ZOOKEEPER_DATA_DIR, log_dir=hl.ZOOKEEPER_LOG_DIR)
    restart_script = render(
        "zookeeper_restart.sh", zoo_cfg=zoo_cfg, myid=my_index + 1, unit_text=unit, **dirs,
        unit_path=f"{hl.SYSTEMD_DIR}/{hl.ZOOKEEPER_UNIT}", user="zookeeper", servers=list(ips), my_ip=ips[my_index],
        client_port=hl.ZOOKEEPER_CLIENT_PORT, wait_seconds=spec.timeouts.zookeeper_seconds)
    install = as_root_on_stdin(render(
        "install_zookeeper.sh", restart_script=restart_script,
        restart_script_path=layout(spec).staged_restart_path(hl.ZOOKEEPER_ROLE), user="zookeeper"))
    record = "".join(f"{line}\n" for line in (
        f"ZooKeeper servers {zookeeper_servers(ips)}", f"myid {my_index + 1}",
        f"zoo.cfg {content_hash(zoo_cfg)}", f"unit {content_hash(unit)}"))
    return ZooKeeperFiles(install=install, restart_script=restart_script, record=record)


def zookeeper_ready_script(ips: Sequence[str], wait_seconds: int) -> str:
    return as_root(render("zookeeper_ready.sh", servers=list(ips), client_port=hl.ZOOKEEPER_CLIENT_PORT,
                          wait_seconds=wait_seconds, log_dir=hl.ZOOKEEPER_LOG_DIR, unit_name=hl.ZOOKEEPER_UNIT))


def remove_zookeeper_script() -> str:
    return as_root(render("remove_zookeeper.sh", unit_name=hl.ZOOKEEPER_UNIT,
                          unit_path=f"{hl.SYSTEMD_DIR}/{hl.ZOOKEEPER_UNIT}", conf_dir=hl.ZOOKEEPER_CONF_DIR,
                          data_dir=hl.ZOOKEEPER_DATA_DIR, log_dir=hl.ZOOKEEPER_LOG_DIR))
