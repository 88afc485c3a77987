"""The pegasus_server stand-in, run as a subprocess from an unpacked fake package.

Refusal tests need nothing but Python. The running-cluster tests need a real
ZooKeeper (the `zookeeper_server` fixture) and the fixed Pegasus ports 34601
and 34801 on 127.0.0.1; if those ports are busy the tests fail and say so.
"""

from __future__ import annotations

import configparser
import http.client
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from tests.support.package_builder import STANDIN, build_package

META_PORT, REPLICA_PORT, COLLECTOR_PORT = 34601, 34801, 34101
# The stand-in's shebang is `/usr/bin/env python3`: put an interpreter with kazoo first on PATH,
# this one unless STANDIN_PYTHON_DIR names a directory holding another `python3` (e.g. to check
# the stand-in against Debian 12's python3 and python3-kazoo, as on the test machines).
PYTHON_DIR = os.environ.get("STANDIN_PYTHON_DIR") or os.path.dirname(sys.executable)


# ------------------------------------------------------------------ helpers

def unpack(tmp_path: Path, version: str = "2.5.0") -> Path:
    """Build a package, unpack it the way a host does, return its bin directory."""
    tarball = build_package(tmp_path / "packages", version=version)
    releases = tmp_path / "releases"
    extract(tarball, releases)
    return releases / tarball.name.removesuffix(".tar.gz") / "bin"


def extract(tarball: Path, destination: Path) -> None:
    # The "data" filter where this Python has it (3.11.4+; Debian 12's 3.11.2 has not).
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(tarball) as tar:
        tar.extractall(destination, **safe)


def render(template: str, values: dict[str, str]) -> str:
    """Replace `%{name}` variables (enough for tests; the program has its own renderer)."""
    return re.sub(r"%\{([^}]*)\}", lambda m: values.get(m.group(1), m.group(0)), template)


def set_key(text: str, key: str, value: str) -> str:
    """Change the value of an indented `key = ...` line that occurs once in the template."""
    pattern = re.compile(rf"^(\s*{re.escape(key)}\s*=).*$", re.MULTILINE)
    assert len(pattern.findall(text)) == 1, f"{key} should occur once in the fixture"
    return pattern.sub(lambda m: f"{m.group(1)} {value}", text)


