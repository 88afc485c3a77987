"""Pegasus's procedures around a ReplicaServer, through the admin shell.

From scripts/pegasus_rolling_update.sh and scripts/pegasus_offline_node.sh
(apache/incubator-pegasus v2.5.0), as the rolling restart runs them:

- `begin(purpose)`: meta level steady; `meta.lb.assign_delay_ms` raised for a
  restart (30 min: the meta must not re-home a restarting node's replicas) or
  lowered to 10 ms for a removal (they are re-homed at once). The settings
  found are kept for `end`.
- `drain(*nodes)`: `add_secondary_max_count_for_one_node 0`, their primaries
  moved to one of their secondaries (`balance --type move_pri`, as
  migrate_node.sh writes them), then their replicas downgraded (`propose
  --type DOWNGRADE_TO_INACTIVE` sent to each primary, as downgrade_node.sh
  writes them), each until `nodes -d` shows none left; a timeout fails the
  drain (the scripts go on and restart anyway; here the roll stops, settings
  put back). The scripts drain one node; a group of nodes that share no
  partition (operations/roll_plan.py) drains the same way at once, with no
  primary moved to a node of the group and no replica downgraded where that
  would leave its partition fewer than two outside the group.
- `close(*nodes)`, after the drain and before the restart (the rolling update's
  close step): `replica.kill_partition <app_id> <pidx>` sent to each node for
  each partition downgraded away from it, which closes those replicas (and so
  flushes their memtables: the restart then replays less of the log); then,
  up to 2.5, `perf-counters '.*replica(Count)'` until its replicas serving,
  opening and closing are 0 (90 s, kill_partition sent again every 50 s);
  then `flush-log`. `kill_partitions(node)` is the offline procedure's part
  of it (no wait, no flush-log). As in the scripts, a kill_partition or
  flush-log that does not reach the node is no error; the wait is what counts.
- `release_secondaries()`: `add_secondary_max_count_for_one_node 100` once the
  node is back (or DEFAULT once a removed node is stopped), so the meta adds
  secondaries again.
- `end()`: every setting put back, each one tried even if another fails.

Nodes are given as "ip:port", the address the stack knows; each is used in
every shell command under the name the MetaServers list it by
(AdminShell.node_name: itself up to 2.5, its `host:port` on master).

On master the close step does not wait on the counters: replica_stub.cpp
there keeps them as metrics (total_replicas, opening_replicas,
closing_replicas), `perf-counters` no longer lists them, and the shell's
`server_stat` reads only memory metrics (node_management.cpp
server_stat_filters); master's own admin_tools/pegasus_rolling_update.sh
still greps perf-counters and stops there ("extract replica count from perf
counters failed"). The replicas are still killed and the log flushed.

One addition to the scripts: `meta.lb.add_secondary_enable_flow_control true`
while draining, put back after. server_state.cpp (v2.5.0) counts
`add_secondary_max_count_for_one_node` only with flow control on; the release's
config.ini turns it on, but an override may not, and then the limit the
scripts set does nothing: the meta adds the downgraded node straight back as a
secondary (partition_guardian.cpp prefers the last dropped node when alive).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from components.operations.admin_shell import AdminShell, AdminShellError

RESTART_ASSIGN_DELAY_MS = "180000000"  # pegasus_rolling_update.sh
REMOVAL_ASSIGN_DELAY_MS = "10"  # pegasus_offline_node.sh
ASSIGN_DELAY = "meta.lb.assign_delay_ms"
FLOW_CONTROL = "meta.lb.add_secondary_enable_flow_control"
ADD_SECONDARY_MAX = "meta.lb.add_secondary_max_count_for_one_node"


class DrainFailed(RuntimeError):
    """A ReplicaServer kept primaries or replicas past the procedure's timeout."""


@dataclass
class Timeouts:
    migrate_seconds: float = 30.0  # pegasus_rolling_update.sh: migration timeout
    downgrade_seconds: float = 90.0  # pegasus_rolling_update.sh: downgrade timeout
    close_seconds: float = 90.0  # pegasus_rolling_update.sh: close timeout
    poll_seconds: float = 1.0
    resend_every: int = 10  # polls between two rounds of proposals
    kill_every: int = 50  # polls between two rounds of kill_partition (the script's)


