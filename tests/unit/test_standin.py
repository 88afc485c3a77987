"""The pegasus_server stand-in, run for real from unpacked fake packages on loopback.

Refusals need only Python; the cluster tests need a real ZooKeeper (the
`zookeeper_server` fixture). Ports come from `[apps.<role>] ports` as in the real
server, so every process gets free ones; fd timings are shortened through config.
"""

from __future__ import annotations

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

from components.operations.roll_plan import node_names, read_map_output
from components.render import templates as host_files
from tests.support.app_load import LocalLoad
from tests.support.package_builder import STANDIN, build_package
from tests.support.zookeeper_server import free_port

sys.path.insert(0, str(STANDIN.parent))  # the stand-in's wire module, as its package ships it
import rdsn_thrift as rt  # noqa: E402
import rrdb_store as rs  # noqa: E402

PYTHON_DIR = os.environ.get("STANDIN_PYTHON_DIR") or os.path.dirname(sys.executable)
FAST_FD = {"fd_check_interval_seconds": "1", "fd_beacon_interval_seconds": "1", "fd_lease_seconds": "3",
           "fd_grace_seconds": "4"}


def render(template: str, values: dict[str, str]) -> str:
    return re.sub(r"%\{([^}]*)\}", lambda m: values.get(m.group(1), m.group(0)), template)


def set_key(text: str, section: str, key: str, value: str) -> str:
    """Set `key` in `[section]` (added when missing)."""
    lines, out, current, done = text.split("\n"), [], None, False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and "]" in stripped:
            if current == section and not done:
                out.append(f"  {key} = {value}")
                done = True
            current = stripped[1:stripped.index("]")]
        elif current == section and re.match(rf"{re.escape(key)}\s*=", stripped):
            line, done = f"  {key} = {value}", True
        out.append(line)
    if not done:
        out += ([f"[{section}]"] if current != section else []) + [f"  {key} = {value}"]
    return "\n".join(out)


