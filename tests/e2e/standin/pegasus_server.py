#!/usr/bin/env python3
"""pegasus_server stand-in: a test double of pegasus_server; the real binary cannot be built here.

The package builder ships this file as `bin/pegasus_server` and stamps RELEASE and
GIT_COMMIT below with the package's version. It behaves per release as the real
server of apache/incubator-pegasus at v2.4.0, v2.5.0 and master (2.6); each modelled
behaviour names the upstream file and tag it comes from.

Usage (as the real one): pegasus_server <config.ini> -app_list meta|replica|collector
Python 3.11 standard library plus kazoo only: it runs on bare Debian 12 test machines.

HTTP, on each role's RPC port (`[apps.<role>] ports`), as meta_http_service.cpp and
output_utils.cpp (table_printer, kJsonCompact) write it. Every value is a JSON string.
NODE is "ip:port" up to 2.5 and "host:port" (reverse DNS name) on 2.6.

  /meta/nodes[?detail]  {"details": {NODE: {"address": NODE, "status": "ALIVE"|"UNALIVE"
                           [, "replica_count": "n", "primary_count": "n", "secondary_count": "n"]}},
                         "summary": {"total_node_count": "n", "alive_node_count": "n",
                                     "unalive_node_count": "n"}}
  /meta/cluster         {"meta_servers": "a,b", "primary_meta_server": NODE, "zookeeper_hosts": "...",
                         "zookeeper_root": "/pegasus/c", "meta_function_level": "steady",
                         "balance_operation_count": "total=0" (<=2.5) | "{\"total\":0}" (2.6),
                         "primary_replica_count_stddev": "0.00", "total_replica_count_stddev": "0.00"}
                        meta_servers: resolved "ip:port" up to 2.5, entries as configured on 2.6.
  /meta/apps[?detail]   {"general_info": {ID: {"app_id", "status": "AVAILABLE", "app_name", "app_type",
                           "partition_count", "replica_count", "is_stateful": "true", "create_time":
                           "YYYY-mm-dd HH:MM:SS", "drop_time": "-", "drop_expire": "-", "envs_count"}},
                         with detail and at least one table also
                         "healthy_info": {ID: {"app_id", "app_name", "partition_count", "fully_healthy",
                           "unhealthy", "write_unhealthy", "read_unhealthy"}},
                         "summary": {"total_app_count" [, "fully_healthy_app_count", "unhealthy_app_count",
                           "write_unhealthy_app_count", "read_unhealthy_app_count"]}}
  /meta/app?name=T[&detail]
                        {"general": {"app_name", "app_id", "partition_count", "max_replica_count"}
                         [, "replicas": {PIDX: {"pidx", "ballot", "replica_count": "2/3", "primary": NODE|"-",
                                                "secondaries": "[NODE,NODE]"}},
                            "nodes": {NODE: {"node", "primary", "secondary", "total"}, "total": {...}},
                            "healthy": {"fully_healthy_partition_count", "unhealthy_partition_count",
                                        "write_unhealthy_partition_count", "read_unhealthy_partition_count"}]}
                        unknown table: 404 `table not found: "T"`; unknown query argument: 400.
  /version              {"Version": RELEASE, "GitCommit": GIT_COMMIT}
  A MetaServer that does not lead answers every /meta/ path with 307 and
  Location: http://<leader>/<path>[?k=v&...] (redirect_if_not_primary).

Test-double endpoints (not Pegasus's) on the leading MetaServer's port, standing for
the RPCs the admin shell sends it (followers answer 307 as for /meta/); every answer
is {"err": "ERR_OK" | error name, ...}:
  /standin/control_meta?level=L      RPC_CM_CONTROL_META (meta_service.cpp on_control_meta_level):
                                     L stopped|blind|freezed|steady|lively, or invalid to only read;
                                     {"err", "old_level": "fl_<level>"}
  /standin/propose_balancer?gpid=A.P&actions=TYPE/TARGET/NODE[,...][&force=true]
                                     RPC_CM_PROPOSE_BALANCER (server_state.cpp on_propose_balancer,
                                     server_load_balancer.cpp register_proposals): queued for the
                                     partition; the guardian carries them out (see apply_proposals)
  /standin/remote_command?cmd=C[&arg=V...]
                                     RPC_CLI_CLI_CALL: {"err", "result": text}; the meta.lb.* commands
                                     of partition_guardian.cpp and server_state.cpp ("OK" up to 2.5,
                                     master's JSON answers on 2.6)
Test-double endpoints (not Pegasus's), on a ReplicaServer's port:
  /standin/remote_command?cmd=C[&arg=V...]
                                     RPC_CLI_CLI_CALL: replica.kill_partition, perf-counters (the
                                     replica_stub counts, up to 2.5), flush-log
  POST /standin/prepare, /standin/learn   replication between stand-ins (replica_data.py)
and on the leading MetaServer's, for the primaries:
  /standin/learner_ready, /standin/remove_secondary   (see Meta.learner_ready, remove_secondary)

Clients speak rDSN's thrift RPC on the same port (client_rpc.py: the MetaServer's
partition query and table creation, every rrdb RPC Apache's Python client sends).

Failure detection wire format (ours; upstream sends thrift over RPC_CHANNEL_UDP):
one JSON object per UDP datagram.
  ping  replica (from its replica port) -> meta port:
        {"t": "ping", "from": NODE, "to": "meta entry", "time": ms, "start_time": ms,
         "fresh": true until a leader has answered one of this process's pings}
  ack   meta -> the datagram's source address (the replica's port):
        {"t": "ack", "time": ms, "is_master": bool, "primary_node": "leader ip:port",
         "allowed": true, "config": {"T.P": {"role": "primary"|"secondary"|"learner", "ballot": n,
                                            "app_id": n, "pidx": n, "app_name": T, "replicas": n,
                                            "secondaries": [[ip, port]...],
                                            "learners": [[NODE, [ip, port]]...]}}}
"""

from __future__ import annotations

import fcntl
import http.client
import ipaddress
import json
import logging
import os
import random
import re
import signal
import socket
import statistics
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, quote, urlsplit

# Pegasus's client protocol, beside this file in the package (client_rpc.py says what it models).
if os.path.dirname(os.path.realpath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import client_rpc  # noqa: E402
import rrdb_store  # noqa: E402
from replica_data import ReplicaData  # noqa: E402

RELEASE = "2.5.0"  # stamped by tests/support/package_builder.py
GIT_COMMIT = "0000000"  # stamped by tests/support/package_builder.py

LIBRARY = "libpegasus_standin.so"  # stands for the shared libraries the package ships in bin/
SYSTEM_LIBRARY_DIRS = ["/lib", "/usr/lib", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                       "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"]
SITE_LOCAL = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
# How long a replica takes to close here (the real one flushes its memtables first:
# pegasus_server_impl.cpp stop(clear_state=false)).
CLOSE_SECONDS = 1.0

log = logging.getLogger("pegasus_server")


class Refusal(Exception):
    """A reason not to start (the real server aborts); the message names the cause."""


def release() -> tuple[int, int]:
    major, minor = RELEASE.split(".")[:2]
    return int(major), int(minor)


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------- config.ini, as rDSN reads it

class Config:
    """rDSN's parser (src/utils/configuration.cpp, all three tags):
    - lines end at `\\n` only; leading spaces, tabs and `\\r` are skipped; `;` or `#`
      anywhere starts a comment, unless escaped as `^;` / `^#`; names and values are
      trimmed of " \\t" in front and " \\t\\r\\n" behind (strings.cpp trim_string), nothing else;
    - `[name]` opens a section, a section defined twice is an error, a line with
      both `[` first and `=` is an error, a key before any section is an error;
    - a duplicate key keeps the first value (with a warning);
    - a line without `=` is a key with an empty value; a value `%...%` reads as empty.
    """

    def __init__(self, path: str):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            raise Refusal(f"ERROR: read file '{path}' failed, err = {e.strerror}") from e
        if not text:
            raise Refusal(f"ERROR: file '{path}' is empty")
        self.path = path
        self.sections: dict[str, dict[str, tuple[str, int]]] = {}
        self.warnings: list[str] = []
        current = None
        for number, raw in enumerate(text.split("\n"), start=1):
            line = self._strip_comment(raw.lstrip(" \t\r"))
            if not line:
                continue
            if line.startswith("[") and "=" in line:
                raise Refusal(f"ERROR: unexpected configuration in {path}(line {number}): {raw}")
            if line.startswith("["):
                if "]" not in line or not self._trim(line[1:line.index("]")]):
                    raise Refusal(f"ERROR: unexpected configuration in {path}(line {number}): {raw}")
                name = self._trim(line[1:line.index("]")])
                if name in self.sections:
                    raise Refusal(f"ERROR: configuration section '[{name}]' is redefined (line {number})")
                current = self.sections[name] = {}
                continue
            if current is None:
                raise Refusal(f"ERROR: configuration section not defined ({path} line {number})")
            key, sep, val = line.partition("=")
            key, val = self._trim(key), self._trim(val) if sep else ""
            if not key:
                raise Refusal(f"ERROR: unexpected configuration in {path}(line {number}): {raw}")
            if len(val) > 2 and val.startswith("%") and val.endswith("%"):
                val = ""
            if key in current:
                self.warnings.append(f"WARNING: skip redefinition of option {key} (line {number})")
                continue
            current[key] = (val, number)

    @staticmethod
    def _strip_comment(line: str) -> str:
        """A NUL ends the line as it ends rDSN's C string."""
        out = []
        for i, ch in enumerate(line):
            if ch in "#;":
                if out and out[-1] == "^":
                    out[-1] = ch
                    continue
                break
            out.append(ch)
        return "".join(out).split("\0", 1)[0]

    @staticmethod
    def _trim(text: str) -> str:
        """utils::trim_string (strings.cpp): " \\t" in front, " \\t\\r\\n" behind, nothing else."""
        return text.lstrip(" \t").rstrip(" \t\r\n")

    def has(self, section: str, key: str) -> bool:
        return key in self.sections.get(section, {})

    def get(self, section: str, key: str, default: str | None = None) -> str:
        if self.has(section, key):
            return self.sections[section][key][0]
        if default is None:
            raise Refusal(f"config.ini has no [{section}] {key}")
        return default

    def integer(self, section: str, key: str, default: int) -> int:
        text = self.get(section, key, str(default))
        try:
            return int(text)
        except ValueError as e:
            raise Refusal(f"[{section}] {key} = {text!r} is not an integer") from e

    def check_no_variables(self) -> None:
        # The server has no `%{...}` syntax: a leftover one reaches it as a literal and
        # fails where the value is parsed (addresses, paths); refused here at once.
        for section, keys in self.sections.items():
            for key, (val, number) in keys.items():
                if "%{" in val or "%{" in key:
                    raise Refusal(f"{self.path} line {number}: [{section}] {key} = {val} still holds an "
                                  "unreplaced %{...} variable")


# ---------------------------------------------------------------- start-up checks

def check_invocation(argv: list[str]) -> tuple[str, str]:
    """`pegasus_server <config> -app_list <role>`; the loader's view of LD_LIBRARY_PATH."""
    if len(argv) != 3 or argv[1] != "-app_list" or not argv[2]:
        raise Refusal(f"usage: pegasus_server <config.ini> -app_list meta|replica|collector (got {argv!r})")
    bin_dir = os.path.dirname(os.path.realpath(__file__))
    entries = [e for e in os.environ.get("LD_LIBRARY_PATH", "").split(":") if e]
    if not any(os.path.realpath(e) == bin_dir for e in entries) or not os.path.isfile(os.path.join(bin_dir, LIBRARY)):
        raise Refusal(f"error while loading shared libraries: {LIBRARY}: cannot open shared object file; "
                      f"LD_LIBRARY_PATH must contain {bin_dir} (it is {os.environ.get('LD_LIBRARY_PATH', '')!r})")
    # NEEDED stands for the ELF header: libraries wanted from outside the package (libjvm.so).
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


def split_list(text: str) -> list[str]:
    return [e.strip() for e in text.split(",") if e.strip()]


def resolve_host_port(entry: str, where: str) -> tuple[str, int]:
    """host:port -> (ipv4, port); host names are resolved as the real server does
    (rpc_address::ipv4_from_host / host_port::resolve, all tags)."""
    host, sep, port = entry.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise Refusal(f"{where}: {entry!r} is not host:port")
    try:
        return socket.gethostbyname(host), int(port)
    except OSError as e:
        raise Refusal(f"{where}: cannot resolve {host!r} of {entry!r}: {e}") from e


def interface_ipv4(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            answer = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])