@dataclass
class Drain:
    shell: AdminShell
    log: Callable[[str], None]
    timeouts: Timeouts = field(default_factory=Timeouts)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    leader: str = ""
    saved: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # "ip:port" -> the MetaServers' name for it
    downgraded: dict[str, set[str]] = field(default_factory=dict)  # name -> gpids proposed away from it

    def begin(self, purpose: str) -> None:
        """purpose: "restart" or "removal"."""
        shell = self.shell
        self.leader = shell.leader()
        self.saved["level"] = shell.get_meta_level()
        self.saved[FLOW_CONTROL] = shell.setting(self.leader, FLOW_CONTROL)
        shell.set_meta_level("steady")
        delay = RESTART_ASSIGN_DELAY_MS if purpose == "restart" else REMOVAL_ASSIGN_DELAY_MS
        self.saved[ASSIGN_DELAY] = "DEFAULT"
        self._set(ASSIGN_DELAY, delay)
        self._set(FLOW_CONTROL, "true")
        self.log(f"admin shell: meta level steady (was {self.saved['level']}), {ASSIGN_DELAY} {delay}, "
                 f"{FLOW_CONTROL} true on the leading MetaServer {self.leader}")

    def _set(self, setting: str, value: str) -> None:
        self.shell.set_setting(self.leader, setting, value)

    def node(self, address: str) -> str:
        """The name the MetaServers list the ReplicaServer at `address` by."""
        if address not in self.names:
            name = self.shell.node_name(address)
            if name is None:
                raise DrainFailed(f"the MetaServers do not list {address} (`nodes -d`), neither by that address "
                                  "nor by a host name that resolves to it on the MetaServer host")
            self.names[address] = name
        return self.names[address]

    def drain(self, *addresses: str) -> None:
        """Moves the nodes' primaries, then their replicas, away; fails if they stay."""
        nodes = [self.node(a) for a in addresses]
        for node in nodes:
            self.downgraded[node] = set()
        self.saved[ADD_SECONDARY_MAX] = "DEFAULT"
        self._set(ADD_SECONDARY_MAX, "0")
        self._until(nodes, "primaries", self.timeouts.migrate_seconds, self._move_primaries)
        self._until(nodes, "replicas", self.timeouts.downgrade_seconds, self._downgrade)

    def kill_partitions(self, address: str) -> None:
        """`replica.kill_partition` on the node for each partition downgraded away from it. As
        in the scripts, a call that fails is no error: the restart (or stop) closes them too."""
        node = self.node(address)
        gpids = sorted(self.downgraded.get(node, ()), key=lambda g: tuple(int(x) for x in g.split(".")))
        answers = self.shell.calls(node, [f"replica.kill_partition {g.replace('.', ' ')}" for g in gpids]) \
            if gpids else []
        failed = [g for g, answer in zip(gpids, answers) if answer is None]
        self.log(f"admin shell: {node}: replica.kill_partition sent for {len(gpids)} partitions"
                 + (f", not delivered for {', '.join(failed)}" if failed else ""))

    def close(self, *addresses: str) -> None:
        """The rolling update's close step: their downgraded replicas closed, their logs flushed."""
        nodes = [self.node(a) for a in addresses]
        if self.shell.by_host:  # master: no replica counters to wait on (see the module's doc)
            for address, node in zip(addresses, nodes):
                self.kill_partitions(address)
                self.log(f"admin shell: {node}: master lists no replica counters to wait on")
        else:
            deadline, polls = self.clock() + self.timeouts.close_seconds, 0
            left: dict[str, int | None] = dict.fromkeys(nodes)
            while True:
                for address, node in zip(addresses, nodes):
                    if left[node] != 0 and polls % self.timeouts.kill_every == 0:
                        self.kill_partitions(address)
                for node in nodes:
                    if left[node] != 0:
                        left[node] = self.shell.open_replicas(node)  # None: the node did not answer this time
                        if left[node] == 0:
                            self.log(f"admin shell: {node} has closed its replicas")
                if all(count == 0 for count in left.values()):
                    break
                if self.clock() >= deadline:
                    states = [f"{node} did not answer perf-counters" if count is None else
                              f"{node} still has {count} replicas open or closing"
                              for node, count in left.items() if count != 0]
                    raise DrainFailed(f"{'; '.join(states)} after {self.timeouts.close_seconds:.0f}s of "
                                      "replica.kill_partition; see its log")
                polls += 1
                self.sleep(self.timeouts.poll_seconds)
        for node in nodes:
            if self.shell.calls(node, ["flush-log"]) == [None]:  # the script ignores it too
                self.log(f"admin shell: {node}: flush-log was not delivered")

    def _until(self, nodes: list[str], what: str, seconds: float, send: Callable[[list[str]], int]) -> None:
        deadline, polls = self.clock() + seconds, 0
        who, its = ", ".join(nodes), "its" if len(nodes) == 1 else "their"
        while True:
            if polls % self.timeouts.resend_every == 0:
                sent = send(nodes)
                self.log(f"admin shell: {who}: {sent} proposals sent to move {its} {what} away")
            rows = self.shell.nodes()
            gone = [node for node in nodes if node not in rows]
            if gone:
                raise DrainFailed(f"the MetaServers no longer list {', '.join(gone)} (`nodes -d`)")
            left = {node: rows[node].primaries if what == "primaries" else rows[node].replicas for node in nodes}
            if not any(left.values()):
                self.log(f"admin shell: {who} {'holds' if len(nodes) == 1 else 'hold'} no {what}")
                return
            if self.clock() >= deadline:
                holding = "; ".join(f"{node} still holds {count} {what}" for node, count in left.items() if count)
                raise DrainFailed(f"{holding} after {seconds:.0f}s of proposals; see the leading MetaServer's log")
            polls += 1
            self.sleep(self.timeouts.poll_seconds)

    def _move_primaries(self, nodes: list[str]) -> int:
        """Each primary a node of the group leads to its least loaded ALIVE secondary outside the group."""
        group = set(nodes)
        partitions = self.shell.all_partitions()
        load: dict[str, int] = {}
        for p in partitions:
            load[p.primary] = load.get(p.primary, 0) + 1
        alive = {n for n, row in self.shell.nodes().items() if row.status == "ALIVE"}
        lines = []
        for p in partitions:
            candidates = [s for s in p.secondaries if s in alive and s not in group]
            if p.primary in group and candidates:
                to = min(candidates, key=lambda s: (load.get(s, 0), s))  # the least loaded, not a random one
                load[to] = load.get(to, 0) + 1
                lines.append(f"balance --gpid {p.gpid} --type move_pri -f {p.primary} -t {to}")
        return self.shell.propose_all(lines, "send balance proposal result")

    def _downgrade(self, nodes: list[str]) -> int:
        group = set(nodes)
        lines = []
        for p in self.shell.all_partitions():
            # downgrade_node.sh refuses a partition without primary, led by the node, or with
            # one secondary (it would drop below 2 replicas); for a group, every replica of
            # the group counts as gone, and one proposal a partition (the MetaServer takes no
            # second while one is pending: server_load_balancer.cpp register_proposals).
            outside = [s for s in p.secondaries if s not in group]
            node = next((s for s in p.secondaries if s in group), None)
            if node and p.primary and p.primary not in group and outside:
                lines.append(f"propose --gpid {p.gpid} --type DOWNGRADE_TO_INACTIVE -t {p.primary} -n {node}")
                self.downgraded.setdefault(node, set()).add(p.gpid)
        return self.shell.propose_all(lines, "send proposal response")

    def release_secondaries(self, value: str = "100") -> None:
        self._set(ADD_SECONDARY_MAX, value)

    def wait_healthy(self, seconds: float) -> None:
        """`ls -d` until every partition is fully healthy (pegasus_offline_node.sh)."""
        deadline = self.clock() + seconds
        while (unhealthy := self.shell.unhealthy_partitions()) != 0:
            if self.clock() >= deadline:
                raise DrainFailed(f"{unhealthy} partitions are still not fully healthy after {seconds:.0f}s")
            self.sleep(self.timeouts.poll_seconds)
        self.log("admin shell: every partition is fully healthy")

    def wait_unalive(self, address: str, seconds: float) -> None:
        """Until the MetaServer lists a stopped node UNALIVE (after fd_grace_seconds)."""
        node = self.node(address)
        deadline = self.clock() + seconds
        while (row := self.shell.nodes().get(node)) is not None and row.status == "ALIVE":
            if self.clock() >= deadline:
                raise DrainFailed(f"{node} was stopped but the MetaServer still lists it ALIVE after {seconds:.0f}s")
            self.sleep(self.timeouts.poll_seconds)

    def end(self) -> list[str]:
        """Puts back every setting `begin` and `drain` changed; returns the ones that failed."""
        failed = []
        for setting in (ADD_SECONDARY_MAX, ASSIGN_DELAY, FLOW_CONTROL):
            if setting in self.saved:
                try:
                    self._set(setting, self.saved[setting])
                except (AdminShellError, OSError) as exc:
                    failed.append(f"{setting} {self.saved[setting]}: {exc}")
        if "level" in self.saved:
            try:
                if self.saved["level"] != "steady":
                    self.shell.set_meta_level(self.saved["level"])
            except (AdminShellError, OSError) as exc:
                failed.append(f"meta level {self.saved['level']}: {exc}")
        if not failed:
            self.log(f"admin shell: MetaServer settings put back ({', '.join(sorted(self.saved))})")
        self.saved.clear()
        return failed
