"""Realistic render contexts for every host template, built from HostLayout.

Shared by the template tests: one context per template, shaped as the
Pulumi components pass them (three MetaServers, a ReplicaServer with two
data disks and a shared-log disk, a three-server ZooKeeper ensemble).
"""

from __future__ import annotations

from components.render import templates

from components.render import host_layout
from components.render.host_layout import HostLayout

LAYOUT = HostLayout(home_dir="/home/pegasus", app_dir="/home/pegasus/app", cluster_name="prod-kv")
RELEASE = "pegasus-server-2.5.0-8f3c2ab-glibc2.17-release"
META_IPS = ["10.0.1.11", "10.0.1.12", "10.0.1.13"]
META_ADDRESSES = [f"{ip}:{host_layout.ROLE_PORTS['meta']}" for ip in META_IPS]
REPLICA_IP = "10.0.1.21"
ZK_IPS = ["10.0.1.31", "10.0.1.32", "10.0.1.33"]
DISKS = [
    {
        "device": "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc1234567890def",
        "mount_point": LAYOUT.data_mount(0),
        "label": "pegasus-ssd1",
    },
    {
        "device": "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc1234567890aaa",
        "mount_point": LAYOUT.data_mount(1),
        "label": "pegasus-ssd2",
    },
    {
        "device": "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc1234567890bbb",
        "mount_point": LAYOUT.slog_mount,
        "label": "pegasus-slog",
    },
]


def unit_context(role: str) -> dict:
    return {
        "role": role,
        "cluster_name": LAYOUT.cluster_name,
        "bin_dir": LAYOUT.bin_dir(role),
        "role_dir": LAYOUT.role_dir(role),
        "config_path": LAYOUT.config_path(role),
        "mounts": [LAYOUT.data_mount(0), LAYOUT.data_mount(1)] if role == "replica" else [],
    }


def role_context(role: str) -> dict:
    """Context of start_role (restart_role adds defer_if_leader, pause_seconds and check_seconds)."""
    address = REPLICA_IP if role == "replica" else META_IPS[0]
    dirs = [LAYOUT.role_dir(role), LAYOUT.log_dir(role)]
    if role == "replica":
        dirs += [LAYOUT.data_dir(0), LAYOUT.data_dir(1), LAYOUT.slog_dir(True)]
    unit_name = host_layout.role_unit(role)
    return {
        "role": role,
        "unit_name": unit_name,
        "unit_text": templates.render("pegasus.service", **unit_context(role)),
        "unit_path": f"{host_layout.SYSTEMD_DIR}/{unit_name}",
        "role_dir": LAYOUT.role_dir(role),
        "dirs": dirs,
        "staged_config": LAYOUT.staged_config_path(role),
        "config_path": LAYOUT.config_path(role),
        "release_link": LAYOUT.release_link(role),
        "current_link": LAYOUT.current_link,
        "address": address,
        "port": host_layout.ROLE_PORTS[role],
        "meta_addresses": META_ADDRESSES,
        "wait_seconds": 300,
        "log_dir": LAYOUT.log_dir(role),
        "needs_reverse_name": True,
    }


def zookeeper_unit_context() -> dict:
    return {
        "conf_dir": host_layout.ZOOKEEPER_CONF_DIR,
        "log_dir": host_layout.ZOOKEEPER_LOG_DIR,
        "data_dir": host_layout.ZOOKEEPER_DATA_DIR,
        "user": "zookeeper",
    }


def zoo_cfg_context(ips: list[str] = ZK_IPS) -> dict:
    return {
        "servers": [{"id": i + 1, "ip": ip} for i, ip in enumerate(ips)],
        "client_port": host_layout.ZOOKEEPER_CLIENT_PORT,
        "peer_port": host_layout.ZOOKEEPER_PEER_PORT,
        "election_port": host_layout.ZOOKEEPER_ELECTION_PORT,
        "data_dir": host_layout.ZOOKEEPER_DATA_DIR,
    }


TOOLS = {"tarball": f"{LAYOUT.packages_dir}/pegasus-tools-2.5.0-8f3c2ab-glibc2.17-release.tar.gz",
         "sha256": "cd" * 32, "release": "pegasus-tools-2.5.0-8f3c2ab-glibc2.17-release-cdcdcdcdcdcd",
         "tools_dir": LAYOUT.tools_dir}