def is_docker(name: str, address: str) -> bool:
    return "docker" in name or address == "172.17.42.1"


def local_ipv4(config: Config) -> str:
    """network::get_local_ipv4 (network.cpp, all tags): explicit_host_address, else the
    named primary_interface (rpc_address::ipv4_from_network_interface), else the first
    site-local non-docker address when it is empty; when that yields nothing, the
    address of gethostname() (a named interface that is missing falls back too)."""
    explicit = config.get("network", "explicit_host_address", "")
    if explicit:
        try:
            return socket.gethostbyname(explicit)
        except OSError:
            pass
    named = config.get("network", "primary_interface", "")
    if named:
        address = interface_ipv4(named)
        if address is not None:
            return address
        log.error("get ip address from network interface(%s) failed", named)
    else:
        for _, name in sorted(socket.if_nameindex()):
            address = interface_ipv4(name)
            if address and not is_docker(name, address) and any(
                    ipaddress.IPv4Address(address) in net for net in SITE_LOCAL):
                return address
        log.error("get ip address from network interface() failed")
    host = socket.gethostname()
    try:
        address = socket.gethostbyname(host)
    except OSError as e:
        raise Refusal(f"[network] primary_interface {named!r} gave no IPv4 address and ipv4_from_host for "
                      f"'{host}' failed: {e}") from e
    log.warning("using the address %s of host name %s", address, host)
    return address


def reverse_name(ip: str) -> str | None:
    try:
        return socket.getnameinfo((ip, 0), socket.NI_NAMEREQD)[0]
    except OSError:
        return None


def node_name(ip: str, port: int) -> str:
    """How a node is named: rpc_address "ip:port" up to 2.5; host_port "host:port" from
    2.6 (rpc_host_port.cpp, master: host_port::from_address, NI_NAMEREQD)."""
    if release() < (2, 6):
        return f"{ip}:{port}"
    host = reverse_name(ip)
    return f"{host}:{port}" if host else f"{ip}:{port}"


def role_port(config: Config, role: str) -> int:
    section = f"apps.{role}"
    if section not in config.sections:
        raise Refusal(f"-app_list {role}: config.ini has no [{section}] section")
    ports = split_list(config.get(section, "ports", ""))
    if not ports or not ports[0].isdigit():
        raise Refusal(f"[{section}] ports is not a port number")
    return int(ports[0])


def check_dir_rw(path: str) -> str | None:
    """utils::filesystem::check_dir_rw (src/utils/filesystem.cpp:925-955, v2.5.0): a file
    `read_write_test_file` created in the directory, written, read back and removed; the
    error message when any of it fails, else None."""
    test_file = os.path.join(path, "read_write_test_file")
    try:
        with open(test_file, "w", encoding="utf-8") as f:
            f.write("test_value")
    except OSError:
        return f"Fail to create test file {test_file}."
    try:
        with open(test_file, encoding="utf-8") as f:
            if f.read() != "test_value":
                return f"Fail to read file {test_file} or get wrong value."
    except OSError:
        return f"Fail to read file {test_file} or get wrong value."
    finally:
        try:
            os.remove(test_file)
        except OSError:
            pass
    return None


def prepare_replica_dirs(config: Config) -> list[str]:
    """data_dirs name:path entries, as fs_manager::initialize takes them (src/common/fs_manager.cpp:206-238,
    v2.5.0): each is created when missing and must pass check_dir_rw; one that does not is
    "broken" and ignored ([replication] ignore_broken_disk, true by default: fs_manager.cpp:68),
    its replicas not loaded. The real server goes on with no usable disk at all and places
    no replica; this one refuses to start then. The shared log's directory must be writable:
    replica_stub::initialize (replica_stub.cpp:616-625, 720-755) aborts when its log cannot
    be opened (run as a user without access to its directories, the server fails)."""
    dirs = []
    for entry in split_list(config.get("replication", "data_dirs")):
        name, sep, path = entry.partition(":")
        if not sep:
            name, path = "default", entry
        if not path.startswith("/"):
            raise Refusal(f"[replication] data_dirs entry {entry!r} is not name:/absolute/path")
        try:
            os.makedirs(path, exist_ok=True)
            problem = check_dir_rw(path)
        except OSError as e:
            problem = f"create dir {path} failed: {e.strerror}"
        if problem:
            log.error("data dir(%s) is broken, ignore it, error: %s", path, problem)
            continue
        try:
            os.makedirs(os.path.join(path, "reps"), exist_ok=True)
        except OSError as e:
            raise Refusal(f"[replication] data_dirs {name}:{path} cannot be created: {e.strerror}") from e
        dirs.append(path)
    if not split_list(config.get("replication", "data_dirs")):
        raise Refusal("[replication] data_dirs is empty")
    if not dirs:
        raise Refusal("no data dir of [replication] data_dirs is usable (each is broken: see the errors above)")
    if release() < (2, 6):
        slog = config.get("replication", "slog_dir", "")
        if slog:
            try:
                os.makedirs(slog, exist_ok=True)
            except OSError as e:
                raise Refusal(f"[replication] slog_dir {slog} cannot be created: {e.strerror}") from e
            problem = check_dir_rw(slog)
            if problem:
                raise Refusal(f"replay shared log failed: [replication] slog_dir {slog}: {problem}")
    return dirs


class FdOptions:
    """[replication] fd_* (replication_common.cpp) and [meta_server] restart throttling
    (meta_options.cpp at v2.4.0/v2.5.0, meta_server_failure_detector.cpp at master).
    Code defaults: check 2, beacon 3, lease 9, grace 10 up to 2.5 and 20/22 on master;
    the config.ini of every tag sets 2/3/20/22."""

    def __init__(self, config: Config):
        lease, grace = (9, 10) if release() < (2, 6) else (20, 22)
        self.check = config.integer("replication", "fd_check_interval_seconds", 2)
        self.beacon = config.integer("replication", "fd_beacon_interval_seconds", 3)
        self.lease = config.integer("replication", "fd_lease_seconds", lease)
        self.grace = config.integer("replication", "fd_grace_seconds", grace)
        self.stable_seconds = config.integer("meta_server", "stable_rs_min_running_seconds", 600)
        self.max_unstable = config.integer("meta_server", "max_succssive_unstable_restart", 5)
        if release() >= (2, 6) and not self.grace > self.lease:  # meta_service.cpp, replica_stub.cpp (master)
            raise Refusal(f"[replication] fd_grace_seconds ({self.grace}) must be greater than "
                          f"fd_lease_seconds ({self.lease})")