class Host:
    """One role's directories on a pretend host, under tmp_path."""

    def __init__(self, tmp_path: Path, cluster: str, zk_hosts: str, role: str, version: str = "2.5.0"):
        self.bin_dir = unpack(tmp_path, version) if not (tmp_path / "releases").exists() else next(
            (tmp_path / "releases").iterdir()) / "bin"
        self.home = tmp_path / "home"
        # A Java runtime's library dir, as a host's would be (the loader only needs the file).
        self.jvm_lib_dir = tmp_path / "jvm" / "lib" / "server"
        self.jvm_lib_dir.mkdir(parents=True, exist_ok=True)
        (self.jvm_lib_dir / "libjvm.so").touch()
        self.app_dir = tmp_path / "app" / role
        self.data_dirs = [self.home / f"ssd{i}" / "pegasus" / cluster for i in (1, 2)]
        self.slog_dir = self.home / "slog" / "pegasus" / cluster
        self.role = role
        self.values = {
            "app.dir": str(self.app_dir),
            "cluster.name": cluster,
            "meta.server.list": f"127.0.0.1:{META_PORT}",
            "zk.server.list": zk_hosts,
            "data.dirs": ",".join(f"ssd{i}:{d}" for i, d in enumerate(self.data_dirs, start=1)),
            "home.dir": str(self.home),
            "slog.dir": str(self.slog_dir),
            "hdfs_service_args": "",
        }

    def template(self) -> str:
        return (self.bin_dir / "config.ini").read_text()

    def write_config(self, text: str) -> Path:
        self.app_dir.mkdir(parents=True, exist_ok=True)
        path = self.app_dir / "config.ini"
        path.write_text(text)
        return path

    def rendered(self, **changes: str) -> str:
        text = set_key(render(self.template(), self.values), "primary_interface", "lo")
        for key, value in changes.items():
            text = set_key(text, key, value)
        return text

    def make_data_dirs(self) -> None:
        for d in self.data_dirs:
            d.mkdir(parents=True, exist_ok=True)

    def env(self, ld_library_path: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
        env["PATH"] = f"{PYTHON_DIR}:{env.get('PATH', '/usr/bin:/bin')}"
        env["LD_LIBRARY_PATH"] = f"{self.bin_dir}:{self.jvm_lib_dir}" if ld_library_path is None else ld_library_path
        return env

    def command(self, config: Path) -> list[str]:
        return [str(self.bin_dir / "pegasus_server"), str(config), "-app_list", self.role]

    def run(self, config: Path, *, cwd: Path | None = None, ld_library_path: str | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(config), cwd=cwd or self.bin_dir, env=self.env(ld_library_path),
                              capture_output=True, text=True, timeout=timeout)

    def start(self, config: Path) -> subprocess.Popen:
        return subprocess.Popen(self.command(config), cwd=self.bin_dir, env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @property
    def log_file(self) -> Path:
        return self.app_dir / "log" / "pegasus.log"


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, f"expected a refusal (exit 1), got {result.returncode}: {result.stderr}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in stderr: {result.stderr}"


@pytest.fixture
def replica_host(tmp_path) -> Host:
    # ZooKeeper is never reached by a refused replica; the address only has to be well formed.
    return Host(tmp_path, "refusals", "127.0.0.1:2181", "replica")


# ------------------------------------------------------------------ refusals

def test_accepts_a_complete_config_up_to_the_network(replica_host):
    """Control case for the refusals below: the same config, unchanged, passes every check.

    The replica then listens on 127.0.0.1:34801; with the port taken by this test it
    must stop there, which shows the config checks, data dirs and address all passed.
    """
    replica_host.make_data_dirs()
    config = replica_host.write_config(replica_host.rendered())
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            blocker.bind(("127.0.0.1", REPLICA_PORT))
        except OSError as e:
            pytest.fail(f"port {REPLICA_PORT} on 127.0.0.1 is already in use on this machine ({e}); free it")
        blocker.listen(1)
        result = replica_host.run(config)
    assert_refused(result, f"cannot listen on 127.0.0.1:{REPLICA_PORT}")
    written = [p.name for d in replica_host.data_dirs for p in d.iterdir()]
    assert len(written) == 2 and all(n.startswith("standin-replica.") for n in written)


def test_refuses_a_leftover_variable_naming_its_line(replica_host):
    values = {k: v for k, v in replica_host.values.items() if k != "slog.dir"}
    text = set_key(render(replica_host.template(), values), "primary_interface", "lo")
    line = next(n for n, l in enumerate(text.splitlines(), start=1) if "%{slog.dir}" in l)
    replica_host.make_data_dirs()
    result = replica_host.run(replica_host.write_config(text))
    assert_refused(result, f"line {line} still holds an unreplaced variable", "slog_dir = %{slog.dir}")


def test_refuses_a_leftover_variable_of_release_2_6(tmp_path):
    host = Host(tmp_path, "refusals", "127.0.0.1:2181", "replica", version="2.6.0")
    values = {k: v for k, v in host.values.items() if k != "hdfs_service_args"}
    host.make_data_dirs()
    result = host.run(host.write_config(set_key(render(host.template(), values), "primary_interface", "lo")))
    assert_refused(result, "unreplaced variable", "%{hdfs_service_args}")


@pytest.mark.parametrize("bad_entry", ["meta-1.example.internal:34601", "300.1.2.3:34601", "10.0.0.1:70000",
                                       "10.0.0.1"])
def test_refuses_anything_but_ipv4_and_port_in_the_meta_server_list(replica_host, bad_entry):
    replica_host.values["meta.server.list"] = f"127.0.0.1:34601,{bad_entry}"
    replica_host.make_data_dirs()
    result = replica_host.run(replica_host.write_config(replica_host.rendered()))
    assert_refused(result, f"[meta_server] server_list entry {bad_entry!r}", "host names are refused")


@pytest.mark.parametrize("hosts", ["", "127.0.0.1", "127.0.0.1:port", "127.0.0.1:2181,:2181"])
def test_refuses_a_malformed_zookeeper_hosts_list(replica_host, hosts):
    replica_host.values["zk.server.list"] = hosts
    replica_host.make_data_dirs()
    result = replica_host.run(replica_host.write_config(replica_host.rendered()))
    assert_refused(result, "[zookeeper] hosts_list")


def test_refuses_a_missing_data_dir_and_logs_it(replica_host):
    replica_host.data_dirs[0].mkdir(parents=True)  # ssd2 is "not mounted"
    result = replica_host.run(replica_host.write_config(replica_host.rendered()))
    assert_refused(result, f"data dir ssd2:{replica_host.data_dirs[1]}", "does not exist")
    assert f"ssd2:{replica_host.data_dirs[1]}" in replica_host.log_file.read_text()
    assert list(replica_host.data_dirs[0].iterdir()) == [], "nothing may be written when the start is refused"


@pytest.mark.parametrize("count", ["0", "four", "-2", "", "2.5"])
def test_refuses_a_bad_io_service_worker_count(replica_host, count):
    replica_host.make_data_dirs()
    result = replica_host.run(replica_host.write_config(replica_host.rendered(io_service_worker_count=count)))
    assert_refused(result, f"[network] io_service_worker_count {count!r} is not a positive integer")


def test_refuses_a_relative_data_dir(replica_host):
    replica_host.values["app.dir"] = "app/replica"
    replica_host.make_data_dirs()
    result = replica_host.run(replica_host.write_config(replica_host.rendered()))
    assert_refused(result, "[core] data_dir 'app/replica' is not an absolute path")


def test_refuses_an_interface_without_ipv4(replica_host):
    replica_host.make_data_dirs()
    result = replica_host.run(replica_host.write_config(replica_host.rendered(primary_interface="nosuch0")))
    assert_refused(result, "[network] primary_interface 'nosuch0' has no IPv4 address")


def test_refuses_to_run_outside_its_bin_directory(replica_host, tmp_path):
    replica_host.make_data_dirs()
    result = replica_host.run(replica_host.write_config(replica_host.rendered()), cwd=tmp_path)
    assert_refused(result, f"must run from its bin directory {replica_host.bin_dir}")


@pytest.mark.parametrize("ld_library_path", ["", "/usr/lib", "{tmp}"])
def test_refuses_without_its_bin_directory_in_ld_library_path(replica_host, tmp_path, ld_library_path):
    replica_host.make_data_dirs()
    config = replica_host.write_config(replica_host.rendered())
    result = replica_host.run(config, ld_library_path=ld_library_path.format(tmp=tmp_path))
    assert_refused(result, "libpegasus_standin.so: cannot open shared object file",
                   f"LD_LIBRARY_PATH must contain {replica_host.bin_dir}")


def test_refuses_without_libjvm_like_a_2_4_server(replica_host):
    replica_host.make_data_dirs()
    config = replica_host.write_config(replica_host.rendered())
    result = replica_host.run(config, ld_library_path=str(replica_host.bin_dir))
    assert_refused(result, "libjvm.so: cannot open shared object file")


def test_refuses_an_unknown_role(replica_host):
    replica_host.role = "proxy"
    result = replica_host.run(replica_host.write_config(replica_host.rendered()))
    assert_refused(result, "-app_list meta|replica|collector")


def test_placeholder_package_server_exits_1(tmp_path):
    tarball = build_package(tmp_path, server="placeholder")
    extract(tarball, tmp_path / "x")
    binary = tmp_path / "x" / tarball.name.removesuffix(".tar.gz") / "bin" / "pegasus_server"
    assert subprocess.run([str(binary)], capture_output=True).returncode == 1


# ------------------------------------------------------------------ address choice

def load_standin():
    """Import the stand-in as a module to test its address rule without real interfaces."""
    spec = importlib.util.spec_from_file_location("pegasus_server_standin", STANDIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_interfaces(monkeypatch, standin, interfaces: dict[str, str | None]) -> None:
    monkeypatch.setattr(standin.socket, "if_nameindex", lambda: list(enumerate(interfaces, start=1)))
    monkeypatch.setattr(standin, "interface_ipv4", interfaces.get)
    monkeypatch.setattr(standin, "is_loopback", lambda name: name == "lo")


def network_config(primary_interface: str = ""):
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(f"[network]\nprimary_interface = {primary_interface}\n")
    return config


@pytest.mark.parametrize("interfaces, chosen", [
    ({"lo": "127.0.0.1", "eth0": "203.0.113.5", "eth1": "10.1.2.3"}, "10.1.2.3"),       # skips public and loopback
    ({"ens6": "192.168.0.9", "ens5": "172.20.0.4"}, "192.168.0.9"),                     # the kernel's (index) order
    ({"docker0": "172.17.0.1", "eth0": "10.0.0.5"}, "10.0.0.5"),                        # Docker's bridge by name
    ({"br0": "172.17.42.1", "eth0": "10.0.0.5"}, "10.0.0.5"),                           # ...or by its old address
    ({"eth0": None, "eth1": "172.31.255.1", "eth2": "10.0.0.1"}, "172.31.255.1"),       # no address: skipped
])
def test_empty_primary_interface_takes_the_first_private_address(monkeypatch, interfaces, chosen):
    standin = load_standin()
    fake_interfaces(monkeypatch, standin, interfaces)
    assert standin.binding_address(network_config()) == chosen


def test_empty_primary_interface_without_private_address_is_refused(monkeypatch):
    standin = load_standin()
    fake_interfaces(monkeypatch, standin, {"lo": "127.0.0.1", "eth0": "172.32.0.1", "eth1": "192.0.2.2"})
    with pytest.raises(standin.Refusal, match=r"no interface has a private IPv4 address.*eth0=172\.32\.0\.1, "
                                              r"eth1=192\.0\.2\.2; name the interface"):
        standin.binding_address(network_config())


def test_a_named_interface_is_used_as_is(monkeypatch):
    standin = load_standin()
    fake_interfaces(monkeypatch, standin, {"lo": "127.0.0.1", "eth0": "10.0.0.5", "eth1": "198.51.100.7"})
    assert standin.binding_address(network_config("eth1")) == "198.51.100.7"
    assert standin.binding_address(network_config("lo")) == "127.0.0.1"


# ------------------------------------------------------------------ running roles

def http_get(path: str, port: int = META_PORT) -> tuple[int, dict, str | None]:
    """GET without following redirects: (status, JSON body, Location)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}"), response.getheader("Location")
    finally:
        conn.close()


def wait_for(what: str, check, timeout: float = 30.0, processes: tuple = ()):
    """Poll check() until it returns something truthy; fail naming `what`."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                pytest.fail(f"{what}: a stand-in exited early with {process.returncode}: {process.stderr.read()}")
        try:
            result = check()
            if result:
                return result
            last = result
        except (OSError, http.client.HTTPException, ValueError) as e:
            last = e
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def require_free_ports(*ports: int) -> None:
    for port in ports:
        with socket.socket() as sock:
            # as the stand-in does: a connection in TIME_WAIT does not make a port busy, a listener does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as e:
                pytest.fail(f"Pegasus port {port} on 127.0.0.1 is busy on this machine ({e}); "
                            "the stand-in must use the real fixed ports: stop whatever holds it")


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail("a stand-in did not exit within 20 s of SIGTERM")
    return process.returncode


@pytest.fixture
def zk_client(zookeeper_client):
    return zookeeper_client


@pytest.fixture
def cluster_name(zk_client):
    """A cluster name of this test's own; its ZooKeeper root is removed afterwards."""
    name = f"standin-{uuid.uuid4().hex[:8]}"
    yield name
    zk_client.delete(f"/pegasus/{name}", recursive=True)


def test_meta_and_replica_form_a_cluster(tmp_path, zookeeper_server, zk_client, cluster_name):
    require_free_ports(META_PORT, REPLICA_PORT, COLLECTOR_PORT)
    meta = Host(tmp_path, cluster_name, zookeeper_server.hosts, "meta")
    replica = Host(tmp_path, cluster_name, zookeeper_server.hosts, "replica")
    collector = Host(tmp_path, cluster_name, zookeeper_server.hosts, "collector")
    replica.make_data_dirs()
    processes = []
    try:
        processes.append(meta_process := meta.start(meta.write_config(meta.rendered())))
        cluster = wait_for("the meta to lead", lambda: (r := http_get("/meta/cluster"))[0] == 200 and r[1],
                           processes=processes)
        assert cluster == {"meta_servers": f"127.0.0.1:{META_PORT}", "primary_meta_server": f"127.0.0.1:{META_PORT}",
                           "zookeeper_hosts": zookeeper_server.hosts, "zookeeper_root": f"/pegasus/{cluster_name}"}

        processes.append(replica_process := replica.start(replica.write_config(replica.rendered())))
        address = f"127.0.0.1:{REPLICA_PORT}"

        def replica_alive():
            nodes = http_get("/meta/nodes")[1]
            return nodes.get("details", {}).get(address, {}).get("status") == "ALIVE" and nodes
        nodes = wait_for("the replica to be ALIVE", replica_alive, processes=processes)
        assert nodes["summary"] == {"total_node_count": 1, "alive_node_count": 1, "unalive_node_count": 0}
        socket.create_connection(("127.0.0.1", REPLICA_PORT), timeout=3).close()

        status, apps, _ = http_get("/meta/apps")
        assert status == 200
        assert [(a["app_name"], a["partition_count"], a["status"]) for a in apps["general_info"].values()] == [
            ("stat", 4, "AVAILABLE")]
        data, _ = zk_client.get(f"/pegasus/{cluster_name}/apps/stat")
        assert json.loads(data)["max_replica_count"] == 3
        lock_children = zk_client.get_children(f"/pegasus/{cluster_name}/lock")
        assert [zk_client.get(f"/pegasus/{cluster_name}/lock/{c}")[0] for c in lock_children] == [
            f"127.0.0.1:{META_PORT}".encode()]

        for data_dir in replica.data_dirs:
            assert (data_dir / f"standin-replica.{replica_process.pid}").is_file()
        assert replica.slog_dir.is_dir(), "the 2.5 replica creates its slog_dir"
        replica_log = replica.log_file.read_text()
        assert f"role=replica address={address} cluster_root=/pegasus/{cluster_name}" in replica_log
        assert "became the leader meta server at 127.0.0.1:34601" in meta.log_file.read_text()

        processes.append(collector_process := collector.start(collector.write_config(collector.rendered())))
        wait_for("the collector to reach the meta",
                 lambda: collector.log_file.exists() and "/meta/cluster answered by 127.0.0.1:34601"
                 in collector.log_file.read_text(), processes=processes)
        socket.create_connection(("127.0.0.1", COLLECTOR_PORT), timeout=3).close()
        assert stop(collector_process) == 0

        assert stop(replica_process) == 0
        wait_for("the stopped replica to turn UNALIVE",
                 lambda: http_get("/meta/nodes")[1]["summary"] == {
                     "total_node_count": 1, "alive_node_count": 0, "unalive_node_count": 1}, timeout=15)
        assert stop(meta_process) == 0
        assert "received SIGTERM" in replica.log_file.read_text()
        assert "received SIGTERM" in meta.log_file.read_text()
        assert zk_client.get_children(f"/pegasus/{cluster_name}/lock") == [], "the lock node is ephemeral"
    finally:
        for process in processes:
            stop(process)


def test_non_leader_meta_redirects_until_it_leads(tmp_path, zookeeper_server, zk_client, cluster_name):
    """Another contender holds the lock first: the stand-in must redirect to it, then take over."""
    require_free_ports(META_PORT)
    other_leader = "127.0.0.2:34601"
    lock = zk_client.Lock(f"/pegasus/{cluster_name}/lock", identifier=other_leader)
    assert lock.acquire(timeout=10)
    meta = Host(tmp_path, cluster_name, zookeeper_server.hosts, "meta")
    process = meta.start(meta.write_config(meta.rendered()))
    try:
        status, _, location = wait_for("a redirect", lambda: (r := http_get("/meta/nodes"))[0] == 302 and r,
                                       processes=(process,))
        assert location == f"http://{other_leader}/meta/nodes"
        assert not zk_client.exists(f"/pegasus/{cluster_name}/apps"), "only the leader creates tables"

        conn = http.client.HTTPConnection("127.0.0.1", META_PORT, timeout=3)
        conn.request("POST", "/meta/beacon", body=json.dumps({"address": "127.0.0.1:34801"}))
        response = conn.getresponse()
        assert (response.status, response.getheader("Location")) == (302, f"http://{other_leader}/meta/beacon")
        conn.close()

        lock.release()
        cluster = wait_for("the stand-in to take over", lambda: (r := http_get("/meta/cluster"))[0] == 200 and r[1],
                           processes=(process,))
        assert cluster["primary_meta_server"] == f"127.0.0.1:{META_PORT}"
        assert zk_client.exists(f"/pegasus/{cluster_name}/apps/stat")
        assert stop(process) == 0
    finally:
        stop(process)
