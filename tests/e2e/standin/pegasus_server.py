#!/usr/bin/env python3
"""pegasus_server stand-in: a test double of pegasus_server; the real binary cannot be built here.

The package builder ships this file as `bin/pegasus_server`. It is as strict as the
real server about how it is started and about its config.ini, and it does just
enough of each role for deployment checks to mean something:

  meta       contends for leadership in ZooKeeper, creates the declared default
             tables, answers /meta/cluster, /meta/nodes, /meta/apps on port 34601
             (non-leaders redirect to the leader) and takes replica beacons;
  replica    listens on 34801, writes a file into every data dir, beacons to a meta;
  collector  listens on 34101 and polls /meta/cluster.

Usage: cd <bin> && LD_LIBRARY_PATH=<bin> ./pegasus_server <config.ini> -app_list <role>
Python 3.11 standard library plus kazoo only: it runs on bare test machines.
"""

from __future__ import annotations

import configparser
import fcntl
import http.client
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ROLE_PORTS = {"meta": 34601, "replica": 34801, "collector": 34101}
LIBRARY = "libpegasus_standin.so"  # stands for the shared libraries the package ships in bin/
SYSTEM_LIBRARY_DIRS = ["/lib", "/usr/lib", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                       "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"]
NODE_ALIVE_SECONDS = 6.0
PRIVATE_NETWORKS = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
IPV4_PORT = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$")
HOST_PORT = re.compile(r"^([A-Za-z0-9.-]+):(\d{1,5})$")

log = logging.getLogger("pegasus_server")


class Refusal(Exception):
    """A reason not to start; the message says what is wrong and where."""


# ---------------------------------------------------------------- start-up checks

def check_invocation(argv: list[str]) -> tuple[str, str]:
    """Return (config path, role); refuse any other command line or environment."""
    if len(argv) != 3 or argv[1] != "-app_list" or argv[2] not in ROLE_PORTS:
        raise Refusal(f"usage: pegasus_server <config.ini> -app_list meta|replica|collector (got {argv!r})")
    bin_dir = os.path.dirname(os.path.realpath(__file__))
    if os.path.realpath(os.getcwd()) != bin_dir:
        raise Refusal(f"must run from its bin directory {bin_dir} (working directory is {os.getcwd()})")
    entries = [e for e in os.environ.get("LD_LIBRARY_PATH", "").split(":") if e]
    if not any(os.path.realpath(e) == bin_dir for e in entries) or not os.path.isfile(os.path.join(bin_dir, LIBRARY)):
        raise Refusal(f"error while loading shared libraries: {LIBRARY}: cannot open shared object file; "
                      f"LD_LIBRARY_PATH must contain {bin_dir} (it is {os.environ.get('LD_LIBRARY_PATH', '')!r})")
    # Like the dynamic loader: every library the binary needs from outside the
    # package (NEEDED stands for its ELF header; 2.4+ needs libjvm.so) must be in
    # a directory of LD_LIBRARY_PATH or the system's library path.
    for library in needed_libraries(bin_dir):
        if not any(os.path.isfile(os.path.join(d, library)) for d in entries + SYSTEM_LIBRARY_DIRS):
            raise Refusal(f"error while loading shared libraries: {library}: cannot open shared object file: "
                          f"No such file or directory (LD_LIBRARY_PATH is {os.environ.get('LD_LIBRARY_PATH', '')!r})")
    return argv[0], argv[2]


def needed_libraries(bin_dir: str) -> list[str]:
    try:
        with open(os.path.join(bin_dir, "NEEDED"), encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def read_config(path: str) -> configparser.ConfigParser:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise Refusal(f"cannot read config file {path}: {e.strerror}") from e
    for number, line in enumerate(text.splitlines(), start=1):
        if "%{" in line:
            raise Refusal(f"{path} line {number} still holds an unreplaced variable: {line.strip()}")
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"),
                                       inline_comment_prefixes=None, empty_lines_in_values=False, strict=True)
    parser.optionxform = str  # keys are case-sensitive, as in the real server
    try:
        parser.read_string(text, source=path)
    except configparser.Error as e:
        raise Refusal(f"{path} is not a valid ini file: {e}") from e
    return parser


