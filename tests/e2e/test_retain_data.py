"""End to end on release 2.6 (master: nodes named by host name): a rolling upgrade with the admin
tools loses no request, and `retainData` keeps the data volumes, the data directories and the
ZooKeeper path."""

from __future__ import annotations

import subprocess
import time

import pytest

from components.operations.zookeeper_path_guard import zookeeper_session
from tests.e2e.localcloud.engine import Engine
from tests.e2e.localcloud.testing import skip_unless_local_cloud_possible
from tests.e2e.test_pegasus_cluster import FAST_FAILURE_DETECTION, load_result, run_load_on
from tests.support.package_builder import build_package, build_tools_package
from tests.support.pulumi_program import PROGRAM, stack_config

pytestmark = [pytest.mark.e2e, skip_unless_local_cloud_possible()]

CLUSTER = "kept"
METAS = (f"{CLUSTER}-meta-0", f"{CLUSTER}-meta-1")  # their instances' resource names
INSTANCE = "aws:ec2/instance:Instance"


class Deployed:
    """What test_pegasus_cluster's load helpers use of a cluster: its machines and exports."""

    def __init__(self, engine: Engine, exports: dict) -> None:
        self.engine, self.exports = engine, exports

    def machine(self, host: str):
        return self.engine.machine(f"{CLUSTER}-{host}")


def test_destroy_with_retain_data_keeps_volumes_directories_and_path(local_cloud, tmp_path):
    started = time.monotonic()
    keys = local_cloud.keys
    config = {
        "clusterName": CLUSTER,
        # master (2.6): nodes named by reverse DNS, no shared log, no restart without a name.
        "package": str(build_package(tmp_path / "package", version="2.6.0")),
        "ssh": {"user": "root", "privateKey": keys.private_key, "publicKey": keys.public_key.strip()},
        "meta": {"count": 2},
        "replica": {"count": 3, "dataDisks": {"count": 1, "sizeGiB": 1}},
        "collector": {"enabled": False},
        "zookeeper": {"count": 1, "allowSingleNode": True, "access": "direct"},
        "network": {"adminCidr": "10.0.0.0/8"},
        "retainData": True,
        "configOverrides": FAST_FAILURE_DETECTION,
        "timeouts": {"startSeconds": 90, "healthSeconds": 120, "zookeeperSeconds": 180, "metaPauseSeconds": 2},
    }
    engine = Engine(local_cloud, tmp_path / "state.json", PROGRAM, stack="retain", secret_keys=("pegasus:ssh",))
    exports = engine.up(stack_config("pegasus", config))
    rolled = time.monotonic()
    _rolling_upgrade_with_admin_tools_loses_no_request(engine, exports, config, tmp_path)
    print(f"\nscenario 2.6 rolling upgrade with admin tools: {time.monotonic() - rolled:.1f} s")
    volumes = [r["id"] for r in engine.state.resources.values() if r["type"] == "aws:ebs/volume:Volume"]
    assert len(volumes) == 3
    checked = {}

    def before_delete(record: dict) -> None:
        # Look at each piece of retained state just before the last thing it lives on goes:
        # the ZooKeeper path before ZooKeeper stops, a MetaServer's directory before its
        # machine. Deletes of unrelated resources may come in any order.
        if record["name"] == f"{CLUSTER}-zk-0-zookeeper":
            with zookeeper_session(exports["zookeeperServers"], None, 30) as client:
                checked["path"] = client.exists(f"/pegasus/{CLUSTER}")
        elif record["type"] == INSTANCE and record["name"] in METAS:
            rc, _, _ = local_cloud.machines[record["name"]].ssh("test -d /home/work/app/pegasus/meta")
            checked[record["name"]] = rc == 0

    engine.destroy(before_delete=before_delete)
    assert checked.keys() == {"path", *METAS}, f"destroy never reached {checked.keys()}"
    assert checked["path"] is not None, "the ZooKeeper path was removed despite retainData"
    assert all(checked[meta] for meta in METAS), "the MetaServers' directories were removed"
    assert engine.state.order == [] and not local_cloud.machines
    retained = {op.name for op in engine.last_run.operations if op.action == "retain"}
    assert {f"{CLUSTER}-replica-{i}-data1" for i in range(3)} <= retained
    # retainData keeps nothing of the package store: the package can be uploaded again.
    assert not retained & {f"{CLUSTER}-packages", f"{CLUSTER}-package"}
    assert not [b for b in local_cloud.aws.buckets() if b.startswith(f"pegasus-{CLUSTER}-")]
    for volume_id in volumes:
        assert volume_id in local_cloud.volumes, f"{volume_id} was deleted"
        with_files = _files_on_volume(local_cloud.volumes[volume_id].path, tmp_path / volume_id)
        assert "reps" in with_files, with_files  # the ReplicaServer's replica directory survived
    print(f"\nscenario retain data: {time.monotonic() - started:.1f} s")


def _rolling_upgrade_with_admin_tools_loses_no_request(engine: Engine, exports: dict, config: dict,
                                                        tmp_path) -> None:
    """The shell drains each ReplicaServer under its host name (`nodes -d` on 2.6), closes its
    replicas (replica.kill_partition) and restarts it, under steady client load."""
    config = {**config, "package": str(build_package(tmp_path / "upgrade", version="2.6.1", git_sha="c3d4e5f")),
              "toolsPackage": str(build_tools_package(tmp_path / "tools", version="2.6.0"))}
    deployed = Deployed(engine, exports)
    run_load_on(deployed, "/root/stop-load")
    engine.up(stack_config("pegasus", config))
    stats = load_result(deployed, "/root/stop-load", "a rolling upgrade with admin tools on 2.6")
    assert stats["failed"] == 0 and stats["below_two"] == [], stats
    for i in range(3):
        replica = engine.machine(f"{CLUSTER}-replica-{i}")
        releases = replica.check("ls /home/work/app/pegasus/releases").split()
        assert len(releases) == 1 and releases[0].startswith("pegasus-server-2.6.1"), releases
        killed = replica.check("cat /home/work/app/pegasus/replica/log/log.*.txt | grep -c 'kill replica: gpid' "
                               "|| true").strip()
        assert int(killed) > 0, f"replica-{i} closed no replica before its restart"


def _files_on_volume(image, mount_point) -> list[str]:
    """Mount a retained volume's backing file read-only and list its cluster data dir."""
    mount_point.mkdir()
    subprocess.run(["mount", "-o", "ro,loop", str(image), str(mount_point)], check=True)
    try:
        return [p.name for p in (mount_point / "pegasus" / CLUSTER).iterdir()]
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