class Node:
    """One server: its own app dir and config, run from <app dir> with release/bin like the unit."""

    def __init__(self, tmp: Path, version: str, role: str, name: str, values: dict, ports: dict, **overrides):
        tarball = build_package(tmp / "packages" / version, version=version)
        bin_dir = tmp / "releases" / version / tarball.name.removesuffix(".tar.gz") / "bin"
        if not bin_dir.exists():
            with tarfile.open(tarball) as tar:
                tar.extractall(tmp / "releases" / version)
        self.bin_dir, self.role = bin_dir, role
        self.app_dir = tmp / name
        self.app_dir.mkdir(parents=True, exist_ok=True)
        (tmp / "jvm").mkdir(exist_ok=True)
        (tmp / "jvm" / "libjvm.so").touch()
        text = render((bin_dir / "config.ini").read_text(), {
            **values, "app.dir": str(self.app_dir), "slog.dir": str(self.app_dir / "slog"),
            "data.dirs": f"ssd1:{self.app_dir}/ssd1,ssd2:{self.app_dir}/ssd2", "home.dir": str(self.app_dir)})
        text = set_key(text, "network", "primary_interface", "lo")
        for r, port in ports.items():
            text = set_key(text, f"apps.{r}", "ports", str(port))
        for key, value in {**FAST_FD, **overrides}.items():
            section, _, key = key.rpartition("/") if "/" in key else ("replication", "", key)
            text = set_key(text, section, key, value)
        self.config = self.app_dir / "config.ini"
        self.config.write_text(text)
        self.process = None

    def env(self, ld=None):
        env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
        env["PATH"] = f"{PYTHON_DIR}:{env.get('PATH', '/usr/bin:/bin')}"
        env["LD_LIBRARY_PATH"] = f"{self.bin_dir}:{self.app_dir.parent / 'jvm'}" if ld is None else ld
        return env

    def cmd(self):
        return [str(self.bin_dir / "pegasus_server"), str(self.config), "-app_list", self.role]

    def run(self, ld=None):
        return subprocess.run(self.cmd(), cwd=self.app_dir, env=self.env(ld), capture_output=True, text=True,
                              timeout=30)

    def start(self):
        self.process = subprocess.Popen(self.cmd(), cwd=self.app_dir, env=self.env(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        return "".join(p.read_text() for p in sorted((self.app_dir / "log").glob("log.*.txt")))


def get(port: int, path: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        try:
            return r.status, json.loads(body or b"null"), r.getheader("Location")
        except ValueError:
            return r.status, body.decode(), r.getheader("Location")
    finally:
        conn.close()


def wait_for(what, check, timeout=30.0):
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
            last = e
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def call(port: int, name: str, argument, **header) -> rt.Reply | None:
    """One request over rDSN's thrift framing, as Apache's clients send it; its reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(rt.encode_request(name, 5, argument, **header))
        return rt.read_reply(rt.socket_reader(sock))


def partitions(meta_port: int, table: str = "stat") -> rt.QueryCfgResponse:
    reply = call(meta_port, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX", rt.QueryCfgRequest(app_name=table))
    assert reply.error == "ERR_OK" and reply.name == "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX_ACK"
    return reply.result(rt.QueryCfgResponse)


def values(cluster: str, zk: str, metas: list[int]) -> dict:
    return {"cluster.name": cluster, "zk.server.list": zk, "hdfs_service_args": "",
            "meta.server.list": ",".join(f"127.0.0.1:{p}" for p in metas)}


# ------------------------------------------------------------------ refusals (no ZooKeeper)

@pytest.fixture
def replica(tmp_path):
    return Node(tmp_path, "2.5.0", "replica", "r", values("refusals", "127.0.0.1:2181", [free_port()]),
                {"replica": free_port()})


def refused(result, *fragments):
    assert result.returncode == 1, result.stderr
    for f in fragments:
        assert f in result.stderr, f"{f!r} not in {result.stderr}"


def test_refuses_a_leftover_variable_naming_its_line(replica):
    text = replica.config.read_text().replace("cold_backup_root = prod", "cold_backup_root = %{cluster.name}")
    text = set_key(text, "replication", "cold_backup_root", "%{cluster.name}")
    replica.config.write_text(text)
    line = text.split("\n").index("  cold_backup_root = %{cluster.name}") + 1
    refused(replica.run(), f"line {line}", "[replication] cold_backup_root", "unreplaced")


def test_refuses_without_bin_in_ld_library_path_or_without_libjvm(replica, tmp_path):
    refused(replica.run(ld=str(tmp_path / "jvm")), "libpegasus_standin.so", "LD_LIBRARY_PATH")
    refused(replica.run(ld=str(replica.bin_dir)), "libjvm.so")


def test_refuses_an_unknown_role(replica):
    replica.role = "mimic2"
    refused(replica.run(), "[apps.mimic2]")


def test_creates_missing_data_dirs_and_logs_under_data_dir(replica):
    replica.start()
    try:
        wait_for("data dirs", lambda: (replica.app_dir / "ssd2" / "reps").is_dir())
        wait_for("log", lambda: "replica server ready" in replica.log_text())
    finally:
        replica.stop()


def load_standin(release="2.5.0"):
    spec = importlib.util.spec_from_file_location(f"standin_{uuid.uuid4().hex}", STANDIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.RELEASE = release
    return module


def test_config_parser_reads_like_rdsn(tmp_path):
    standin = load_standin()
    path = tmp_path / "c.ini"
    path.write_text("[a]\n  k = v ; comment\n  k = second\n  h = x#y\n  e = a^;b\n  bare\n  p = %x%\n")
    config = standin.Config(str(path))
    assert config.get("a", "k") == "v" and config.get("a", "h") == "x" and config.get("a", "e") == "a;b"
    assert config.get("a", "bare") == "" and config.get("a", "p") == ""
    assert any("redefinition" in w for w in config.warnings)
    path.write_text("[a]\nk = 1\n[a]\n")
    with pytest.raises(standin.Refusal, match="redefined"):
        standin.Config(str(path))


def test_2_6_refuses_an_address_without_reverse_name(monkeypatch):
    standin = load_standin("2.6.0")
    assert load_standin("2.5.0").node_name("127.0.0.1", 34801) == "127.0.0.1:34801"
    assert standin.node_name("127.0.0.1", 34801) == "localhost:34801"
    monkeypatch.setattr(standin.socket, "getnameinfo", lambda *a: (_ for _ in ()).throw(OSError("no name")))
    assert standin.reverse_name("10.1.2.3") is None
    monkeypatch.setattr(standin, "check_invocation", lambda argv: (argv[0], argv[2]))
    monkeypatch.setattr(standin, "setup_log", lambda config: None)
    monkeypatch.setattr(standin, "local_ipv4", lambda config: "10.1.2.3")
    path = Path(standin.__file__).parent.parent.parent / "fixtures" / "config-2.6.ini"
    text = render(path.read_text(), {"app.dir": "/tmp/x", "cluster.name": "c", "meta.server.list": "10.1.2.3:1",
                                     "zk.server.list": "z:1", "data.dirs": "a:/tmp/x", "home.dir": "/tmp",
                                     "hdfs_service_args": ""})
    config = Path(os.environ.get("TMPDIR", "/tmp")) / f"standin-{uuid.uuid4().hex}.ini"
    config.write_text(text)
    try:
        with pytest.raises(standin.Refusal, match=r"'10.1.2.3:34801' can not be reverse resolved"):
            standin.run([str(config), "-app_list", "replica"])
    finally:
        config.unlink()


def test_a_missing_named_interface_falls_back_to_the_host_name(monkeypatch, tmp_path):
    standin = load_standin()
    path = tmp_path / "c.ini"
    path.write_text("[network]\nprimary_interface = nosuchnic0\n")
    monkeypatch.setattr(standin.socket, "gethostbyname", lambda h: "10.9.9.9")
    assert standin.local_ipv4(standin.Config(str(path))) == "10.9.9.9"


# ------------------------------------------------------------------ a running cluster

@pytest.fixture
def cluster_name(zookeeper_client):
    name = f"standin-{uuid.uuid4().hex[:8]}"
    yield name
    zookeeper_client.delete(f"/pegasus/{name}", recursive=True)


def alive(port, n):
    status, body, _ = get(port, "/meta/nodes")
    return status == 200 and body["summary"]["alive_node_count"] == str(n) and body


@pytest.mark.parametrize("version", ["2.5.0", "2.6.0"])
def test_cluster_fd_partitions_failover_and_rejoin(tmp_path, zookeeper_server, cluster_name, version):
    metas, reps = [free_port(), free_port()], [free_port() for _ in range(3)]
    vals = values(cluster_name, zookeeper_server.hosts, metas)
    overrides = {"meta_server/min_live_node_count_for_unfreeze": "2",
                 "meta_server/replica_assign_delay_ms_for_dropouts": "0"}
    nodes = [Node(tmp_path, version, "meta", f"m{i}", vals, {"meta": p}, **overrides) for i, p in enumerate(metas)]
    nodes += [Node(tmp_path, version, "replica", f"r{i}", vals, {"replica": p}, **overrides)
              for i, p in enumerate(reps)]
    name = (lambda p: f"127.0.0.1:{p}") if version < "2.6" else (lambda p: f"localhost:{p}")
    try:
        nodes[0].start()
        wait_for("meta 0 to lead", lambda: get(metas[0], "/meta/cluster")[0] == 200)
        nodes[1].start()
        for n in nodes[2:]:
            n.start()
        nodes_page = wait_for("3 ALIVE replicas", lambda: alive(metas[0], 3))
        assert set(nodes_page["details"]) == {name(p) for p in reps}
        assert nodes_page["details"][name(reps[0])] == {"address": name(reps[0]), "status": "ALIVE"}
        # a follower redirects to the leader, query kept
        status, _, location = wait_for("follower redirect", lambda: (r := get(metas[1], "/meta/apps?detail"))[0] == 307 and r)
        assert location == f"http://{name(metas[0])}/meta/apps?detail="
        cluster = get(metas[0], "/meta/cluster")[1]
        assert cluster["primary_meta_server"] == name(metas[0]) and cluster["meta_function_level"] == "steady"
        apps = wait_for("stat healthy", lambda: (b := get(metas[0], "/meta/apps?detail")[1])["summary"].get(
            "fully_healthy_app_count") == "1" and b)
        assert apps["general_info"]["1"]["app_name"] == "stat" and apps["summary"]["unhealthy_app_count"] == "0"
        app = get(metas[0], "/meta/app?name=stat&detail")[1]
        assert app["general"] == {"app_name": "stat", "app_id": "1", "partition_count": "4", "max_replica_count": "3"}
        assert app["replicas"]["0"]["replica_count"] == "3/3" and app["nodes"]["total"]["total"] == "12"
        assert get(metas[0], "/version")[1] == {"Version": version, "GitCommit": "8f3c2ab"}
        assert get(metas[0], "/meta/app?name=nope")[0] == 404
        # The roll's partition map: read from a follower (redirected) after an address that does not answer.
        script = host_files.render("partition_map.sh", meta_addresses=[f"127.0.0.1:{free_port()}",
                                                                       f"127.0.0.1:{metas[1]}"])
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        cluster, resolved = read_map_output(done.stdout)
        assert [p.gpid for p in cluster.partitions] == ["1.0", "1.1", "1.2", "1.3"]
        assert all(p.healthy and set(p.members) <= {name(r) for r in reps} for p in cluster.partitions)
        addresses = {f"r{i}": f"127.0.0.1:{p}" for i, p in enumerate(reps)}
        assert node_names(addresses, cluster, resolved) == {f"r{i}": name(p) for i, p in enumerate(reps)}
        assert resolved == ({} if version < "2.6" else {"localhost": {"127.0.0.1"}})

        # Apache's Python client (given every MetaServer: it follows no forward) on every partition.
        # (pypegasus3 reads no partition configuration of master: test_standin_protocol.py says why.)
        meta_list = ",".join(f"127.0.0.1:{p}" for p in metas)
        if version < "2.6":
            with LocalLoad(meta_list, tmp_path / "load1") as load:
                time.sleep(1.5)
            assert load.stats["errors"] == 0 and load.stats["lost"] == 0 and load.stats["total"] > 0, load.stats

        # a replica dies: UNALIVE after the grace period, its primaries move
        victim = nodes[2]
        victim.stop(signal.SIGKILL)
        page = wait_for("victim UNALIVE", lambda: alive(metas[0], 2), timeout=15)
        assert page["details"][name(reps[0])]["status"] == "UNALIVE"
        app = wait_for("primaries moved", lambda: (b := get(metas[0], "/meta/app?name=stat&detail")[1])[
            "healthy"]["read_unhealthy_partition_count"] == "0" and b)
        assert all(r["primary"] != name(reps[0]) for r in app["replicas"].values())
        time.sleep(1.5)
        if version < "2.6":
            with LocalLoad(meta_list, tmp_path / "load2", wait_replicas=2) as load:
                time.sleep(1.0)
            assert load.stats["errors"] == 0 and load.stats["lost"] == 0, load.stats
        # a write to every partition while it is down, acknowledged by the two left
        config = partitions(metas[0])
        for part in config.partitions:
            written = call(part.primary.port, "RPC_RRDB_RRDB_PUT", rt.UpdateRequest(
                key=rt.Blob(rs.generate_key(b"while", b"down")), value=rt.Blob(b"while-down"), expire_ts_seconds=0),
                app_id=config.app_id, pidx=part.pid.pidx)
            assert written.error == "ERR_OK" and written.result(rt.UpdateResponse).error == 0

        # it restarts and gets its replicas back
        victim.start()
        wait_for("victim ALIVE", lambda: alive(metas[0], 3), timeout=15)
        wait_for("fully healthy again", lambda: get(metas[0], "/meta/app?name=stat&detail")[1]["healthy"][
            "fully_healthy_partition_count"] == "4", timeout=15)
        # Back as a secondary it learned what was written while it was down: made primary, it serves it.
        replicas = get(metas[0], "/meta/app?name=stat&detail")[1]["replicas"]
        pidx, row = next((p, r) for p, r in replicas.items() if name(reps[0]) in r["secondaries"])
        actions = f"DOWNGRADE_TO_SECONDARY/{row['primary']}/{row['primary']},UPGRADE_TO_PRIMARY/{name(reps[0])}/{name(reps[0])}"
        assert get(metas[0], f"/standin/propose_balancer?gpid=1.{pidx}&actions={actions}")[1] == {"err": "ERR_OK"}
        wait_for("the primary moved to it", lambda: get(metas[0], "/meta/app?name=stat&detail")[1]["replicas"][pidx][
            "primary"] == name(reps[0]))
        def read_there():
            reply = call(reps[0], "RPC_RRDB_RRDB_GET", rs.generate_key(b"while", b"down"), app_id=config.app_id,
                         pidx=int(pidx))
            return reply.error == "ERR_OK" and reply.result(rt.ReadResponse)
        read = wait_for("the new primary serving", read_there)  # it learns its role from the next beacon
        assert (read.error, read.value.data) == (0, b"while-down")
        # the MetaServer's ZooKeeper log is in its working directory
        assert (nodes[0].app_dir / "zoo.log").is_file()
    finally:
        for n in nodes:
            n.stop()


def test_dropped_udp_means_never_alive(tmp_path, zookeeper_server, cluster_name):
    meta_port, nowhere = free_port(), free_port()
    meta = Node(tmp_path, "2.5.0", "meta", "m", values(cluster_name, zookeeper_server.hosts, [meta_port]),
                {"meta": meta_port})
    # the replica beacons at a port where no MetaServer answers UDP (a firewall dropping UDP)
    rep = Node(tmp_path, "2.5.0", "replica", "r", values(cluster_name, zookeeper_server.hosts, [nowhere]),
               {"replica": free_port()})
    try:
        meta.start()
        wait_for("meta leads", lambda: get(meta_port, "/meta/cluster")[0] == 200)
        rep.start()
        time.sleep(4)
        assert get(meta_port, "/meta/nodes")[1]["summary"] == {
            "total_node_count": "0", "alive_node_count": "0", "unalive_node_count": "0"}
        assert "ping master" in rep.log_text()
    finally:
        meta.stop()
        rep.stop()


def test_frozen_cluster_keeps_dead_primary_unassigned(tmp_path, zookeeper_server, cluster_name):
    meta_port, reps = free_port(), [free_port(), free_port()]
    vals = values(cluster_name, zookeeper_server.hosts, [meta_port])
    over = {"meta_server/min_live_node_count_for_unfreeze": "2", "meta_server/replica_assign_delay_ms_for_dropouts": "0"}
    meta = Node(tmp_path, "2.4.0", "meta", "m", vals, {"meta": meta_port}, **over)
    nodes = [Node(tmp_path, "2.4.0", "replica", f"r{i}", vals, {"replica": p}) for i, p in enumerate(reps)]
    try:
        meta.start()
        wait_for("meta leads", lambda: get(meta_port, "/meta/cluster")[0] == 200)
        # 2.4.0 has no [meta_server.apps.*]: no default table
        assert get(meta_port, "/meta/apps?detail")[1] == {"general_info": {}, "summary": {"total_app_count": "0"}}
        for n in nodes:
            n.start()
        wait_for("2 ALIVE", lambda: alive(meta_port, 2))
        nodes[0].stop(signal.SIGKILL)
        wait_for("1 ALIVE", lambda: alive(meta_port, 1), timeout=15)
        page = get(meta_port, "/meta/nodes")[1]
        assert page["details"][f"127.0.0.1:{reps[0]}"]["status"] == "UNALIVE"
    finally:
        meta.stop()
        for n in nodes:
            n.stop()


def test_fewer_alive_than_the_live_percentage_freezes_the_cluster(tmp_path, zookeeper_server, cluster_name):
    # check_freeze (meta_service.cpp): ALIVE * 100 < node_live_percentage_threshold_for_update * known nodes.
    # With 70%, one of three down leaves 200 < 210: frozen, its primaries are not reassigned.
    meta_port, reps = free_port(), [free_port() for _ in range(3)]
    vals = values(cluster_name, zookeeper_server.hosts, [meta_port])
    over = {"meta_server/min_live_node_count_for_unfreeze": "1", "meta_server/replica_assign_delay_ms_for_dropouts": "0",
            "meta_server/node_live_percentage_threshold_for_update": "70"}
    meta = Node(tmp_path, "2.5.0", "meta", "m", vals, {"meta": meta_port}, **over)
    nodes = [Node(tmp_path, "2.5.0", "replica", f"r{i}", vals, {"replica": p}) for i, p in enumerate(reps)]
    try:
        meta.start()
        wait_for("meta leads", lambda: get(meta_port, "/meta/cluster")[0] == 200)
        for n in nodes:
            n.start()
        wait_for("stat healthy", lambda: get(meta_port, "/meta/app?name=stat&detail")[1]["healthy"][
            "fully_healthy_partition_count"] == "4")
        assert get(meta_port, "/meta/cluster")[1]["meta_function_level"] == "steady"
        led = [p for p, r in get(meta_port, "/meta/app?name=stat&detail")[1]["replicas"].items()
               if r["primary"] == f"127.0.0.1:{reps[0]}"]
        assert led, "replica 0 leads no partition"
        nodes[0].stop(signal.SIGKILL)
        wait_for("2 ALIVE", lambda: alive(meta_port, 2), timeout=15)
        time.sleep(2)  # several guardian rounds
        assert get(meta_port, "/meta/cluster")[1]["meta_function_level"] == "freezed"
        replicas = get(meta_port, "/meta/app?name=stat&detail")[1]["replicas"]
        assert all(replicas[p]["primary"] == "-" for p in led), replicas
    finally:
        meta.stop()
        for n in nodes:
            n.stop()


def test_a_new_leader_drops_the_replicas_of_a_server_restarted_since_no_leader_answered_it(
        tmp_path, zookeeper_server, cluster_name):
    # The real ReplicaServer tells the MetaServer its replicas are inactive after a restart (its
    # config sync); one restarted long before a leader change has nothing to tell the new leader.
    metas, reps = [free_port(), free_port()], [free_port() for _ in range(3)]
    vals = values(cluster_name, zookeeper_server.hosts, metas)
    over = {"meta_server/min_live_node_count_for_unfreeze": "2", "meta_server/replica_assign_delay_ms_for_dropouts": "0"}
    nodes = [Node(tmp_path, "2.5.0", "meta", f"m{i}", vals, {"meta": p}, **over) for i, p in enumerate(metas)]
    nodes += [Node(tmp_path, "2.5.0", "replica", f"r{i}", vals, {"replica": p}, **over) for i, p in enumerate(reps)]
    fully_healthy = lambda port: get(port, "/meta/app?name=stat&detail")[1]["healthy"][  # noqa: E731
        "fully_healthy_partition_count"] == "4"
    try:
        nodes[0].start()
        wait_for("meta 0 to lead", lambda: get(metas[0], "/meta/cluster")[0] == 200)
        for n in nodes[1:]:
            n.start()
        wait_for("stat healthy", lambda: fully_healthy(metas[0]))
        # The follower heard from each ReplicaServer before its restart (beacons go to either
        # MetaServer); after it, each one's beacons may reach the leader only (half of the time).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for port in reps:
                sock.sendto(json.dumps({"t": "ping", "from": f"127.0.0.1:{port}", "to": f"127.0.0.1:{metas[1]}",
                                        "time": 1, "start_time": 1, "fresh": False}).encode(), ("127.0.0.1", metas[1]))
            time.sleep(0.5)
        for i, replica in enumerate(nodes[2:]):
            replica.stop()
            replica.start()
            wait_for(f"meta 0 to see r{i} restarted",
                     lambda: f"worker 127.0.0.1:{reps[i]} restarted" in nodes[0].log_text())
            wait_for("stat healthy again", lambda: fully_healthy(metas[0]), timeout=20)
        nodes[0].stop()
        wait_for("meta 1 to lead", lambda: "became the leader" in nodes[1].log_text())
        time.sleep(4)  # several beacons of every ReplicaServer to the new leader
        assert "restarted: its replicas" not in nodes[1].log_text()
        assert fully_healthy(metas[1])
        # A restart under the new leader is still seen.
        nodes[3].stop()
        nodes[3].start()
        wait_for("meta 1 to see r1 restarted", lambda: f"worker 127.0.0.1:{reps[1]} restarted" in nodes[1].log_text())
    finally:
        for n in nodes:
            n.stop()