def script_contexts() -> dict[str, dict]:
    """One realistic context per template name (as render() takes it)."""
    tarball = LAYOUT.package_path(f"{RELEASE}.tar.gz")
    package = {
        "tarball": tarball,
        "release": RELEASE,
        "releases_dir": LAYOUT.releases_dir,
        "current_link": LAYOUT.current_link,
    }
    zk_unit = f"{host_layout.SYSTEMD_DIR}/{host_layout.ZOOKEEPER_UNIT}"
    return {
        "prepare_host.sh": {
            "home_dir": LAYOUT.home_dir,
            "app_dir": LAYOUT.app_dir,
            "marker": host_layout.CREATED_MARKER,
            "required_commands": ["curl", "python3", "systemctl", "tar", "sha256sum", "mkfs.ext4"],
            "app_subdirs": [LAYOUT.packages_dir, LAYOUT.releases_dir, LAYOUT.staged_dir],
            "upload_dirs": [LAYOUT.packages_dir, LAYOUT.staged_dir],
            "upload_owner": "admin",
        },
        "remove_app_dir.sh": {
            "app_dir": LAYOUT.app_dir,
            "marker": host_layout.CREATED_MARKER,
            "retain_data": False,
        },
        "prepare_disks.sh": {"disks": DISKS, "wait_seconds": 120, "fstab": "/etc/fstab",
                             "directories": ["/data/ssd3"], "marker": host_layout.CREATED_MARKER},
        "cleanup_disks.sh": {"disks": DISKS, "fstab": "/etc/fstab", "directories": ["/data/ssd3"],
                             "marker": host_layout.CREATED_MARKER},
        "resolve_nic.sh": {"mac": "0a:1b:2c:3d:4e:5f", "wait_seconds": 120},
        "resolve_address.sh": {"nic": "0a:1b:2c:3d:4e:5f"},
        "extra_nic.service": {"mac": "0a:1b:2c:3d:4e:5f", "script_path": "/usr/local/sbin/pegasus-extra-nic"},
        "install_extra_nic.sh": {
            "script_text": templates.render("resolve_nic.sh", mac="0a:1b:2c:3d:4e:5f", wait_seconds=120),
            "script_path": "/usr/local/sbin/pegasus-extra-nic",
            "unit_text": templates.render("extra_nic.service", mac="0a:1b:2c:3d:4e:5f",
                                           script_path="/usr/local/sbin/pegasus-extra-nic"),
            "unit_path": f"{host_layout.SYSTEMD_DIR}/pegasus-extra-nic.service",
            "unit_name": "pegasus-extra-nic.service",
        },
        "fetch_package.sh": {
            "host": "replica-0 (i-0123456789abcdef0)", "tarball": tarball, "sha256": "ab" * 32,
            "url": f"https://pegasus-prod-kv-20250101.s3.eu-west-1.amazonaws.com/packages/{'ab' * 32}/{RELEASE}.tar.gz",
            "object": f"s3://pegasus-prod-kv-20250101/packages/{'ab' * 32}/{RELEASE}.tar.gz",
            "region": "eu-west-1", "metadata_url": "http://169.254.169.254", "attempts": 6, "retry_seconds": 10,
            "permission": "s3:GetObject on arn:aws:s3:::pegasus-prod-kv-20250101/packages/*",
        },
        "install_package.sh": {**package, "sha256": "ab" * 32, "needs_jvm": True, "jvm_root": "/usr/lib/jvm",
                               "jvm_lib_link": LAYOUT.jvm_lib_link, "jvm_home_link": LAYOUT.jvm_home_link},
        "remove_package.sh": {**package, "sha256": "ab" * 32,
                              "role_links": [LAYOUT.release_link(r) for r in ("meta", "replica", "collector")]},
        "install_tools.sh": TOOLS,
        "remove_tools.sh": TOOLS,
        "pegasus.service": unit_context("replica"),
        "start_role.sh": role_context("replica"),
        "restart_role.sh": {**role_context("meta"), "defer_if_leader": True, "pause_seconds": 30,
                            "check_seconds": 300},
        "stage_config.sh": {"staged_config": LAYOUT.staged_config_path("replica"),
                            "config": "[core]\n  data_dir = /home/work/app/pegasus/replica\n",
                            "restart_script_path": LAYOUT.staged_restart_path("replica"),
                            "restart_script": "#!/usr/bin/env bash\nset -euo pipefail\necho restart \"$1\"\n"},
        "stop_role.sh": {
            "role": "replica",
            "unit_name": host_layout.role_unit("replica"),
            "unit_path": f"{host_layout.SYSTEMD_DIR}/{host_layout.role_unit('replica')}",
            "remove_dirs": [LAYOUT.role_dir("replica"), LAYOUT.data_dir(0), LAYOUT.data_dir(1)],
            "retain_data": False,
        },
        "zoo.cfg": zoo_cfg_context(),
        "zookeeper.service": zookeeper_unit_context(),
        "install_zookeeper.sh": {
            "zoo_cfg": templates.render("zoo.cfg", **zoo_cfg_context()),
            "myid": 2,
            "unit_text": templates.render("zookeeper.service", **zookeeper_unit_context()),
            "conf_dir": host_layout.ZOOKEEPER_CONF_DIR,
            "data_dir": host_layout.ZOOKEEPER_DATA_DIR,
            "log_dir": host_layout.ZOOKEEPER_LOG_DIR,
            "unit_path": zk_unit,
            "user": "zookeeper",
        },
        "zookeeper_ready.sh": {
            "servers": ZK_IPS,
            "client_port": host_layout.ZOOKEEPER_CLIENT_PORT,
            "wait_seconds": 180,
            "log_dir": host_layout.ZOOKEEPER_LOG_DIR,
            "unit_name": host_layout.ZOOKEEPER_UNIT,
        },
        "remove_zookeeper.sh": {
            "unit_name": host_layout.ZOOKEEPER_UNIT,
            "unit_path": zk_unit,
            "conf_dir": host_layout.ZOOKEEPER_CONF_DIR,
            "data_dir": host_layout.ZOOKEEPER_DATA_DIR,
            "log_dir": host_layout.ZOOKEEPER_LOG_DIR,
        },
        "replica_removal_guard.sh": {
            "meta_addresses": META_ADDRESSES,
            "members": [f"replica-0={REPLICA_IP}:{host_layout.ROLE_PORTS['replica']}"],
            "record": f"{LAYOUT.staged_dir}/replica-servers",
            "min_alive": "3",
        },
        "partition_map.sh": {"meta_addresses": META_ADDRESSES},
        "health_check.sh": {
            "meta_addresses": META_ADDRESSES,
            "servers": [f"replica-0/replica={REPLICA_IP}:{host_layout.ROLE_PORTS['replica']}",
                        "replica-1/replica=10.0.1.22:34801", f"meta-0/meta={META_ADDRESSES[0]}"],
            "tables": ["stat"],
            "wait_seconds": 300,
            "log_dir": LAYOUT.log_dir("meta"),
        },
    }