# ---------------------------------------------------------------- HTTP plumbing

class Handler(BaseHTTPRequestHandler):
    server_version = "pegasus_server_standin"
    role = None  # set per server

    def log_message(self, fmt, *args):
        log.debug("http %s", fmt % args)

    def send(self, status: int, body, location: str | None = None) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "application/json" if not isinstance(body, str) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        parts = urlsplit(self.path)
        args = parse_qsl(parts.query, keep_blank_values=True)
        try:
            if parts.path == "/version":
                self.send(200, {"Version": RELEASE, "GitCommit": GIT_COMMIT})
                return
            if parts.path == "/metrics" and getattr(self.role, "metrics_http", None):  # 2.6: standin_metrics.py
                status, body = self.role.metrics_http(args)
                self.send(status, body)
                return
            status, body, location = self.role.http(parts.path, args)
        except Exception as e:  # noqa: BLE001 - answer, log, keep serving
            log.exception("http %s", self.path)
            status, body, location = 500, str(e), None
        self.send(status, body, location)

    def do_POST(self):
        """Test-double endpoints between stand-in servers (replica_data.py)."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            post = getattr(self.role, "http_post", None)
            status, answer, location = post(urlsplit(self.path).path, body) if post else (404, "Not Found", None)
        except Exception as e:  # noqa: BLE001 - answer, log, keep serving
            log.exception("http POST %s", self.path)
            status, answer, location = 500, str(e), None
        self.send(status, answer, location)


def serve_http(port: int, role, rpc: client_rpc.RpcService) -> client_rpc.RpcPort:
    """The role's port: HTTP to `role`, thrift RPC to `rpc` (client_rpc.RpcPort)."""
    handler = type("RoleHandler", (Handler,), {"role": role})
    try:
        server = client_rpc.RpcPort(port, handler, rpc)
    except OSError as e:
        raise Refusal(f"cannot listen on port {port}: {e.strerror}; is another server running?") from e
    threading.Thread(target=server.serve_forever, daemon=True, name="http").start()
    return server


def udp_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("0.0.0.0", port))
    except OSError as e:
        sock.close()
        raise Refusal(f"cannot bind udp port {port}: {e.strerror}") from e
    return sock


def udp_messages(sock: socket.socket, kind: str, stop: threading.Event):
    """Yields (message, source) for each datagram of this wire format's `kind`
    ("ping" or "ack") until `stop` is set or the socket closes; others are dropped."""
    while not stop.is_set():
        try:
            data, source = sock.recvfrom(65536)
            message = json.loads(data)
        except OSError:
            return
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("t") == kind:
            yield message, source


def http_get(address: str, path: str, timeout: float = 2.0) -> tuple[int, object, str | None]:
    """(status, parsed JSON or text, Location header)."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        data = response.read()
        try:
            body: object = json.loads(data or b"null")
        except ValueError:
            body = data.decode(errors="replace")
        return response.status, body, response.getheader("Location")
    finally:
        conn.close()


def http_json(address: str, path: str, timeout: float = 2.0) -> tuple[int, object]:
    status, body, _ = http_get(address, path, timeout)
    return status, body


# ---------------------------------------------------------------- remote commands (command_manager)

def int_command(name: str, args: list[str], value: int, default: int, valid) -> tuple[str, int | None]:
    """An integer setting's answer and its new value (None: unchanged). Up to 2.5 the meta's
    own handlers (partition_guardian.cpp, server_state.cpp at v2.5.0) answer "OK", the value,
    or "ERR: invalid arguments"; master's command_manager::set_int (utils/command_manager.h)
    answers JSON (nlohmann dump(2)) and accepts any value >= 0."""
    if release() < (2, 6):
        if not args:
            return str(value), None
        if args[0] == "DEFAULT":
            return "OK", default
        if not args[0].isdigit() or not valid(int(args[0])):
            return "ERR: invalid arguments", None
        return "OK", int(args[0])
    msg: dict[str, object] = {"error": "ok"}
    new = None
    if not args:
        msg[name] = str(value)
    elif len(args) > 1:
        msg["error"] = f"ERR: invalid arguments '{' '.join(args)}', only one argument is acceptable"
    elif args[0].lower() == "default":
        msg[name] = new = default
    elif not args[0].isdigit() or int(args[0]) > 2**63 - 1:
        msg["error"] = f"ERR: invalid argument '{args[0]}', the value is not acceptable"
    else:
        new = int(args[0])
    return json.dumps(msg, indent=2, sort_keys=True), new


def bool_command(name: str, args: list[str], value: bool) -> tuple[str, bool | None]:
    """A boolean setting (v2.5.0 remote_command_set_bool_flag; master command_manager::set_bool)."""
    if release() < (2, 6):
        if not args:
            return "true" if value else "false", None
        if args[0] not in ("true", "false"):
            return "ERR: invalid arguments", None
        return "OK", args[0] == "true"
    msg: dict[str, object] = {"error": "ok"}
    new = None
    if not args:
        msg[name] = "true" if value else "false"
    elif len(args) > 1:
        msg["error"] = "ERR: invalid arguments, only one boolean argument is acceptable"
    elif args[0].lower() not in ("true", "false"):  # buf2bool, ignoring case
        msg["error"] = f"ERR: invalid arguments, '{args[0]}' is not a boolean"
    else:
        new = args[0].lower() == "true"
    return json.dumps(msg, indent=2, sort_keys=True), new


def atoi(text: str) -> int:
    """C's atoi: an optional sign and the leading digits, 0 without any."""
    digits = text.lstrip(" \t")
    sign = -1 if digits[:1] == "-" else 1
    digits = digits[1:] if digits[:1] in "+-" and digits else digits
    number = ""
    for ch in digits:
        if not ch.isdigit():
            break
        number += ch
    return sign * int(number) if number else 0