def value(config: configparser.ConfigParser, section: str, key: str) -> str:
    if not config.has_option(section, key):
        raise Refusal(f"config.ini has no [{section}] {key}")
    return config.get(section, key).strip()


def parse_list(text: str, pattern: re.Pattern, where: str, what: str) -> list[str]:
    entries = [e.strip() for e in text.split(",") if e.strip()]
    if not entries:
        raise Refusal(f"{where} is empty; it must list {what}")
    for entry in entries:
        match = pattern.match(entry)
        if not match or not 0 < int(match.group(2)) < 65536:
            raise Refusal(f"{where} entry {entry!r} is not {what}")
        if pattern is IPV4_PORT:
            try:
                ipaddress.IPv4Address(match.group(1))
            except ValueError as e:
                raise Refusal(f"{where} entry {entry!r} is not {what}") from e
    return entries


def parse_data_dirs(text: str) -> list[tuple[str, str]]:
    dirs = []
    for entry in (e.strip() for e in text.split(",") if e.strip()):
        name, sep, path = entry.partition(":")
        if not sep or not name or not path.startswith("/"):
            raise Refusal(f"[replication] data_dirs entry {entry!r} is not name:/absolute/path")
        dirs.append((name, path))
    if not dirs:
        raise Refusal("[replication] data_dirs is empty; it must list name:/path entries")
    return dirs


def check_common(config: configparser.ConfigParser) -> dict:
    facts = {
        "meta_servers": parse_list(value(config, "meta_server", "server_list"), IPV4_PORT,
                                   "[meta_server] server_list", "an IPv4 address:port (host names are refused)"),
        "zookeeper": parse_list(value(config, "zookeeper", "hosts_list"), HOST_PORT,
                                "[zookeeper] hosts_list", "host:port"),
        "cluster_root": value(config, "meta_server", "cluster_root"),
    }
    if not facts["cluster_root"].startswith("/"):
        raise Refusal(f"[meta_server] cluster_root {facts['cluster_root']!r} is not an absolute ZooKeeper path")
    workers = config.get("network", "io_service_worker_count", fallback="1").strip()
    if not workers.isdigit() or int(workers) < 1:
        raise Refusal(f"[network] io_service_worker_count {workers!r} is not a positive integer")
    return facts


def check_meta(config: configparser.ConfigParser) -> dict:
    lock_path = value(config, "meta_server", "distributed_lock_service_parameters")
    if not lock_path.startswith("/"):
        raise Refusal(f"[meta_server] distributed_lock_service_parameters {lock_path!r} is not an absolute path")
    tables = []
    for section in config.sections():
        if section.startswith("meta_server.apps."):
            name = value(config, section, "app_name")
            counts = {k: config.get(section, k, fallback="").strip() for k in ("partition_count", "max_replica_count")}
            for key, text in counts.items():
                if not text.isdigit() or int(text) < 1:
                    raise Refusal(f"[{section}] {key} {text!r} is not a positive integer")
            tables.append({"app_name": name, **{k: int(v) for k, v in counts.items()}})
    return {"lock_path": lock_path, "tables": tables}


def prepare_replica_dirs(config: configparser.ConfigParser) -> None:
    data_dirs = parse_data_dirs(value(config, "replication", "data_dirs"))
    for name, path in data_dirs:  # check them all before writing to any
        if not os.path.isdir(path):
            raise Refusal(f"data dir {name}:{path} of [replication] data_dirs does not exist; mount or create it first")
        if not os.access(path, os.W_OK):
            raise Refusal(f"data dir {name}:{path} of [replication] data_dirs is not writable")
    for name, path in data_dirs:
        with open(os.path.join(path, f"standin-replica.{os.getpid()}"), "w", encoding="utf-8") as f:
            f.write(f"written by the pegasus_server stand-in, pid {os.getpid()}\n")
        log.info("data dir %s:%s ready", name, path)
    if config.has_option("replication", "slog_dir"):
        slog = config.get("replication", "slog_dir").strip()
        if slog:  # empty means "under data_dir", as in the real server
            if not slog.startswith("/"):
                raise Refusal(f"[replication] slog_dir {slog!r} is not an absolute path")
            try:
                os.makedirs(slog, exist_ok=True)
            except OSError as e:
                raise Refusal(f"[replication] slog_dir {slog} cannot be created: {e.strerror}") from e
            log.info("slog dir %s ready", slog)


