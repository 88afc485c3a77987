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
  /standin/put?table=T&partition=P&key=K&value=V   200 {"ok": true} | 409/503 {"error": ...}
  /standin/get?table=T&partition=P&key=K           200 {"ok": true, "value": V|null} | 409/503
  A put needs this node to be the partition's primary and the partition to have
  at least mutation_2pc_min_replica_count (2) replicas; a get needs the primary.
  /standin/replicate?table&partition&key&value&primary=IP:PORT   the primary's prepare to a secondary
  /standin/learn?table=T&partition=P               on the primary: {"ok": true, "data": {key: value}}

Failure detection wire format (ours; upstream sends thrift over RPC_CHANNEL_UDP):
one JSON object per UDP datagram.
  ping  replica (from its replica port) -> meta port:
        {"t": "ping", "from": NODE, "to": "meta entry", "time": ms, "start_time": ms,
         "complete": ["T.P", ...] (partitions it holds whole: a learner that learned is promoted)}
  ack   meta -> the datagram's source address (the replica's port):
        {"t": "ack", "time": ms, "is_master": bool, "primary_node": "leader ip:port",
         "allowed": true, "config": {"T.P": {"role": "primary"|"secondary"|"learner", "ballot": n,
                                            "replicas": n, "secondaries": [[ip, port]...],
                                            "learners": [[ip, port]...], "primary": [ip, port]}}}
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

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
    - leading spaces/tabs are skipped; `;` or `#` anywhere starts a comment, unless
      escaped as `^;` / `^#`;
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
            if not line.strip():
                continue
            if line.startswith("[") and "=" in line:
                raise Refusal(f"ERROR: unexpected configuration in {path}(line {number}): {raw}")
            if line.startswith("["):
                if "]" not in line or not line[1:line.index("]")].strip():
                    raise Refusal(f"ERROR: unexpected configuration in {path}(line {number}): {raw}")
                name = line[1:line.index("]")].strip()
                if name in self.sections:
                    raise Refusal(f"ERROR: configuration section '[{name}]' is redefined (line {number})")
                current = self.sections[name] = {}
                continue
            if current is None:
                raise Refusal(f"ERROR: configuration section not defined ({path} line {number})")
            key, sep, val = line.partition("=")
            key, val = key.strip(), val.strip() if sep else ""
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
        out = []
        for i, ch in enumerate(line):
            if ch in "#;":
                if out and out[-1] == "^":
                    out[-1] = ch
                    continue
                break
            out.append(ch)
        return "".join(out)

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


def prepare_replica_dirs(config: Config) -> list[str]:
    """data_dirs name:path entries; missing ones are created (fs_manager, all tags)."""
    dirs = []
    for entry in split_list(config.get("replication", "data_dirs")):
        name, sep, path = entry.partition(":")
        if not sep:
            name, path = "default", entry
        if not path.startswith("/"):
            raise Refusal(f"[replication] data_dirs entry {entry!r} is not name:/absolute/path")
        try:
            os.makedirs(os.path.join(path, "reps"), exist_ok=True)
        except OSError as e:
            raise Refusal(f"[replication] data_dirs {name}:{path} cannot be created: {e.strerror}") from e
        dirs.append(path)
    if not dirs:
        raise Refusal("[replication] data_dirs is empty")
    if release() < (2, 6):
        slog = config.get("replication", "slog_dir", "")
        if slog:
            try:
                os.makedirs(slog, exist_ok=True)
            except OSError as e:
                raise Refusal(f"[replication] slog_dir {slog} cannot be created: {e.strerror}") from e
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
            status, body, location = self.role.http(parts.path, args)
        except Exception as e:  # noqa: BLE001 - answer, log, keep serving
            log.exception("http %s", self.path)
            status, body, location = 500, str(e), None
        self.send(status, body, location)


def serve_http(port: int, role) -> ThreadingHTTPServer:
    handler = type("RoleHandler", (Handler,), {"role": role})
    try:
        server = ThreadingHTTPServer(("0.0.0.0", port), handler)  # asio binds address_v4::any()
    except OSError as e:
        raise Refusal(f"cannot listen on port {port}: {e.strerror}; is another server running?") from e
    server.daemon_threads = True
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


