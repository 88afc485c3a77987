"""Where everything lives on a host: one place, so scripts, configs and cleanup agree.

All paths are derived from the validated `homeDir`, `appDir` and cluster name.
The layout (documented in the README, "Files on a host"):

    <appDir>/packages/<tarball>          uploaded server package
    <appDir>/releases/<release>/bin/     unpacked package, one directory per release
    <appDir>/current -> releases/<rel>   the newest installed release
    <appDir>/<role>/                     %{app.dir} of a role: config.ini, log/, state
    <appDir>/<role>/release -> ...       the release this role runs (switched at its restart)
    <appDir>/staged/<role>.config.ini    uploaded config, activated at (re)start
    <appDir>/staged/<role>.restart.sh    the script the rolling restart runs on the host
    <homeDir>/ssd<N>/                    mount point of data disk N (1-based)
    <homeDir>/ssd<N>/pegasus/<cluster>   data dir N of the ReplicaServer
    <homeDir>/slog/                      mount point of the shared-log disk
    <homeDir>/slog/pegasus/<cluster>     %{slog.dir} when a shared-log disk exists

On your own servers a disk may be a directory the operator mounted: it then
stands where `<homeDir>/ssd<N>` (or `<homeDir>/slog`) would be.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLE_PORTS = {"meta": 34601, "replica": 34801, "collector": 34101}
ZOOKEEPER_CLIENT_PORT = 2181
ZOOKEEPER_PEER_PORT = 2888
ZOOKEEPER_ELECTION_PORT = 3888

def restart_script_name(role: str) -> str:
    """The role's restart script, in the staged directory (the rolling restart runs it)."""
    return f"{role}.restart.sh"


# Marker written into directories this program created, so that cleanup never
# removes a directory it did not make.
CREATED_MARKER = ".created-by-pegasus-pulumi"

# ZooKeeper as this program installs it (Debian/Ubuntu `zookeeper` package).
ZOOKEEPER_CONF_DIR = "/etc/pegasus-zookeeper"
ZOOKEEPER_DATA_DIR = "/var/lib/pegasus-zookeeper"
ZOOKEEPER_LOG_DIR = "/var/log/pegasus-zookeeper"
ZOOKEEPER_UNIT = "pegasus-zookeeper.service"
SYSTEMD_DIR = "/etc/systemd/system"


def role_unit(role: str) -> str:
    """systemd unit name of a Pegasus role (one cluster per host)."""
    return f"pegasus-{role}.service"


@dataclass(frozen=True)
class HostLayout:
    home_dir: str
    app_dir: str
    cluster_name: str
    # Per data-disk position, a directory the operator mounted ("" or absent: a
    # device this program mounts under homeDir); the same for the shared log.
    mounted_dirs: tuple[str, ...] = ()
    mounted_slog: str = ""

    @property
    def packages_dir(self) -> str:
        return f"{self.app_dir}/packages"

    @property
    def releases_dir(self) -> str:
        return f"{self.app_dir}/releases"

    @property
    def current_link(self) -> str:
        return f"{self.app_dir}/current"

    @property
    def jvm_lib_link(self) -> str:
        """Where the host's libjvm.so lives (a link made at package install; Pegasus 2.4+ loads it)."""
        return f"{self.app_dir}/jvm-lib"

    @property
    def jvm_home_link(self) -> str:
        """The JAVA_HOME of that runtime (a link, like jvm_lib_link)."""
        return f"{self.app_dir}/jvm-home"

    def release_link(self, role: str) -> str:
        """The release a role runs: moved to `current` only when that role restarts."""
        return f"{self.role_dir(role)}/release"

    def bin_dir(self, role: str) -> str:
        return f"{self.release_link(role)}/bin"

    def package_path(self, file_name: str) -> str:
        return f"{self.packages_dir}/{file_name}"

    def role_dir(self, role: str) -> str:
        """%{app.dir} of a role: each role on a host gets its own."""
        return f"{self.app_dir}/{role}"

    def config_path(self, role: str) -> str:
        return f"{self.role_dir(role)}/config.ini"

    @property
    def tools_dir(self) -> str:
        """Unpacked admin tools packages (pack_tools), one directory per build."""
        return f"{self.app_dir}/tools"

    @property
    def staged_dir(self) -> str:
        return f"{self.app_dir}/staged"

    def staged_config_path(self, role: str) -> str:
        return f"{self.staged_dir}/{role}.config.ini"

    def staged_restart_path(self, role: str) -> str:
        return f"{self.staged_dir}/{restart_script_name(role)}"

    def log_dir(self, role: str) -> str:
        return f"{self.role_dir(role)}/log"

    def data_mount(self, index: int) -> str:
        """Mount point of data disk `index` (0-based in code, 1-based on disk)."""
        if index < len(self.mounted_dirs) and self.mounted_dirs[index]:
            return self.mounted_dirs[index]
        return f"{self.home_dir}/ssd{index + 1}"

    def data_dir(self, index: int) -> str:
        return f"{self.data_mount(index)}/pegasus/{self.cluster_name}"

    def data_dir_name(self, index: int) -> str:
        return f"ssd{index + 1}"

    @property
    def slog_mount(self) -> str:
        return self.mounted_slog or f"{self.home_dir}/slog"

    def slog_dir(self, has_slog_disk: bool) -> str:
        if has_slog_disk:
            return f"{self.slog_mount}/pegasus/{self.cluster_name}"
        return f"{self.data_dir(0)}/slog"

    def data_dirs_value(self, disk_count: int) -> str:
        """The `%{data.dirs}` value of a ReplicaServer: name:path,name:path."""
        return ",".join(
            f"{self.data_dir_name(i)}:{self.data_dir(i)}" for i in range(disk_count)
        )

    def role_data_dirs_value(self, role: str) -> str:
        """`%{data.dirs}` for roles without data disks (meta, collector)."""
        return f"default:{self.role_dir(role)}/reps"