# ---------------------------------------------------------------- binding address

def interface_ipv4(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            answer = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])


def is_loopback(name: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            answer = fcntl.ioctl(s.fileno(), 0x8913, struct.pack("256s", name.encode()[:15]))  # SIOCGIFFLAGS
        except OSError:
            return True  # gone since it was listed: never a candidate
    return bool(struct.unpack("H", answer[16:18])[0] & 0x8)  # IFF_LOOPBACK


def binding_address(config: configparser.ConfigParser) -> str:
    named = config.get("network", "primary_interface", fallback="").strip()
    if named:  # an interface named explicitly is used as is, loopback included
        address = interface_ipv4(named)
        if address is None:
            raise Refusal(f"[network] primary_interface {named!r} has no IPv4 address on this host")
        return address
    seen = []
    # Like the real server: the kernel's order, no loopback, no Docker bridge
    # (a name with "docker", or Docker's old default 172.17.42.1).
    for _, name in sorted(socket.if_nameindex()):
        address = interface_ipv4(name)
        if address is None or is_loopback(name) or "docker" in name or address == "172.17.42.1":
            continue
        seen.append(f"{name}={address}")
        if any(ipaddress.IPv4Address(address) in net for net in PRIVATE_NETWORKS):
            return address
    raise Refusal("[network] primary_interface is empty and no interface has a private IPv4 address "
                  f"(10/8, 172.16/12, 192.168/16); seen: {', '.join(seen) or 'none'}; name the interface to use")


def listen(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as e:
        sock.close()
        raise Refusal(f"cannot listen on {address}:{port}: {e.strerror}; is another server running?") from e
    sock.listen(64)
    return sock


def accept_and_close(sock: socket.socket) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return  # socket closed at shutdown
        conn.close()


def request(method: str, address: str, path: str, body: dict | None = None, hops: int = 3) -> dict:
    """HTTP request to a meta that follows redirects (for POST too, as the real client does)."""
    for _ in range(hops + 1):
        host, port = address.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=2)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            if response.status in (301, 302, 307):
                address = urlsplit(response.getheader("Location", "")).netloc
                continue
            if response.status != 200:
                raise OSError(f"HTTP {response.status} from {address}{path}")
            return {"answered_by": address, "body": json.loads(payload or b"{}")}
        finally:
            conn.close()
    raise OSError(f"too many redirects from {path}")


def first_answer(metas: list[str], method: str, path: str, body: dict | None = None) -> str:
    errors = []
    for meta in metas:
        try:
            return f"{path} answered by {request(method, meta, path, body)['answered_by']}"
        except (OSError, ValueError, http.client.HTTPException) as e:
            errors.append(f"{meta}: {e}")
    return f"no meta server answered {path} ({'; '.join(errors)})"


def poll(stop: threading.Event, interval: float, attempt) -> None:
    """Call attempt() every interval seconds; log only when its result changes."""
    last = None
    while not stop.is_set():
        result = attempt()
        if result != last:
            log.info("%s", result)
            last = result
        stop.wait(interval)


# ---------------------------------------------------------------- meta server

class Meta:
    def __init__(self, facts: dict, address: str, stop: threading.Event):
        from kazoo.client import KazooClient, KazooState  # only the meta needs ZooKeeper
        self.facts, self.address, self.stop = facts, address, stop
        self.nodes: dict[str, float] = {}
        self.nodes_lock = threading.Lock()
        self.is_leader = False
        self.election = None
        self.zk = KazooClient(hosts=",".join(facts["zookeeper"]), timeout=10)

        def on_state(state):
            log.info("ZooKeeper connection state: %s", state)
            if state == KazooState.LOST and not stop.is_set():  # the real meta exits when its session expires
                log.error("ZooKeeper session lost; exiting")
                stop.exit_code = 1
                stop.set()
        self.zk.add_listener(on_state)

    def start(self) -> None:
        facts = self.facts
        try:
            self.zk.start(timeout=20)
        except Exception as e:  # kazoo raises its own timeout type
            self.zk.stop()
            raise Refusal(f"cannot reach ZooKeeper [zookeeper] hosts_list {','.join(facts['zookeeper'])}: {e}") from e
        self.zk.ensure_path(facts["cluster_root"])
        self.zk.ensure_path(facts["lock_path"])
        # Each contender is an ephemeral node under the lock path holding its address;
        # the first one holds the lock, so every meta can tell who leads.
        self.election = self.zk.Election(facts["lock_path"], identifier=self.address)
        threading.Thread(target=self.election.run, args=(self.lead,), daemon=True).start()

    def lead(self) -> None:
        log.info("became the leader meta server at %s", self.address)
        apps = f"{self.facts['cluster_root']}/apps"
        self.zk.ensure_path(apps)
        for table in self.facts["tables"]:
            path = f"{apps}/{table['app_name']}"
            if not self.zk.exists(path):
                app_id = len(self.zk.get_children(apps)) + 1
                self.zk.create(path, json.dumps({**table, "app_id": app_id, "status": "AVAILABLE"}).encode())
                log.info("created default table %s (app_id %d)", table["app_name"], app_id)
        self.is_leader = True
        self.stop.wait()

    def leader(self) -> str | None:
        if self.is_leader:
            return self.address
        contenders = self.election.contenders()
        return contenders[0] if contenders else None

    def cluster(self) -> dict:
        return {"meta_servers": ",".join(self.facts["meta_servers"]), "primary_meta_server": self.address,
                "zookeeper_hosts": ",".join(self.facts["zookeeper"]), "zookeeper_root": self.facts["cluster_root"]}

    def node_table(self) -> dict:
        now = time.monotonic()
        with self.nodes_lock:
            details = {a: {"address": a, "status": "ALIVE" if now - t < NODE_ALIVE_SECONDS else "UNALIVE"}
                       for a, t in sorted(self.nodes.items())}
        alive = sum(1 for d in details.values() if d["status"] == "ALIVE")
        return {"details": details, "summary": {"total_node_count": len(details), "alive_node_count": alive,
                                                "unalive_node_count": len(details) - alive}}

    def apps(self) -> dict:
        root, info = f"{self.facts['cluster_root']}/apps", {}
        for child in sorted(self.zk.get_children(root)) if self.zk.exists(root) else []:
            app = json.loads(self.zk.get(f"{root}/{child}")[0] or b"{}")
            info[str(app.get("app_id"))] = {k: app.get(k) for k in ("app_name", "app_id", "partition_count", "status")}
        return {"general_info": info}

    def beacon(self, body) -> None:
        address = str(body.get("address", "")) if isinstance(body, dict) else ""
        if not IPV4_PORT.match(address):
            raise ValueError(f"beacon address {address!r} is not ip:port")
        with self.nodes_lock:
            if address not in self.nodes:
                log.info("replica server %s reported for the first time", address)
            self.nodes[address] = time.monotonic()

    def handler(self):
        meta = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # beacons every second: keep them out of the log
                log.debug("http %s", fmt % args)

            def reply(self, status: int, body: dict | None = None, location: str | None = None) -> None:
                data = json.dumps(body if body is not None else {}).encode()
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def redirected(self) -> bool:
                """Answer non-leader requests with a redirect to the leader."""
                if meta.is_leader:
                    return False
                leader = meta.leader()
                if leader and leader != meta.address:
                    self.reply(302, {"leader": leader}, location=f"http://{leader}{self.path}")
                else:
                    self.reply(503, {"error": "no leader meta server yet"})
                return True

            def do_GET(self):
                pages = {"/meta/cluster": meta.cluster, "/meta/nodes": meta.node_table, "/meta/apps": meta.apps}
                if self.path not in pages:
                    self.reply(404, {"error": f"unknown path {self.path}"})
                elif not self.redirected():
                    self.reply(200, pages[self.path]())

            def do_POST(self):
                if self.path != "/meta/beacon":
                    self.reply(404, {"error": f"unknown path {self.path}"})
                elif not self.redirected():
                    try:
                        meta.beacon(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                    except ValueError as e:
                        self.reply(400, {"error": str(e)})
                        return
                    self.reply(200, {"status": "ok"})

        return Handler

    def close(self) -> None:
        if self.election is not None:
            self.election.cancel()
        self.zk.stop()
        self.zk.close()


# ---------------------------------------------------------------- main

def setup_log(config: configparser.ConfigParser) -> None:
    """Log to <data_dir>/log/pegasus.log; errors also go to stderr (the journal)."""
    data_dir = value(config, "core", "data_dir")
    if not data_dir.startswith("/"):
        raise Refusal(f"[core] data_dir {data_dir!r} is not an absolute path")
    try:
        os.makedirs(os.path.join(data_dir, "log"), exist_ok=True)
        handler = logging.FileHandler(os.path.join(data_dir, "log", "pegasus.log"), encoding="utf-8")
    except OSError as e:
        raise Refusal(f"cannot write logs under [core] data_dir {data_dir}: {e.strerror}") from e
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(message)s"))
    log.addHandler(handler)
    errors = logging.StreamHandler(sys.stderr)
    errors.setLevel(logging.WARNING)
    errors.setFormatter(logging.Formatter("pegasus_server: %(message)s"))
    log.addHandler(errors)
    log.setLevel(logging.INFO)


def run(argv: list[str]) -> int:
    config_path, role = check_invocation(argv)
    config = read_config(config_path)
    setup_log(config)
    facts = check_common(config)
    if role == "meta":
        facts.update(check_meta(config))
    address = binding_address(config)
    if role == "replica":
        prepare_replica_dirs(config)
    port = ROLE_PORTS[role]
    endpoint = f"{address}:{port}"
    log.info("pegasus_server stand-in starting: role=%s address=%s cluster_root=%s meta_servers=%s "
             "zookeeper=%s pid=%d", role, endpoint, facts["cluster_root"], ",".join(facts["meta_servers"]),
             ",".join(facts["zookeeper"]), os.getpid())

    stop = threading.Event()
    stop.exit_code = 0

    def on_signal(number, _frame):
        log.info("received %s, shutting down", signal.Signals(number).name)
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    closers = []
    if role == "meta":
        meta = Meta(facts, endpoint, stop)
        try:  # bind before ZooKeeper so that a busy port is reported at once
            server = ThreadingHTTPServer((address, port), meta.handler())
        except OSError as e:
            raise Refusal(f"cannot listen on {endpoint}: {e.strerror}; is another server running?") from e
        server.daemon_threads = True
        closers += [server.shutdown, server.server_close, meta.close]
        meta.start()
        threading.Thread(target=server.serve_forever, daemon=True).start()
    else:
        sock = listen(address, port)
        closers.append(sock.close)
        threading.Thread(target=accept_and_close, args=(sock,), daemon=True).start()
        if role == "replica":  # beacon every second, as replicas report to the meta
            interval, attempt = 1.0, partial(first_answer, facts["meta_servers"], "POST", "/meta/beacon",
                                             {"address": endpoint})
        else:
            interval, attempt = 2.0, partial(first_answer, facts["meta_servers"], "GET", "/meta/cluster")
        threading.Thread(target=poll, args=(stop, interval, attempt), daemon=True).start()
    log.info("%s server ready on %s", role, endpoint)

    while not stop.wait(0.5):
        pass
    for close in closers:
        close()
    log.info("%s server stopped (exit code %d)", role, stop.exit_code)
    return stop.exit_code


def main() -> int:
    try:
        return run(sys.argv[1:])
    except Refusal as e:
        if log.handlers:  # the log file and stderr
            log.error("refusing to start: %s", e)
        else:
            print(f"pegasus_server: refusing to start: {e}", file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 - an unexpected failure must still reach the log
        log.exception("unexpected failure")
        if not log.handlers:
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
