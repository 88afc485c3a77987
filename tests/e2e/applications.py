"""Applications of a cluster under test: machines that run Apache's Python client.

An application machine is an instance its owner launches outside the stack: on
AWS, into the stack's `<cluster>-clients` group (Engine.launch_application); with
your own servers, on their network. It gets pypegasus3 from PyPI
(tests/support/pypegasus_env.py) and runs tests/e2e/appclient/availability_load.py,
whose figures each day-2 scenario prints as one line.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Callable

from tests.e2e.localcloud.testing import wait_for
from tests.support.pypegasus_env import install_on

# What the servers' logs say of failure detection and leadership (the stand-in logs as the
# real servers do): shown beside figures that fell short, so a failure explains itself.
SERVER_EVENTS = ("lease expired|disconnected, no beacon|unstable|restarted: its replicas|became the leader|"
                 "ZooKeeper connection state|rejected by|received SIG|ping master|prepare to .* failed|"
                 "replica\\(s\\) left|removed at the primary's request|re-preparing decrees|replaced by the one")

TABLE = "availability"  # the table the load creates (8 partitions, 3 replicas) and keeps using
PARTITIONS = 8


def prepare(machine) -> str:
    """Installs the client on the machine; returns the command that runs the load driver."""
    return install_on(machine.root)


class Load:
    """One run of the load driver on an application machine, from start to its figures."""

    def __init__(self, machine, meta_servers: str, name: str, table: str = TABLE, partitions: int = PARTITIONS,
                 servers: Callable[[], list] = list) -> None:
        """`servers` gives the cluster's machines when the figures are read (a replaced
        server is a new machine), whose logs explain figures that fell short."""
        self.machine, self.metas, self.name = machine, meta_servers, name
        self.table, self.partitions = table, partitions
        self.stop_file, self.out = f"/root/stop-{name}", f"/root/load-{name}.json"
        self.started = 0.0
        self.started_at = 0.0
        self.servers = servers

    def start(self) -> "Load":
        driver = prepare(self.machine)
        self.machine.check(f"rm -f {self.stop_file} {self.out}")
        self.started_at = time.time()
        command = (f"cd /root && {driver} --metas {shlex.quote(self.metas)} --table {self.table} "
                   f"--partitions {self.partitions} --stop-file {self.stop_file} --out {self.out}")
        self.machine.check(f"setsid nohup bash -c {shlex.quote(command)} >/root/load-{self.name}.err 2>&1 "
                           "</dev/null & disown")
        # The table exists and every partition has its three replicas before the operation begins.
        try:
            wait_for(lambda: "load started" in self.machine.check(f"cat /root/load-{self.name}.err || true")
                     or self.machine.check(f"test -s {self.out} && echo done || true").strip(),
                     f"the load driver on {self.machine.name} to start", 180)
        except AssertionError as error:
            _, out, _ = self.machine.ssh(f"tail -n 40 /root/load-{self.name}.err; ls -la /opt/pegasus-app; "
                                         "pgrep -af availability_load || echo no driver running")
            raise AssertionError(f"{error}; the driver's stderr:\n{out}") from None
        self.started = time.monotonic()
        return self

    def failure(self) -> dict:
        """Stops a load that could not run: why (`error`), and the partitions ever seen
        below 2 replicas meanwhile (`below_two`)."""
        self.machine.check(f"touch {self.stop_file}")
        wait_for(lambda: self.machine.check(f"cat {self.out} 2>/dev/null || true").strip(),
                 "the load driver's outcome", 300)
        outcome = json.loads(self.machine.check(f"cat {self.out}"))
        assert "error" in outcome, outcome
        return outcome

    def result(self, operation: str) -> dict:
        """Stops the load and prints `availability during <operation> (pypegasus3): ...`."""
        self.machine.check(f"touch {self.stop_file}")
        try:
            wait_for(lambda: self.machine.check(f"cat {self.out} 2>/dev/null || true").strip(),
                     "the load driver's figures", 300)
        except AssertionError as error:
            _, out, _ = self.machine.ssh(f"tail -n 40 /root/load-{self.name}.err")
            raise AssertionError(f"{error}; the driver's stderr:\n{out}") from None
        stats = json.loads(self.machine.check(f"cat {self.out}"))
        if "error" in stats:
            _, out, _ = self.machine.ssh(f"tail -n 40 /root/load-{self.name}.err")
            raise AssertionError(f"the load driver failed: {stats['error']}\n{out}")
        total = stats["total"]
        print(f"\navailability during {operation} (pypegasus3): {stats['errors']}/{total} errors, "
              f"{stats['failed']}/{total} failed, {stats['lost']} lost, {len(stats['below_two'])} partitions "
              f"ever below 2 replicas (first tries: {stats['error_names']}; after retries: {stats['failed_names']};"
              f" {stats['acked']} writes read back)")
        if stats["samples"]:
            print(f"  failed operations (seconds into the load, time, op, hash key, first, last): {stats['samples']}")
        if stats["failed"] or stats["below_two"]:
            print(self.server_events())
        assert total > 0 and stats["acked"] > 0, stats
        assert stats["unreadable"] == 0, stats  # every acknowledged write could be read back
        assert stats["lost"] == 0, stats
        return stats

    def server_events(self) -> str:
        """Each server's log lines of SERVER_EVENTS since the load started (its log files,
        log.<n>.txt under the role's directory: the journal has only the warnings)."""
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        lines = []
        for server in self.servers():
            rc, out, _ = server.ssh(
                "find /home/work/app/pegasus -path '*/log/log.*.txt' -printf '%T@ %p\\n' | sort -n | cut -d' ' -f2 "
                f"| xargs -r grep -hE {shlex.quote(SERVER_EVENTS)} | awk -v since={shlex.quote(since)} "
                "'substr($0, 2, 19) >= since' | sort -s -k1.2 | tail -n 40")
            lines.append(f"  --- {server.name}: " + ((out.rstrip() or "(none)") if rc == 0 else f"unreadable ({rc})"))
        return "  server events during the load:\n" + "\n".join(lines)


def raw_writes(machine, meta_servers: str, table: str, seconds: float) -> int:
    """Puts from `machine` to every partition of `table` for `seconds`, with the wire module
    alone (2.6, which pypegasus3 cannot read); how many were acknowledged."""
    prepare(machine)
    out = machine.check(f"PYTHONPATH=/opt/pegasus-app python3 /opt/pegasus-app/raw_writes.py "
                        f"--metas {shlex.quote(meta_servers)} --table {table} --seconds {seconds}")
    return int(out.split()[0])


def reaches(machine, address: str, seconds: int = 5) -> str:
    """"open", "refused" or "timeout": a TCP connect from `machine` to `address` (ip:port)."""
    ip, port = address.rsplit(":", 1)
    rc, _, _ = machine.ssh(f"timeout {seconds} bash -c 'exec 3<>/dev/tcp/{ip}/{port}'")
    return {0: "open", 124: "timeout"}.get(rc, "refused")
