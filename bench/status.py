"""`make bench`: how long `make status` takes for 100 servers (issue 21: under 10 s).

The servers are simulated by one real sshd on loopback that stands for each of
them (127.0.0.1 and 127.0.0.2, raised MaxStartups as 100 separate sshds would
allow), asked by tools/status.py's own `collect` (its SSH session, key exchange
order and second dial included): one connection per host, all at once, each
running the real host script (on this machine, which runs no Pegasus unit),
plus the cluster script against a fake MetaServer that lists every ReplicaServer.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from components.operations import cluster_status
from components.ssh.known_hosts import Pin
from tests.support.ssh_server import SshServer, sshd_unavailable_reason
from tests.unit.script_runner import FakeMeta
from tools import status as status_tool

STATUS_TARGET_S = 10.0


def measure(servers: int = 100) -> tuple[float, str] | str:
    """(seconds, note), or why it could not be measured."""
    reason = sshd_unavailable_reason()
    if reason:
        return reason
    with tempfile.TemporaryDirectory() as tmp:
        sshd = SshServer(Path(tmp) / "sshd").prepare()
        with open(sshd.config_path, "a", encoding="utf-8") as f:
            f.write("MaxStartups 300:30:600\n")
        sshd.start()
        meta = FakeMeta()
        try:
            meta.nodes = {f"10.0.2.{i}:34801": "ALIVE" for i in range(servers)}
            meta.tables = ["temp"]
            outputs = {"metaServers": meta.address,
                       "ssh": {**{f"meta-{i}": f"ssh {sshd.user}@127.0.0.{1 + i % 2}" for i in range(3)},
                               **{f"replica-{i}": f"ssh {sshd.user}@127.0.0.{1 + i % 2}" for i in range(servers - 3)}}}
            pins = tuple(Pin.from_dict(sshd.pin(address)) for address in ("127.0.0.1", "127.0.0.2"))
            started = time.perf_counter()
            status = status_tool.collect(outputs, sshd.client_key_path.read_text(), pins=pins, port=sshd.port)
            cluster_status.format_status(status)
            seconds = time.perf_counter() - started
            answered = sum(1 for h in status.hosts if h.reachable)
            load = os.getloadavg()[0]
            # Both ends of every connection run on this machine: another program's load slows both.
            return seconds, (f"{answered}/{len(status.hosts)} hosts answered, {len(status.cluster.nodes or {})} "
                             f"nodes listed, load average {load:.1f} on {os.cpu_count()} CPUs")
        finally:
            meta.close()
            sshd.stop()