def basic_regex(pattern: str) -> "re.Pattern[str]":
    """A POSIX basic regular expression (std::regex_constants::basic) as Python's: `(`, `)`,
    `{`, `}`, `|`, `+` and `?` are literals, `\\(`...`\\)` groups."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1] if pattern[i + 1] in "(){}" else re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(re.escape(ch) if ch in "(){}|+?" else ch)
        i += 1
    return re.compile("".join(out))


def perf_counters_answer(snapshot: tuple[int, dict[str, int]], args: list[str]) -> str:
    """`perf-counters [regexp]...` (perf_counters.cpp list_snapshot_by_regexp, v2.5.0): the
    snapshot's counters whose full name matches one of the expressions. Only the replica
    counts of replica_stub.cpp are kept here; master keeps those as metrics (replica_stub.cpp
    METRIC_DEFINE_gauge_int64 total_replicas...), so there the command lists none of them."""
    taken, counts = snapshot
    counters = [] if release() >= (2, 6) else [
        {"name": f"replica*eon.replica_stub*{name}", "type": "NUMBER", "value": float(value)}
        for name, value in counts.items()]
    info: dict[str, object] = {"result": "OK", "timestamp": taken,
                               "timestamp_str": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(taken)),
                               "counters": []}
    patterns = []
    for arg in args:
        try:
            patterns.append(basic_regex(arg))
        except re.error:
            info["result"] = f"ERROR: invalid filter: {arg}"
            return json.dumps(info, separators=(",", ":"))
    info["counters"] = [c for c in counters if not patterns or any(p.fullmatch(str(c["name"])) for p in patterns)]
    return json.dumps(info, separators=(",", ":"))


# ---------------------------------------------------------------- meta server

def health(part: dict) -> tuple[int, bool, bool, bool]:
    """(replica count, fully healthy, write unhealthy, read unhealthy), as meta_http_service.cpp."""
    count = (1 if part["primary"] else 0) + len(part["secondaries"])
    if part["primary"]:
        return count, count >= part["max_replica_count"], count < 2 and count < part["max_replica_count"], False
    return count, False, True, True


class Meta:
    def __init__(self, config: Config, ip: str, port: int, stop: threading.Event):
        from kazoo.client import KazooClient, KazooState
        self.config, self.stop = config, stop
        self.port, self.ip = port, ip
        self.me = node_name(ip, port)
        self.fd = FdOptions(config)
        self.root = config.get("meta_server", "cluster_root")
        self.lock_path = config.get("meta_server", "distributed_lock_service_parameters")
        self.server_list = split_list(config.get("meta_server", "server_list"))
        self.resolved = [resolve_host_port(e, "[meta_server] server_list") for e in self.server_list]
        self.zk_hosts = config.get("zookeeper", "hosts_list")
        self.min_live = config.integer("meta_server", "min_live_node_count_for_unfreeze", 3)
        # meta_service.cpp (v2.5.0, master): 65 in the code, 50 in every release's config.ini
        self.live_percentage = config.integer("meta_server", "node_live_percentage_threshold_for_update", 65)
        self.assign_delay = config.integer("meta_server", "replica_assign_delay_ms_for_dropouts", 600000) / 1000
        self.level = config.get("meta_server", "meta_function_level_on_start", "steady")
        # server_state.cpp (v2.5.0): the add-secondary limit counts only with flow control on.
        self.flow_control = config.get("meta_server", "add_secondary_enable_flow_control", "false") == "true"
        self.add_secondary_max = config.integer("meta_server", "add_secondary_max_count_for_one_node", 10)
        self.proposals: dict[tuple[int, int], list[tuple[str, str, str]]] = {}  # (app_id, pidx) -> actions
        self.sock: socket.socket | None = None
        self.tables = self.default_tables(config)
        self.lock = threading.RLock()
        self.workers: dict[str, dict] = {}  # node -> {last_recv, alive, addr}
        self.stability: dict[str, dict] = {}  # node -> {start, unstable}
        self.handled_start: dict[str, object] = {}  # node -> the start_time whose restart this leader handled
        self.apps: dict[str, dict] = {}  # leader's view, persisted in ZooKeeper
        self.is_leader = False
        self.disconnections = 0  # meta_service.cpp set_node_state: replica_server_disconnections
        self.election = None
        self.zk = KazooClient(hosts=self.zk_hosts, timeout=config.integer("zookeeper", "timeout_ms", 10000) / 1000)

        def on_state(state):
            log.info("ZooKeeper connection state: %s", state)
            if state == KazooState.LOST and not stop.is_set():
                log.error("ZooKeeper session expired; exiting")
                stop.exit_code = 1
                stop.set()
        self.zk.add_listener(on_state)

    @staticmethod
    def default_tables(config: Config) -> list[dict]:
        """[meta_server.apps.*] sections (meta_options.cpp / server_state.cpp): the
        tables the leader creates at its first start."""
        tables = []
        for section in config.sections:
            if section.startswith("meta_server.apps."):
                tables.append({"app_name": config.get(section, "app_name"),
                               "app_type": config.get(section, "app_type", "pegasus"),
                               "partition_count": config.integer(section, "partition_count", 1),
                               "max_replica_count": config.integer(section, "max_replica_count", 3),
                               "is_stateful": config.get(section, "stateful", "true") == "true"})
        return tables

    def start(self) -> None:
        zoo_log = self.config.get("zookeeper", "logfile", "zoo.log")
        try:  # relative to the working directory, like the real ZooKeeper C client's log
            handler = logging.FileHandler(zoo_log, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s:%(levelname)s:%(message)s"))
            logging.getLogger("kazoo").addHandler(handler)
            logging.getLogger("kazoo").setLevel(logging.INFO)
        except OSError as e:
            raise Refusal(f"cannot open [zookeeper] logfile {zoo_log} in {os.getcwd()}: {e.strerror}") from e
        try:
            self.zk.start(timeout=20)
        except Exception as e:  # noqa: BLE001 - kazoo raises its own timeout type
            self.zk.stop()
            raise Refusal(f"cannot reach ZooKeeper [zookeeper] hosts_list {self.zk_hosts}: {e}") from e
        self.zk.ensure_path(self.root)
        self.zk.ensure_path(self.lock_path)
        self.election = self.zk.Election(self.lock_path, identifier=self.me)
        threading.Thread(target=self.election.run, args=(self.lead,), daemon=True, name="election").start()
        threading.Thread(target=self.check_loop, daemon=True, name="fd-check").start()

    # -- leadership and state in ZooKeeper
    def lead(self) -> None:
        log.info("became the leader meta server at %s", self.me)
        apps_path = f"{self.root}/apps"
        self.zk.ensure_path(apps_path)
        with self.lock:
            for child in self.zk.get_children(apps_path):
                self.apps[child] = json.loads(self.zk.get(f"{apps_path}/{child}")[0])
                for part in self.apps[child]["partitions"]:
                    part["learners"] = list(part.get("learners") or [])
            for table in self.tables:
                if table["app_name"] not in self.apps:
                    app = self.new_app(table)
                    log.info("created default table %s (app_id %d)", table["app_name"], app["app_id"])
            # Nodes named in the partition configs a new leader loads get one grace
            # period to beacon before they are declared dead.
            for app in self.apps.values():
                for part in app["partitions"]:
                    for node in [part["primary"], *part["secondaries"]]:
                        if node and node not in self.workers:
                            self.workers[node] = {"last_recv": time.monotonic(), "alive": True, "addr": None}
            self.is_leader = True
        threading.Thread(target=self.guardian_loop, daemon=True, name="guardian").start()
        self.stop.wait()

    def new_app(self, table: dict, envs: dict | None = None) -> dict:
        """A new table, its partitions without replicas yet (with the lock held)."""
        app_id = max((a["app_id"] for a in self.apps.values()), default=0) + 1
        app = {**table, "app_id": app_id, "create_second": int(time.time()), "envs": envs or {},
               "partitions": [{"pidx": i, "ballot": 0, "primary": "", "secondaries": [], "learners": [],
                               "max_replica_count": table["max_replica_count"], "dropped": {}}
                              for i in range(table["partition_count"])]}
        self.apps[table["app_name"]] = app
        self.save(app)
        return app

    release = staticmethod(release)

    def node_address(self, node: str) -> tuple[str, int]:
        """Where a node is reached: the address its beacons come from, else its name resolved."""
        addr = (self.workers.get(node) or {}).get("addr")
        if addr:
            return addr[0], int(addr[1])
        try:
            return resolve_host_port(node, "node")
        except Refusal:
            return "", 0

    def save(self, app: dict) -> None:
        path = f"{self.root}/apps/{app['app_name']}"
        data = json.dumps(app).encode()
        if self.zk.exists(path):
            self.zk.set(path, data)
        else:
            self.zk.create(path, data, makepath=True)

    def leader(self) -> str | None:
        if self.is_leader:
            return self.me
        contenders = self.election.contenders() if self.election else []
        return contenders[0] if contenders else None

    def leader_address(self) -> str | None:
        """The leader as ip:port (for acks: the replica connects to it)."""
        leader = self.leader()
        if not leader:
            return None
        try:
            ip, port = resolve_host_port(leader, "leader")
        except Refusal:
            return None
        return f"{ip}:{port}"

    # -- failure detection, master side (failure_detector.cpp, meta_server_failure_detector.cpp)
    def stable(self, node: str, start_time: int) -> bool:
        w = self.stability.get(node)
        if w is None:
            self.stability[node] = {"start": start_time, "unstable": 0}
            return True
        if start_time == w["start"]:
            if now_ms() - w["start"] >= self.fd.stable_seconds * 1000 and w["unstable"] > 0:
                w["unstable"] = 0
        elif start_time > w["start"]:
            if start_time - w["start"] < self.fd.stable_seconds * 1000:
                w["unstable"] += 1
                log.warning("%s encounter an unstable restart, total_count(%d)", node, w["unstable"])
            else:
                w["unstable"] = 0
            w["start"] = start_time
        return w["unstable"] < self.fd.max_unstable

    def on_ping(self, ping: dict, source) -> dict | None:
        node = str(ping.get("from", ""))
        with self.lock:
            if "start_time" in ping and not self.stable(node, int(ping["start_time"])):
                log.warning("%s is unstable, don't response to it's beacon", node)
                return None
            ack = {"t": "ack", "time": ping.get("time"), "allowed": True}
            if not self.is_leader:
                ack.update(is_master=False, primary_node=self.leader_address() or "")
                return ack
            ack.update(is_master=True, primary_node=f"{self.ip}:{self.port}")
            w = self.workers.get(node)
            if w is None or not w["alive"]:
                log.info("worker %s connected", node)
                self.workers[node] = {"last_recv": time.monotonic(), "alive": True, "addr": list(source)}
            else:
                w["last_recv"], w["addr"] = time.monotonic(), list(source)
            if ping.get("fresh") and self.handled_start.get(node) != ping.get("start_time"):
                # A restarted ReplicaServer loads its replicas inactive (replica.cpp:228 at
                # v2.5.0, a new replica object starts PS_INACTIVE; replica_stub.cpp:
                # not a transient inactivity), so none of them serves until the meta
                # reassigns the partition: a secondary becomes primary, the node comes
                # back as a secondary (the guardian, below). The real node learns of it at
                # its config sync (replica_config.cpp on_config_sync at v2.5.0: a former
                # primary removes itself, a former secondary waits for its primary to);
                # here its pings say it is fresh until a leader has answered one, whichever
                # MetaServer leads by then, and it leaves every partition at once.
                self.handled_start[node] = ping.get("start_time")
                if self.member_anywhere(node):
                    log.info("worker %s restarted: its replicas come back inactive", node)
                    self.on_node_dead(node)
            ack["config"] = self.config_of(node)
            return ack

    def config_of(self, node: str) -> dict:
        """The partitions `node` serves, as it learns them (on_config_sync/proposals)."""
        out = {}
        for app in self.apps.values():
            for part in app["partitions"]:
                learners = part.setdefault("learners", [])
                role = ("primary" if part["primary"] == node else "secondary" if node in part["secondaries"]
                        else "learner" if node in learners else None)
                if role:
                    out[f"{app['app_name']}.{part['pidx']}"] = {
                        "role": role, "ballot": part["ballot"], "app_id": app["app_id"], "pidx": part["pidx"],
                        "app_name": app["app_name"], "replicas": (1 if part["primary"] else 0) + len(part["secondaries"]),
                        "secondaries": [list(self.node_address(s)) for s in part["secondaries"]],
                        "learners": [[n, list(self.node_address(n))] for n in learners]}
        return out

    def check_loop(self) -> None:
        while not self.stop.wait(self.fd.check):
            if not self.is_leader:
                continue
            now = time.monotonic()
            with self.lock:
                for node, w in self.workers.items():
                    if w["alive"] and now - w["last_recv"] > self.fd.grace:
                        log.warning("worker %s disconnected, no beacon for %.1f s", node, now - w["last_recv"])
                        w["alive"] = False
                        self.disconnections += 1
                        self.on_node_dead(node)

    # -- partitions (server_state.cpp, partition_guardian.cpp)
    def frozen(self) -> bool:
        """meta_service.cpp check_freeze (v2.5.0, master): fewer ALIVE than
        min_live_node_count_for_unfreeze, or than node_live_percentage_threshold_for_update
        percent of the nodes it knows (ALIVE and dead)."""
        alive = sum(1 for w in self.workers.values() if w["alive"])
        return alive < self.min_live or alive * 100 < self.live_percentage * len(self.workers)

    def member_anywhere(self, node: str) -> bool:
        return any(node == part["primary"] or node in part["secondaries"] or node in part.get("learners", [])
                   for app in self.apps.values() for part in app["partitions"])

    def on_node_dead(self, node: str) -> None:
        """The dead node's replicas drop out at once (downgrade to inactive); a lost
        primary is replaced by a secondary only by the guardian, and not when frozen.
        The partitions' other members hear of it at once (the real MetaServer sends the
        change to the primary, which tells its secondaries)."""
        told: set[str] = set()
        for app in self.apps.values():
            changed = False
            for part in app["partitions"]:
                if node in part.setdefault("learners", []):
                    part["learners"].remove(node)
                if part["primary"] == node or node in part["secondaries"]:
                    told |= {part["primary"], *part["secondaries"]} - {node, ""}
                    if part["primary"] == node:
                        part["primary"] = ""
                    else:
                        part["secondaries"].remove(node)
                    part["dropped"][node] = time.time()
                    part["ballot"] += 1
                    changed = True
            if changed:
                self.save(app)
        self.push(sorted(told))

    def guardian_loop(self) -> None:
        while not self.stop.wait(0.5):
            with self.lock:
                # meta_service.cpp: no partition is checked at a level below steady, nor when frozen.
                if self.frozen() or self.level not in ("steady", "lively"):
                    continue
                self.apply_proposals()
                alive = [n for n, w in self.workers.items() if w["alive"]]
                load = {n: 0 for n in alive}
                for app in self.apps.values():
                    for part in app["partitions"]:
                        for n in [part["primary"], *part["secondaries"], *part.get("learners", [])]:
                            if n in load:
                                load[n] += 1
                for app in self.apps.values():
                    changed = False
                    for part in app["partitions"]:
                        changed |= self.cure(part, alive, load)
                    if changed:
                        self.save(app)

    def cure(self, part: dict, alive: list[str], load: dict) -> bool:
        """partition_guardian.cpp: a partition without a primary gets one (a secondary, or
        the last replica dropped: it holds the newest writes); one short of replicas gets
        a learner (ADD_SECONDARY to the primary, which has it learn and then upgrades it to
        a secondary through learner_ready, below)."""
        learners = part.setdefault("learners", [])
        if not part["primary"]:
            learners.clear()  # they learn from the primary: the next one adds them again
            if part["secondaries"]:
                part["primary"] = min(part["secondaries"], key=lambda n: load[n])
                part["secondaries"].remove(part["primary"])
            else:
                candidates = [n for n in part["dropped"] if n in alive] if part["dropped"] else alive
                if not candidates:
                    return False
                if part["dropped"]:
                    part["primary"] = max(candidates, key=lambda n: part["dropped"][n])
                else:
                    part["primary"] = min(candidates, key=lambda n: (load[n], n))
                load[part["primary"]] += 1
            part["dropped"].pop(part["primary"], None)
            part["ballot"] += 1
            self.push([part["primary"], *part["secondaries"]])  # the proposal reaches the replicas at once
            return True
        if 1 + len(part["secondaries"]) + len(learners) >= part["max_replica_count"] or learners:
            return False  # full, or a new secondary is still learning (one proposal a partition)
        if self.flow_control and self.add_secondary_max <= 0:
            return False  # server_state.cpp: add_secondary_running_nodes[node] >= max: no proposal
        members = {part["primary"], *part["secondaries"], *learners}
        returning = [n for n in part["dropped"] if n in alive and n not in members]
        waited = time.time() - max(part["dropped"].values(), default=0) >= self.assign_delay
        others = [n for n in alive if n not in members] if (waited or not part["dropped"]) else []
        candidates = returning or others
        if not candidates:
            return False
        # ADD_SECONDARY goes to the primary, which has the node learn (a potential secondary,
        # sent every prepare meanwhile: replica_learn.cpp, replica_2pc.cpp); the MetaServer lists
        # it as a secondary only once the primary reports it learned (learner_ready).
        chosen = min(candidates, key=lambda n: (load[n], n))
        learners.append(chosen)
        load[chosen] += 1
        self.push([part["primary"], chosen])
        return True

    def learner_ready(self, q: dict) -> dict:
        """The primary reports a learner complete (replica_learn.cpp on_learn_completion_notification,
        then upgrade_to_secondary_on_primary: CT_UPGRADE_TO_SECONDARY)."""
        part, key = self.partition(q.get("gpid", ""))
        if part is None:
            return {"err": "ERR_OBJECT_NOT_FOUND"}
        node = q.get("node", "")
        if part["primary"] != q.get("primary") or node not in part.get("learners", []) \
                or str(part["ballot"]) != q.get("ballot"):
            return {"err": "ERR_INVALID_VERSION", "ballot": part["ballot"]}
        part["learners"].remove(node)
        part["secondaries"].append(node)
        part["dropped"].pop(node, None)
        part["ballot"] += 1
        self.save(self.app_by_id(int(q["gpid"].split(".")[0])))
        self.push([part["primary"], node])
        log.info("gpid(%s): %s upgraded to secondary, ballot %d", q["gpid"], node, part["ballot"])
        return {"err": "ERR_OK", "role": self.config_of(part["primary"]).get(key)}

    def remove_secondary(self, q: dict) -> dict:
        """The primary cannot reach a secondary (replica_failover.cpp handle_remote_failure:
        remove_replica_on_meta_server, CT_DOWNGRADE_TO_INACTIVE)."""
        part, key = self.partition(q.get("gpid", ""))
        if part is None:
            return {"err": "ERR_OBJECT_NOT_FOUND"}
        if part["primary"] != q.get("primary"):
            return {"err": "ERR_INVALID_STATE"}
        ip, _, port = q.get("addr", "").rpartition(":")
        node = next((n for n in part["secondaries"] if self.node_address(n) == (ip, int(port or 0))), None)
        if node is not None:
            part["secondaries"].remove(node)
            part["dropped"][node] = time.time()
            part["ballot"] += 1
            self.save(self.app_by_id(int(q["gpid"].split(".")[0])))
            self.push([part["primary"], node])
            log.info("gpid(%s): secondary %s removed at the primary's request, ballot %d", q["gpid"], node,
                     part["ballot"])
        return {"err": "ERR_OK", "role": self.config_of(part["primary"]).get(key)}

    def partition(self, gpid: str) -> tuple[dict | None, str]:
        """The partition `app_id.pidx` and its key in config_of."""
        try:
            app_id, pidx = (int(x) for x in gpid.split("."))
        except ValueError:
            return None, ""
        app = self.app_by_id(app_id)
        if app is None or not 0 <= pidx < app["partition_count"]:
            return None, ""
        return app["partitions"][pidx], f"{app['app_name']}.{pidx}"

    # -- admin operations (the RPCs the shell sends)
    def app_by_id(self, app_id: int) -> dict | None:
        return next((a for a in self.apps.values() if a["app_id"] == app_id), None)

    def propose_balancer(self, q: dict) -> dict:
        try:
            app_id, pidx = (int(x) for x in q.get("gpid", "").split("."))
            actions = [tuple(a.split("/")) for a in q.get("actions", "").split(",") if a]
        except ValueError:
            return {"err": "ERR_INVALID_PARAMETERS"}
        app = self.app_by_id(app_id)
        if app is None or not 0 <= pidx < app["partition_count"] or any(len(a) != 3 for a in actions):
            return {"err": "ERR_INVALID_PARAMETERS"}
        if (app_id, pidx) in self.proposals:  # register_proposals: lb_actions not empty
            return {"err": "ERR_INVALID_PARAMETERS"}
        self.proposals[(app_id, pidx)] = actions
        return {"err": "ERR_OK"}

    def apply_proposals(self) -> None:
        """Carries out queued proposals as the replicas would (replica_config.cpp): a
        primary moves only from the current primary to one of its secondaries
        (DOWNGRADE_TO_SECONDARY then UPGRADE_TO_PRIMARY); DOWNGRADE_TO_INACTIVE, sent
        to the primary, drops one secondary, which the meta records as dropped.
        Anything else the replicas would reject: dropped with a log line. The
        replicas hear of the change at once (the meta sends proposals as RPCs)."""
        for (app_id, pidx), actions in list(self.proposals.items()):
            del self.proposals[(app_id, pidx)]
            app = self.app_by_id(app_id)
            part = app["partitions"][pidx] if app else None
            if part is None:
                continue
            types = [a[0] for a in actions]
            touched = [part["primary"], *part["secondaries"]]
            if types == ["DOWNGRADE_TO_SECONDARY", "UPGRADE_TO_PRIMARY"]:
                old, new = actions[0][2], actions[1][2]
                if part["primary"] != old or new not in part["secondaries"] or not self.workers[new]["alive"]:
                    log.warning("gpid(%d.%d): move_pri %s -> %s rejected by the replicas", app_id, pidx, old, new)
                    continue
                part["secondaries"] = [s for s in part["secondaries"] if s != new] + [old]
                part["primary"] = new
            elif types == ["DOWNGRADE_TO_INACTIVE"]:
                target, node = actions[0][1], actions[0][2]
                if part["primary"] != target or node not in part["secondaries"]:
                    log.warning("gpid(%d.%d): downgrade of %s rejected by %s", app_id, pidx, node, target)
                    continue
                part["secondaries"].remove(node)
                part["dropped"][node] = time.time()
            else:
                log.warning("gpid(%d.%d): proposal %s not modelled by the stand-in, dropped", app_id, pidx, actions)
                continue
            part["ballot"] += 1
            self.save(app)
            log.info("gpid(%d.%d): %s done, primary %s, secondaries %s", app_id, pidx, types,
                     part["primary"], part["secondaries"])
            self.push(touched)

    def push(self, nodes: list[str]) -> None:
        """Sends each node its partitions now (a proposal reaches a replica as an RPC)."""
        for node in nodes:
            addr = (self.workers.get(node) or {}).get("addr")
            if addr and self.sock is not None:
                message = {"t": "ack", "push": True, "is_master": True, "primary_node": f"{self.ip}:{self.port}",
                           "config": self.config_of(node)}
                try:
                    self.sock.sendto(json.dumps(message).encode(), tuple(addr))
                except OSError as e:
                    log.warning("cannot push the configuration to %s: %s", node, e)

    def remote_command(self, cmd: str, args: list[str]) -> str:
        """The meta's command_manager commands the rolling update uses; results as upstream."""
        if cmd == "meta.lb.assign_delay_ms":  # partition_guardian.cpp ctrl_assign_delay_ms / register_int_command
            default = self.config.integer("meta_server", "replica_assign_delay_ms_for_dropouts", 600000)
            answer, value = int_command(cmd, args, int(self.assign_delay * 1000), default, lambda v: 0 < v <= 2**31 - 1)
            if value is not None:
                self.assign_delay = value / 1000
            return answer
        if cmd == "meta.lb.add_secondary_enable_flow_control":  # remote_command_set_bool_flag / register_bool_command
            answer, flag = bool_command(cmd, args, self.flow_control)
            if flag is not None:
                self.flow_control = flag
            return answer
        if cmd == "meta.lb.add_secondary_max_count_for_one_node":  # server_state.cpp
            default = self.config.integer("meta_server", "add_secondary_max_count_for_one_node", 10)
            answer, value = int_command(cmd, args, self.add_secondary_max, default, lambda v: v <= 2**31 - 1)
            if value is not None:
                self.add_secondary_max = value
            return answer
        return f"unknown command '{cmd}'"

    def admin(self, path: str, args: list[tuple[str, str]]):
        q = dict(args)
        if path == "/standin/control_meta":
            level = q.get("level", "invalid")
            if level not in ("invalid", "stopped", "blind", "freezed", "steady", "lively"):
                return 400, {"err": "ERR_INVALID_PARAMETERS"}, None
            old, self.level = self.level, self.level if level == "invalid" else level
            return 200, {"err": "ERR_OK", "old_level": f"fl_{old}"}, None
        if path == "/standin/propose_balancer":
            return 200, self.propose_balancer(q), None
        if path == "/standin/learner_ready":
            return 200, self.learner_ready(q), None
        if path == "/standin/partition":  # a primary asks for its partition's current configuration
            part, key = self.partition(q.get("gpid", ""))
            if part is None:
                return 200, {"err": "ERR_OBJECT_NOT_FOUND"}, None
            return 200, {"err": "ERR_OK", "role": self.config_of(q.get("node", "")).get(key)}, None
        if path == "/standin/remove_secondary":
            return 200, self.remove_secondary(q), None
        if path == "/standin/remote_command":
            return 200, {"err": "ERR_OK", "result": self.remote_command(q.get("cmd", ""),
                                                                        [v for k, v in args if k == "arg"])}, None
        return 404, "Not Found", None

    # -- HTTP
    def http(self, path: str, args: list[tuple[str, str]]):
        if path.startswith("/standin/"):
            if not self.is_leader:
                # remote_command goes to the node it names (-l), leader or not
                if path == "/standin/remote_command":
                    return 200, {"err": "ERR_OK", "result": self.remote_command(
                        dict(args).get("cmd", ""), [v for k, v in args if k == "arg"])}, None
                leader = self.leader()
                return 307, "", f"http://{leader}{path}?" + "&".join(f"{k}={quote(v)}" for k, v in args)
            with self.lock:
                return self.admin(path, args)
        if not path.startswith("/meta/"):
            return 404, "Not Found", None
        names = [k for k, _ in args]
        allowed = {"/meta/app": {"name", "detail"}}.get(path, {"detail"})
        if any(k not in allowed for k in names):
            return 400, "", None
        if not self.is_leader:
            leader = self.leader()
            location = f"http://{leader}/{path.lstrip('/')}"
            if args:
                location += "?" + "&".join(f"{k}={v}" for k, v in args)
            return 307, "", location
        detail = "detail" in names
        with self.lock:
            if path == "/meta/nodes":
                return 200, self.nodes_page(detail), None
            if path == "/meta/cluster":
                return 200, self.cluster_page(), None
            if path == "/meta/apps":
                return 200, self.apps_page(detail), None
            if path == "/meta/app":
                name = dict(args).get("name", "")
                if not name and release() >= (2, 6):
                    return 400, "app name shouldn't be empty", None
                if name not in self.apps:
                    return 404, f'table not found: "{name}"', None
                return 200, self.app_page(self.apps[name], detail), None
        return 404, "Not Found", None

    def sort_key(self, node: str):
        host, _, port = node.rpartition(":")
        if release() < (2, 6):
            try:
                return (int(ipaddress.IPv4Address(host)), int(port))
            except ValueError:
                pass
        return (host, int(port)) if release() >= (2, 6) else (0, node)

    def nodes_page(self, detail: bool) -> dict:
        counts = {n: [0, 0] for n in self.workers}
        for app in self.apps.values():
            for part in app["partitions"]:
                if part["primary"] in counts:
                    counts[part["primary"]][0] += 1
                for s in part["secondaries"]:
                    if s in counts:
                        counts[s][1] += 1
        details = {}
        for node in sorted(self.workers, key=self.sort_key):
            row = {"address": node, "status": "ALIVE" if self.workers[node]["alive"] else "UNALIVE"}
            if detail:
                p, s = counts[node]
                row.update(replica_count=str(p + s), primary_count=str(p), secondary_count=str(s))
            details[node] = row
        alive = sum(1 for w in self.workers.values() if w["alive"])
        return {"details": details, "summary": {"total_node_count": str(len(self.workers)),
                                                "alive_node_count": str(alive),
                                                "unalive_node_count": str(len(self.workers) - alive)}}

    def cluster_page(self) -> dict:
        if release() < (2, 6):
            metas = ",".join(f"{ip}:{port}" for ip, port in self.resolved)
            zk = "".join(self.zk_hosts.split()) if release() < (2, 5) else self.zk_hosts
            balance = "total=0"
        else:
            metas, zk, balance = ",".join(self.server_list), self.zk_hosts, json.dumps({"total": 0},
                                                                                      separators=(",", ":"))
        primaries, totals = {}, {}
        for n, w in self.workers.items():
            if w["alive"]:
                primaries[n], totals[n] = 0, 0
        for app in self.apps.values():
            for part in app["partitions"]:
                for n in [part["primary"], *part["secondaries"]]:
                    if n in totals:
                        totals[n] += 1
                if part["primary"] in primaries:
                    primaries[part["primary"]] += 1
        std = lambda v: statistics.pstdev(v) if len(v) > 1 else 0.0  # noqa: E731
        return {"meta_servers": metas, "primary_meta_server": self.me, "zookeeper_hosts": zk,
                # get_function_level(): freezed while check_freeze holds, whatever the level set
                "zookeeper_root": self.root,
                "meta_function_level": "freezed" if self.level in ("steady", "lively") and self.frozen() else self.level,
                "balance_operation_count": balance,
                "primary_replica_count_stddev": f"{std(list(primaries.values())):.2f}",
                "total_replica_count_stddev": f"{std(list(totals.values())):.2f}"}

    def apps_page(self, detail: bool) -> dict:
        apps = sorted(self.apps.values(), key=lambda a: a["app_id"])
        general = {}
        for a in apps:
            general[str(a["app_id"])] = {
                "app_id": str(a["app_id"]), "status": "AVAILABLE", "app_name": a["app_name"],
                "app_type": a["app_type"], "partition_count": str(a["partition_count"]),
                "replica_count": str(a["max_replica_count"]), "is_stateful": "true" if a["is_stateful"] else "false",
                "create_time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a["create_second"])),
                "drop_time": "-", "drop_expire": "-", "envs_count": str(len(a["envs"]))}
        page = {"general_info": general}
        summary = {"total_app_count": str(len(apps))}
        if detail and apps:
            info, totals = {}, [0, 0, 0, 0]
            for a in apps:
                flags = [health(p) for p in a["partitions"]]
                fully = sum(1 for f in flags if f[1])
                wu = sum(1 for f in flags if f[2])
                ru = sum(1 for f in flags if f[3])
                info[str(a["app_id"])] = {"app_id": str(a["app_id"]), "app_name": a["app_name"],
                                          "partition_count": str(a["partition_count"]),
                                          "fully_healthy": str(fully), "unhealthy": str(a["partition_count"] - fully),
                                          "write_unhealthy": str(wu), "read_unhealthy": str(ru)}
                totals[0 if fully == a["partition_count"] else 1] += 1
                totals[2] += wu > 0
                totals[3] += ru > 0
            page["healthy_info"] = info
            summary.update(fully_healthy_app_count=str(totals[0]), unhealthy_app_count=str(totals[1]),
                           write_unhealthy_app_count=str(totals[2]), read_unhealthy_app_count=str(totals[3]))
        page["summary"] = summary
        return page

    def app_page(self, app: dict, detail: bool) -> dict:
        parts = app["partitions"]
        page = {"general": {"app_name": app["app_name"], "app_id": str(app["app_id"]),
                            "partition_count": str(app["partition_count"]),
                            "max_replica_count": str(parts[0]["max_replica_count"] if parts else 0)}}
        if not detail:
            return page
        replicas, stats, fully, wu, ru = {}, {}, 0, 0, 0
        for p in parts:
            count, f, w, r = health(p)
            fully, wu, ru = fully + f, wu + w, ru + r
            replicas[str(p["pidx"])] = {"pidx": str(p["pidx"]), "ballot": str(p["ballot"]),
                                        "replica_count": f"{count}/{p['max_replica_count']}",
                                        "primary": p["primary"] or "-",
                                        "secondaries": "[" + ",".join(p["secondaries"]) + "]"}
            if p["primary"]:
                stats.setdefault(p["primary"], [0, 0])[0] += 1
            for s in p["secondaries"]:
                stats.setdefault(s, [0, 0])[1] += 1
        nodes = {}
        for n in sorted(stats, key=self.sort_key):
            pc, sc = stats[n]
            nodes[n] = {"node": n, "primary": str(pc), "secondary": str(sc), "total": str(pc + sc)}
        tp, ts = sum(v[0] for v in stats.values()), sum(v[1] for v in stats.values())
        nodes["total"] = {"node": "total", "primary": str(tp), "secondary": str(ts), "total": str(tp + ts)}
        page.update(replicas=replicas, nodes=nodes, healthy={
            "fully_healthy_partition_count": str(fully),
            "unhealthy_partition_count": str(app["partition_count"] - fully),
            "write_unhealthy_partition_count": str(wu), "read_unhealthy_partition_count": str(ru)})
        return page

    def serve_udp(self, sock: socket.socket) -> None:
        self.sock = sock
        for ping, source in udp_messages(sock, "ping", self.stop):
            ack = self.on_ping(ping, source)
            if ack is not None:
                try:
                    sock.sendto(json.dumps(ack).encode(), source)
                except OSError as e:
                    log.warning("cannot answer %s: %s", source, e)

    def close(self) -> None:
        if self.election is not None:
            self.election.cancel()
        self.zk.stop()
        self.zk.close()