def http_json(address: str, path: str, timeout: float = 2.0) -> tuple[int, object]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data or b"null")
        except ValueError:
            return response.status, data.decode(errors="replace")
    finally:
        conn.close()


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
        self.apps: dict[str, dict] = {}  # leader's view, persisted in ZooKeeper
        self.is_leader = False
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
            for table in self.tables:
                if table["app_name"] not in self.apps:
                    app_id = max((a["app_id"] for a in self.apps.values()), default=0) + 1
                    app = {**table, "app_id": app_id, "create_second": int(time.time()), "envs": {},
                           "partitions": [{"pidx": i, "ballot": 0, "primary": "", "secondaries": [],
                                           "max_replica_count": table["max_replica_count"], "dropped": {}}
                                          for i in range(table["partition_count"])]}
                    self.apps[table["app_name"]] = app
                    self.save(app)
                    log.info("created default table %s (app_id %d)", table["app_name"], app_id)
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
            last_start = (self.stability.get(node) or {}).get("start")
            restarted = "start_time" in ping and last_start is not None and int(ping["start_time"]) > last_start
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
            if not restarted and ping.get("complete"):
                self.on_learned(node, set(ping["complete"]))
            if restarted:
                # A restarted ReplicaServer loads its replicas inactive (replica.cpp:228 at
                # v2.5.0, a new replica object starts PS_INACTIVE; replica_stub.cpp:
                # not a transient inactivity), so none of them serves until the meta
                # reassigns the partition: a secondary becomes primary, the node comes
                # back as a secondary (the guardian, below).
                log.info("worker %s restarted: its replicas come back inactive", node)
                self.on_node_dead(node)
            ack["config"] = self.config_of(node)
            return ack

    def config_of(self, node: str) -> dict:
        out = {}
        for app in self.apps.values():
            for part in app["partitions"]:
                role = "primary" if part["primary"] == node else "secondary" if node in part["secondaries"] else \
                    "learner" if node in part.get("learners", {}) else None
                if role:
                    out[f"{app['app_name']}.{part['pidx']}"] = {
                        "role": role, "ballot": part["ballot"], "app_id": app["app_id"], "pidx": part["pidx"],
                        "replicas": (1 if part["primary"] else 0) + len(part["secondaries"]),
                        "secondaries": [self.workers.get(s, {}).get("addr") for s in part["secondaries"]],
                        "learners": [self.workers.get(s, {}).get("addr") for s in part.get("learners", {})],
                        "primary": self.workers.get(part["primary"], {}).get("addr")}
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
                        self.on_node_dead(node)

    # -- partitions (server_state.cpp, partition_guardian.cpp)
    def frozen(self) -> bool:
        """meta_service.cpp check_freeze (v2.5.0, master): fewer ALIVE than
        min_live_node_count_for_unfreeze, or than node_live_percentage_threshold_for_update
        percent of the nodes it knows (ALIVE and dead)."""
        alive = sum(1 for w in self.workers.values() if w["alive"])
        return alive < self.min_live or alive * 100 < self.live_percentage * len(self.workers)

    def on_node_dead(self, node: str) -> None:
        """The dead node's replicas drop out at once (downgrade to inactive); a lost
        primary is replaced by a secondary only by the guardian, and not when frozen."""
        for app in self.apps.values():
            changed = False
            for part in app["partitions"]:
                if part.get("learners", {}).pop(node, None) is not None:
                    changed = True
                if part["primary"] == node or node in part["secondaries"]:
                    if part["primary"] == node:
                        part["primary"] = ""
                    else:
                        part["secondaries"].remove(node)
                    part["dropped"][node] = time.time()
                    part["ballot"] += 1
                    changed = True
            if changed:
                self.save(app)

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
                        for n in [part["primary"], *part["secondaries"]]:
                            if n in load:
                                load[n] += 1
                for app in self.apps.values():
                    changed = False
                    for part in app["partitions"]:
                        changed |= self.cure(part, alive, load)
                    if changed:
                        self.save(app)

    def cure(self, part: dict, alive: list[str], load: dict) -> bool:
        if not part["primary"]:
            if part["secondaries"]:
                part["primary"] = min(part["secondaries"], key=lambda n: load[n])
                part["secondaries"].remove(part["primary"])
            else:
                candidates = [n for n in part["dropped"] if n in alive] if part["dropped"] else alive
                if not candidates:
                    return False
                part["primary"] = min(candidates, key=lambda n: (load[n], n))
                load[part["primary"]] += 1
            part["dropped"].pop(part["primary"], None)
            part["ballot"] += 1
            return True
        learners = part.setdefault("learners", {})
        if 1 + len(part["secondaries"]) >= part["max_replica_count"] or learners:
            return False  # full, or a new secondary is still learning (one proposal a partition)
        if self.flow_control and self.add_secondary_max <= 0:
            return False  # server_state.cpp: add_secondary_running_nodes[node] >= max: no proposal
        members = {part["primary"], *part["secondaries"]}
        returning = [n for n in part["dropped"] if n in alive and n not in members]
        waited = time.time() - max(part["dropped"].values(), default=0) >= self.assign_delay
        others = [n for n in alive if n not in members] if (waited or not part["dropped"]) else []
        candidates = returning or others
        if not candidates:
            return False
        # ADD_SECONDARY goes to the primary, which has the node learn (a potential secondary,
        # sent every prepare meanwhile: replica_learn.cpp, replica_2pc.cpp); the MetaServer lists
        # it as a secondary only once the primary reports it learned (see on_ping).
        chosen = min(candidates, key=lambda n: (load[n], n))
        learners[chosen] = time.time()
        part["dropped"].pop(chosen, None)
        load[chosen] += 1
        self.push([part["primary"], chosen])
        return True

    def on_learned(self, node: str, complete: set[str]) -> None:
        """The partitions `node` learned become its own as a secondary (upgrade_to_secondary)."""
        for app in self.apps.values():
            changed = False
            for part in app["partitions"]:
                if node in part.get("learners", {}) and f"{app['app_name']}.{part['pidx']}" in complete:
                    del part["learners"][node]
                    part["secondaries"].append(node)
                    part["ballot"] += 1
                    changed = True
                    log.info("gpid(%d.%d): %s learned, now a secondary", app["app_id"], part["pidx"], node)
                    self.push([part["primary"], *part["secondaries"]])
            if changed:
                self.save(app)

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
        self.last_ack = 0.0
        self.lock = threading.Lock()
        self.roles: dict[str, dict] = {}
        self.local: dict[tuple[int, int], str] = {}  # (app_id, pidx) -> "serving" | "closing"
        self.killed: set[tuple[int, int]] = set()  # closed while still a member: never served again here
        self.complete: set[str] = set()  # "T.P" this node holds every acknowledged write of (primary or learned)
        self.learning: dict[str, set[str]] = {}  # "T.P" -> keys prepared here while its learn runs
        self.sync_interval = config.integer("replication", "config_sync_interval_ms", 30000) / 1000
        self.last_sync = time.monotonic()
        self.counter_interval = config.integer("pegasus.server", "perf_counter_update_interval_seconds", 10)
        self.snapshot: tuple[int, dict[str, int]] = (0, {})  # (taken at, seconds; counter -> value)
        self.min_replicas = config.integer("replication", "mutation_2pc_min_replica_count", 2)
        self.store_path = os.path.join(data_dirs[0], "reps", "standin-data.json")
        try:
            with open(self.store_path, encoding="utf-8") as f:
                self.data = json.load(f)
        except (OSError, ValueError):
            self.data = {}
        self.sock: socket.socket | None = None

    def run(self, sock: socket.socket) -> None:
        self.sock = sock
        threading.Thread(target=self.receive, daemon=True, name="fd-recv").start()
        threading.Thread(target=self.take_snapshots, daemon=True, name="counter-reporter").start()
        while not self.stop.is_set():
            sent = time.monotonic()
            with self.lock:
                complete = sorted(self.complete)
            ping = {"t": "ping", "from": self.me, "to": self.target, "time": now_ms(), "start_time": self.start_time,
                    "complete": complete}
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
                    self.roles = {}
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
            self.roles = {k: r for k, r in self.roles.items() if (r["app_id"], r["pidx"]) != gpid}
        self.close(gpid)

    def receive(self) -> None:
        for ack, _ in udp_messages(self.sock, "ack", self.stop):
            if not ack.get("is_master"):
                if ack.get("primary_node"):
                    self.target = ack["primary_node"]
                continue
            if not ack.get("push"):  # a pushed configuration is no beacon answer: no lease
                self.last_ack = time.monotonic()
            with self.lock:
                self.roles = {k: r for k, r in ack.get("config", {}).items()
                              if (r["app_id"], r["pidx"]) not in self.killed}
                for gpid in self.member_of():
                    self.local.setdefault(gpid, "serving")
                self.complete &= set(self.roles)
                self.complete |= {k for k, r in self.roles.items() if r["role"] == "primary"}
                joining = {k: r.get("primary") for k, r in self.roles.items()
                           if r["role"] in ("secondary", "learner") and k not in self.complete
                           and k not in self.learning}
            for gpid, primary in joining.items():
                threading.Thread(target=self.learn, args=(gpid, primary), daemon=True, name="learn").start()

    def learn(self, gpid: str, primary) -> bool:
        """A secondary holds every write its primary acknowledged: in Pegasus a replica joins
        as a potential secondary and learns from the primary before the MetaServer counts it
        (replica_learn.cpp), and a prepare with a newer ballot makes it adopt the
        configuration (replica_2pc.cpp on_prepare, v2.5.0). Here it copies the primary's data
        for the partition, keeping what was prepared here meanwhile (newer)."""
        if not primary:
            return False
        table, _, partition = gpid.rpartition(".")
        with self.lock:
            if gpid in self.learning:
                return False
            self.learning[gpid] = set()
        try:
            status, body = http_json(f"{primary[0]}:{primary[1]}",
                                     f"/standin/learn?table={quote(table)}&partition={partition}", timeout=2)
        except (OSError, http.client.HTTPException):
            status, body = 0, None
        with self.lock:
            prepared = self.learning.pop(gpid, set())
            if status != 200 or not isinstance(body, dict):
                log.warning("%s: learning from %s failed (%s)", gpid, primary, status)
                return False
            for key, value in (body.get("data") or {}).items():
                if key not in prepared:
                    self.data.setdefault(gpid, {})[key] = value
            self.persist()
            self.complete.add(gpid)
        log.info("%s: learned %d keys from the primary %s", gpid, len(body.get("data") or {}), primary)
        return True

    def http(self, path: str, args: list[tuple[str, str]]):
        q = dict(args)
        if path == "/standin/remote_command":
            return 200, {"err": "ERR_OK", "result": self.remote_command(q.get("cmd", ""),
                                                                        [v for k, v in args if k == "arg"])}, None
        if path not in ("/standin/put", "/standin/get", "/standin/replicate", "/standin/learn"):
            return 404, "Not Found", None
        gpid = f"{q.get('table', '')}.{q.get('partition', '')}"
        with self.lock:
            role = self.roles.get(gpid)
        if path == "/standin/learn":
            if not role or role["role"] != "primary":
                return 409, {"error": f"ERR_INVALID_STATE: {self.me} is not the primary of {gpid}"}, None
            with self.lock:
                return 200, {"ok": True, "data": dict(self.data.get(gpid, {}))}, None
        if path == "/standin/replicate":
            # A prepare: not taken by a primary; a replica that does not know yet that it is a
            # secondary adopts the configuration the prepare carries, learning first (see learn).
            if role and role["role"] == "primary":
                return 409, {"error": f"ERR_INVALID_STATE: {self.me} is the primary of {gpid}"}, None
            primary = q.get("primary", "").rpartition(":")[::2] if q.get("primary") else None
            if gpid not in self.complete and not self.learn(gpid, primary):
                return 409, {"error": f"ERR_INACTIVE_STATE: {self.me} could not learn {gpid}"}, None
            with self.lock:
                if gpid in self.learning:
                    self.learning[gpid].add(q.get("key", ""))
            self.write(gpid, q.get("key", ""), q.get("value", ""))
            return 200, {"ok": True}, None
        if not role or role["role"] != "primary":
            return 409, {"error": f"ERR_INVALID_STATE: {self.me} is not the primary of {gpid}"}, None
        if path == "/standin/get":
            return 200, {"ok": True, "value": self.data.get(gpid, {}).get(q.get("key", ""))}, None
        if role["replicas"] < self.min_replicas:
            return 503, {"error": f"ERR_NOT_ENOUGH_MEMBER: {gpid} has {role['replicas']} replica(s), "
                                  f"a write needs {self.min_replicas}"}, None
        for addr in role.get("secondaries", []) + role.get("learners", []):
            if addr:  # the secondary's TCP port is its replica port; learners get every prepare too
                try:
                    http_json(f"{addr[0]}:{addr[1]}",
                              f"/standin/replicate?table={quote(q['table'])}&partition={q['partition']}"
                              f"&key={quote(q.get('key', ''))}&value={quote(q.get('value', ''))}"
                              f"&primary={self.ip}:{self.port}", timeout=1)
                except (OSError, http.client.HTTPException):
                    pass
        self.write(gpid, q.get("key", ""), q.get("value", ""))
        return 200, {"ok": True}, None

    def write(self, gpid: str, key: str, val: str) -> None:
        with self.lock:
            self.data.setdefault(gpid, {})[key] = val
            self.persist()

    def persist(self) -> None:
        """The data to disk (with the lock held)."""
        tmp = self.store_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f)
        os.replace(tmp, self.store_path)


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
        meta = Meta(config, ip, port, stop)
        server = serve_http(port, meta)
        sock = udp_socket(port)
        closers += [server.shutdown, server.server_close, sock.close, meta.close]
        meta.start()
        threading.Thread(target=meta.serve_udp, args=(sock,), daemon=True, name="fd-udp").start()
    elif role == "replica":
        replica = Replica(config, ip, port, prepare_replica_dirs(config), stop)
        server = serve_http(port, replica)
        sock = udp_socket(port)
        closers += [server.shutdown, server.server_close, sock.close]
        threading.Thread(target=replica.run, args=(sock,), daemon=True, name="fd-beacon").start()
    else:
        collector = Collector(config, stop)
        server = serve_http(port, collector)
        closers += [server.shutdown, server.server_close]
        threading.Thread(target=collector.run, daemon=True, name="collector").start()
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