# ---------------------------------------------------------------- replica server

class Replica:
    """Worker side of the failure detector (failure_detector.cpp): a beacon every
    fd_beacon_interval_seconds to the current meta from the replica port over UDP; a
    non-master ack points at the leader; no ack within 2/3 of the interval moves on
    to the next meta of the list; without an ack for fd_lease_seconds the node
    serves nothing (its replicas go inactive).

    Its replicas' life (replica_stub.cpp, v2.5.0): a replica the meta assigns joins
    `_replicas`; one downgraded away stays there (the meta sends no
    RPC_REMOVE_REPLICA for DOWNGRADE_TO_INACTIVE, replica_config.cpp) until the next
    config sync finds it unknown to the meta (on_node_query_reply_scatter2, every
    config_sync_interval_ms) or `replica.kill_partition` injects an error; either
    closes it (begin_close_replica: `_closing_replicas`, then gone once closed,
    CLOSE_SECONDS here). The perf counters that count them are read from a snapshot
    the counter reporter takes every perf_counter_update_interval_seconds
    (pegasus_counter_reporter.cpp)."""

    def __init__(self, config: Config, ip: str, port: int, data_dirs: list[str], stop: threading.Event):
        self.config, self.stop, self.ip, self.port = config, stop, ip, port
        self.me = node_name(ip, port)
        self.fd = FdOptions(config)
        self.metas = [f"{ip}:{p}" for ip, p in (resolve_host_port(e, "[meta_server] server_list")
                                                for e in split_list(config.get("meta_server", "server_list")))]
        self.current = random.randrange(len(self.metas))
        self.target: str = self.metas[self.current]
        self.start_time = now_ms()
        self.fresh = True  # no leader has answered a ping of this process yet
        self.last_ack = 0.0
        self.lock = threading.Lock()
        self.roles: dict[str, dict] = {}
        self.local: dict[tuple[int, int], str] = {}  # (app_id, pidx) -> "serving" | "closing"
        self.killed: set[tuple[int, int]] = set()  # closed while still a member: never served again here
        self.sync_interval = config.integer("replication", "config_sync_interval_ms", 30000) / 1000
        self.last_sync = time.monotonic()
        self.counter_interval = config.integer("pegasus.server", "perf_counter_update_interval_seconds", 10)
        self.snapshot: tuple[int, dict[str, int]] = (0, {})  # (taken at, seconds; counter -> value)
        self.min_replicas = config.integer("replication", "mutation_2pc_min_replica_count", 2)
        self.by_gpid: dict[tuple[int, int], dict] = {}  # the roles, by (app_id, pidx)
        self.tables: dict[int, str] = {}  # app_id -> table name, as the meta's configs said
        self.data = ReplicaData(data_dirs, rrdb_store.Limits(
            multi_get_count=config.integer("pegasus.server", "rocksdb_multi_get_max_iteration_count", 3000),
            multi_get_size=config.integer("pegasus.server", "rocksdb_multi_get_max_iteration_size", 31457280),
            iteration_count=config.integer("pegasus.server", "rocksdb_max_iteration_count", 1000)),
            self.me, self.min_replicas, self.role_of, self.meta_call, self.set_role,
            (config.integer("replication", "prepare_timeout_ms_for_secondaries", 1000) / 1000,
             config.integer("replication", "prepare_timeout_ms_for_potential_secondaries", 3000) / 1000))
        # A restarted server opens every replica on its disks (load_replicas); they are
        # inactive until the meta assigns them again, and closed at the next config sync
        # if it does not.
        for gpid in self.data.existing():
            self.data.open(gpid)
            self.local[gpid] = "serving"
        self.sock: socket.socket | None = None

    def run(self, sock: socket.socket) -> None:
        self.sock = sock
        threading.Thread(target=self.receive, daemon=True, name="fd-recv").start()
        threading.Thread(target=self.take_snapshots, daemon=True, name="counter-reporter").start()
        while not self.stop.is_set():
            sent = time.monotonic()
            ping = {"t": "ping", "from": self.me, "to": self.target, "time": now_ms(), "start_time": self.start_time,
                    "fresh": self.fresh}
            host, port = self.target.rsplit(":", 1)
            try:
                sock.sendto(json.dumps(ping).encode(), (host, int(port)))
            except OSError as e:
                log.warning("ping master(%s) failed: %s", self.target, e)
            self.stop.wait(self.fd.beacon * 2 / 3)
            if self.last_ack < sent:  # beacon timeout: try the next meta server
                log.warning("ping master(%s) failed, timeout", self.target)
                self.current = (self.current + 1) % len(self.metas)
                self.target = self.metas[self.current]
            if time.monotonic() - self.last_ack > self.fd.lease and self.roles:
                log.warning("lease expired: master %s disconnected, replicas go inactive", self.target)
                with self.lock:
                    self.roles, self.by_gpid = {}, {}
            elif time.monotonic() - self.last_sync >= self.sync_interval:
                self.config_sync()
            self.stop.wait(max(0.0, self.fd.beacon - (time.monotonic() - sent)))

    def member_of(self) -> set[tuple[int, int]]:
        return {(r["app_id"], r["pidx"]) for r in self.roles.values()}

    def config_sync(self) -> None:
        """Replicas the meta no longer lists for this node are closed (scatter2: PS_ERROR)."""
        self.last_sync = time.monotonic()
        with self.lock:
            for gpid in [g for g, state in self.local.items() if state == "serving" and g not in self.member_of()]:
                log.info("%d.%d: replica not exists on meta server, remove", *gpid)
                self.close(gpid)

    def close(self, gpid: tuple[int, int]) -> None:
        """begin_close_replica then close_replica (with the lock held)."""
        self.local[gpid] = "closing"

        def closed() -> None:
            with self.lock:
                if self.local.get(gpid) == "closing":
                    del self.local[gpid]
                    self.data.close(gpid)
            log.info("%d.%d: finish to close replica", *gpid)
        timer = threading.Timer(CLOSE_SECONDS, closed)
        timer.daemon = True
        timer.start()

    def take_snapshots(self) -> None:
        """pegasus_counter_reporter.cpp: the first snapshot after rand() % interval + 1 s, then
        one every interval; perf-counters answers from the latest."""
        delay = random.randrange(self.counter_interval) + 1
        while not self.stop.wait(delay):
            with self.lock:
                states = list(self.local.values())
            self.snapshot = (int(time.time()), {"replica(Count)": states.count("serving"),
                                                "opening.replica(Count)": 0,
                                                "closing.replica(Count)": states.count("closing")})
            delay = self.counter_interval

    def remote_command(self, cmd: str, args: list[str]) -> str:
        if cmd == "replica.kill_partition":  # replica_stub.cpp register_ctrl_command, on_kill_replica
            if len(args) > 2:
                return "ERR_INVALID_PARAMETERS"
            app_id = atoi(args[0]) if args else -1
            pidx = atoi(args[1]) if len(args) == 2 else -1
            with self.lock:
                if app_id == -1 or pidx == -1:
                    for gpid in [g for g, state in self.local.items()
                                 if state == "serving" and app_id in (-1, g[0])]:
                        self.kill(gpid)
                    return "ERR_OK"
                if self.local.get((app_id, pidx)) != "serving":  # get_replica looks in _replicas only
                    return "ERR_OBJECT_NOT_FOUND"
                self.kill((app_id, pidx))
                return "ERR_OK"
        if cmd == "perf-counters":  # perf_counters.cpp list_snapshot_by_regexp
            return perf_counters_answer(self.snapshot, args)
        if cmd == "flush-log":  # simple_logger.cpp
            for handler in log.handlers:
                handler.flush()
            return "Flush done."
        return f"unknown command '{cmd}'"

    def kill(self, gpid: tuple[int, int]) -> None:
        """inject_error(ERR_INJECTED): the replica closes. One the meta still counts as a member
        stops serving here for good (the stand-in's meta is not told; harsher than the real one)."""
        log.info("kill replica: gpid = %d.%d", *gpid)
        if gpid in self.member_of():
            self.killed.add(gpid)
            self.set_roles({k: r for k, r in self.roles.items() if (r["app_id"], r["pidx"]) != gpid})
        self.close(gpid)

    def set_roles(self, roles: dict[str, dict]) -> None:
        """The configuration the meta sent (with the lock held). A partition's entry older
        than the one held (a lower ballot: a message overtaken by a later one) is kept."""
        merged = {}
        for key, role in roles.items():
            old = self.roles.get(key)
            merged[key] = old if old and old["ballot"] > role["ballot"] else role
        self.roles = merged
        self.by_gpid = {(r["app_id"], r["pidx"]): r for r in merged.values()}
        self.tables.update({r["app_id"]: r["app_name"] for r in merged.values() if "app_name" in r})

    def set_role(self, gpid: tuple[int, int], role: dict | None) -> None:
        """One partition's new entry, from the meta's answer to a change this server asked for."""
        with self.lock:
            roles = {k: r for k, r in self.roles.items() if (r["app_id"], r["pidx"]) != gpid}
            if role:
                roles[f"{role['app_name']}.{gpid[1]}"] = role
            self.roles = {}
            self.set_roles(roles)

    def role_of(self, gpid: tuple[int, int]) -> dict | None:
        with self.lock:
            return self.by_gpid.get(gpid)

    def status(self, gpid: tuple[int, int]) -> str | None:
        """None without an open replica (none, or closing); else its partition status:
        primary, secondary, learner (potential secondary) or inactive."""
        with self.lock:
            if self.local.get(gpid) != "serving":
                return None
            role = self.by_gpid.get(gpid)
            return role["role"] if role else "inactive"

    def table_name(self, app_id: int) -> str:
        return self.tables.get(app_id, "")

    def meta_call(self, path: str) -> dict:
        """GET on the leading MetaServer (a follower redirects), its JSON answer."""
        errors = []
        for meta in [self.target, *[m for m in self.metas if m != self.target]]:
            address, target = meta, path
            try:
                for _ in range(3):
                    status, body, location = http_get(address, target, timeout=3)
                    if status != 307:
                        if isinstance(body, dict):
                            return body
                        raise ValueError(f"HTTP {status}: {body}")
                    parts = urlsplit(location or "")
                    address, target = parts.netloc, f"{parts.path}?{parts.query}"
            except (OSError, http.client.HTTPException, ValueError) as e:
                errors.append(f"{meta}: {e}")
        raise OSError("; ".join(errors) or "no MetaServer answered")

    def receive(self) -> None:
        for ack, _ in udp_messages(self.sock, "ack", self.stop):
            if not ack.get("is_master"):
                if ack.get("primary_node"):
                    self.target = ack["primary_node"]
                continue
            if ack.get("push"):  # a pushed configuration is no beacon answer: no lease
                if self.fresh:
                    continue  # nor does it assign anything before the leader knows this process restarted
            else:
                self.last_ack = time.monotonic()
                if int(ack.get("time") or 0) >= self.start_time:  # not an answer to the previous process
                    self.fresh = False
            with self.lock:
                self.set_roles({k: r for k, r in ack.get("config", {}).items()
                                if (r["app_id"], r["pidx"]) not in self.killed})
                members = [(gpid, role) for gpid, role in self.by_gpid.items()]
            for gpid, role in members:
                with self.lock:
                    if self.local.get(gpid) == "closing":
                        continue
                    self.local.setdefault(gpid, "serving")
                self.data.open(gpid)
                if role["role"] == "primary" and role.get("learners"):
                    self.data.teach(gpid, role["learners"])

    def http(self, path: str, args: list[tuple[str, str]]):
        q = dict(args)
        if path == "/standin/remote_command":
            return 200, {"err": "ERR_OK", "result": self.remote_command(q.get("cmd", ""),
                                                                        [v for k, v in args if k == "arg"])}, None
        return 404, "Not Found", None

    def http_post(self, path: str, body: bytes):
        return self.data.http_post(path, body)


class Collector:
    def __init__(self, config: Config, stop: threading.Event):
        self.metas = split_list(config.get("meta_server", "server_list"))
        self.stop = stop

    def run(self) -> None:
        last = None
        while not self.stop.wait(2.0):
            result = "no meta server answered /meta/cluster"
            for meta in self.metas:
                try:
                    status, _ = http_json(meta, "/meta/cluster")
                    result = f"/meta/cluster answered {status} by {meta}"
                    break
                except (OSError, http.client.HTTPException):
                    continue
            if result != last:
                log.info("%s", result)
                last = result

    def http(self, path, args):
        return 404, "Not Found", None


# ---------------------------------------------------------------- main

def setup_log(config: Config) -> None:
    """simple_logger (simple_logger.cpp, all tags): log.<n>.txt under <[core] data_dir>/log;
    errors also to stderr (the journal)."""
    data_dir = config.get("core", "data_dir")
    log_dir = os.path.join(data_dir, "log")
    try:
        os.makedirs(log_dir, exist_ok=True)
        index = 1 + max((int(n[4:-4]) for n in os.listdir(log_dir)
                         if n.startswith("log.") and n.endswith(".txt") and n[4:-4].isdigit()), default=0)
        handler = logging.FileHandler(os.path.join(log_dir, f"log.{index}.txt"), encoding="utf-8")
    except OSError as e:
        raise Refusal(f"cannot write logs under [core] data_dir {data_dir}: {e.strerror}") from e
    handler.setFormatter(logging.Formatter("%(levelname).1s%(asctime)s [%(threadName)s] %(message)s"))
    log.addHandler(handler)
    errors = logging.StreamHandler(sys.stderr)
    errors.setLevel(logging.WARNING)
    errors.setFormatter(logging.Formatter("pegasus_server: %(message)s"))
    log.addHandler(errors)
    log.setLevel(logging.INFO)


def run(argv: list[str]) -> int:
    config_path, role = check_invocation(argv)
    config = Config(config_path)
    config.check_no_variables()
    setup_log(config)
    for warning in config.warnings:
        log.warning("%s", warning)
    port = role_port(config, role)
    ip = local_ipv4(config)
    if release() >= (2, 6) and reverse_name(ip) is None:  # rpc_engine.cpp / rpc_host_port.cpp (master)
        raise Refusal(f"'{ip}:{port}' can not be reverse resolved (getnameinfo NI_NAMEREQD found no name "
                      "for this server's address)")
    log.info("pegasus_server stand-in %s (%s) starting: role=%s primary_address=%s node=%s cwd=%s pid=%d",
             RELEASE, GIT_COMMIT, role, f"{ip}:{port}", node_name(ip, port), os.getcwd(), os.getpid())

    stop = threading.Event()
    stop.exit_code = 0

    def on_signal(number, _frame):
        log.info("received %s, shutting down", signal.Signals(number).name)
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    closers = []
    if role == "meta":
        meta = served = Meta(config, ip, port, stop)
        server = serve_http(port, meta, client_rpc.MetaRpc(meta))
        sock = udp_socket(port)
        closers += [server.shutdown, server.server_close, sock.close, meta.close]
        meta.start()
        threading.Thread(target=meta.serve_udp, args=(sock,), daemon=True, name="fd-udp").start()
    elif role == "replica":
        replica = served = Replica(config, ip, port, prepare_replica_dirs(config), stop)
        server = serve_http(port, replica, client_rpc.ReplicaRpc(replica))
        sock = udp_socket(port)
        closers += [server.shutdown, server.server_close, sock.close]
        threading.Thread(target=replica.run, args=(sock,), daemon=True, name="fd-beacon").start()
    else:
        collector = served = Collector(config, stop)
        server = serve_http(port, collector, client_rpc.NoRpc())
        closers += [server.shutdown, server.server_close]
        threading.Thread(target=collector.run, daemon=True, name="collector").start()
    sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # bin/standin_metrics.py
    import standin_metrics
    metrics = standin_metrics.attach(RELEASE, config, role, served, port, stop, Refusal)
    served.metrics_http = metrics.http
    closers.append(metrics.close)
    log.info("%s server ready on port %d", role, port)

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
        if log.handlers:
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
