"""The cluster's rolling restart: one resource that restarts changed servers, ReplicaServers in groups.

Each Pegasus server's `<cluster>-<host>-<role>-config` command stages, next to its
newest config.ini, the script that restarts it (templates/restart_role.sh.j2).
This resource holds, per server, the record of what that server runs with
(`restart_records`, one fact a line: package, addresses, overrides, unit and
config hashes), so a preview's diff names each server that will restart and
says in plain words why. Then, from where `pulumi up` runs, over SSH:

- update: every server is asked in parallel whether it runs its newest files
  (a roll that failed or was cut short leaves servers on files the state no
  longer records: reverting the change must still bring them back); those,
  and the servers whose record changed, restart in Pegasus's rolling-update
  order (admin_tools/pegasus_rolling_update.sh, v2.5.0): ReplicaServers, then
  MetaServers with the leader deferred to a second pass, then the Collector.
  Each restart waits for a healthy cluster before and after (the script's
  gates), and the roll stops at the first server that fails. ReplicaServers
  restart in groups that share no partition (`roll`, at most
  `roll.maxParallel` at once), planned by operations/roll_plan.py from the
  partition map a MetaServer host reads (`map_script`) before each group;
  one at a time when the plan says so, and why. A failure in a group stops
  the roll once the whole group is done, naming the servers restarted, failed
  and not started. When the stack also drops ReplicaServers and there are no
  admin tools to drain them, the scale-in guard (`removal_guard`) is asked
  first, so a refused scale-in restarts nothing. `staged` (each server's stamp of its staged
  files, from its config command) changes whenever new files are staged, so an `up` that
  stages files runs this update even when the records are those the state already holds.
- create (a new cluster, or a stack that had per-server roll commands before):
  every server is asked in parallel whether it runs its newest files; those
  that do not restart as above. Then every server is checked in parallel:
  it serves, it is ALIVE, every table is healthy; a failure shows that
  server's logs.
- delete: nothing (the servers stop with their own resources).

With Pegasus's admin tools installed on the MetaServer hosts (`tools`), as
Pegasus's own scripts do it (replica_drain.py): each group of ReplicaServers
is drained together (primaries moved to servers outside it, replicas
downgraded, then closed) before it restarts, and the MetaServer's settings are
put back after the last one, also when the roll fails; a ReplicaServer the
stack drops is drained, stopped and waited for (its partitions healthy again
elsewhere) before Pulumi deletes it (deletes come last in a deployment, after
this update), and the MetaServers then restart to forget its UNALIVE record.
Without tools, rolls are health-gated only (the gate is per group). The drain
is recorded on the tools' host while it runs (drain_record.py): before
anything else, the roll puts back what an interrupted one changed.

A restart that loses its SSH connection midway goes on by itself on the host
(restart_role.sh runs it apart from the session, one per role at a time): the
roll then stops there without dialling again, and the next `up` finds where it
got to.

Why one resource rather than one per server: a per-server restart chained to
the previous one makes the first deploy as long as the cluster is wide and
makes the SDK's dependency checks quadratic (1000 ReplicaServers did not
evaluate). Here the graph has one edge per server.

Like the ZooKeeper path guard, the provider is pickled by reference to this
module (see zookeeper_path_guard.py): keep it importable, free of side
effects at import, and tolerant of outputs written by older versions.
"""

from __future__ import annotations

import contextlib
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import pulumi
import pulumi.dynamic

from components.operations.admin_shell import AdminShell, AdminShellError
from components.operations.drain_record import DrainRecordError, DrainRecords, records_dir
from components.operations.provider_inputs import plain
from components.operations.replica_drain import Drain, DrainFailed, put_back_interrupted
from components.operations.roll_plan import (
    ClusterMap,
    MapUnreadable,
    RollLimits,
    RollPlan,
    node_names,
    plan_roll,
    read_map_output,
)
from components.render.host_layout import legacy_role_unit, restart_script_name
from components.render.templates import as_root
from components.ssh.known_hosts import with_departed
from components.ssh.session import SSH_FAILED, SshResult, SshSession, session_for
from components.spec.topology import ROLL_ORDER

# Exit status of the restart script's probe phase when a restart is due.
RESTART_DUE = 3
# SSH sessions at once when every server is asked or checked.
PARALLEL_SESSIONS = 16
INPUT_KEYS = ("restart_records", "hosts", "staged_dir", "access", "replica_nodes", "tools", "roll", "map_script",
              "map_hosts", "staged", "replica_units")
# Failures of the admin shell, or of the drain records beside it, while a drain runs.
SHELL_FAILURES = (DrainFailed, AdminShellError, DrainRecordError)


class RollFailed(RuntimeError):
    """A server did not restart healthy, or did not pass its check."""


def server_key(host: str, role: str) -> str:
    return f"{host}/{role}"


def roll_position(key: str) -> tuple[int, str, int]:
    """Sort key of "<kind>-<index>/<role>": role in roll order, then host kind and index."""
    host, _, role = key.partition("/")
    kind, _, index = host.rpartition("-")
    return (ROLL_ORDER.index(role) if role in ROLL_ORDER else len(ROLL_ORDER), kind,
            int(index) if index.isdigit() else 0)


def changed_servers(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Servers whose record changed, in roll order. A server new to the stack just
    started with its newest files; a server gone from it is not restarted."""
    return sorted((key for key in new if key in old and old[key] != new[key]), key=roll_position)


def removed_replicas(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """ReplicaServers the stack drops, in roll order."""
    return sorted((key for key in old if key not in new and key.endswith("/replica")), key=roll_position)


def restart_steps(keys: Sequence[str], phase: str = "roll") -> list[tuple[str, str]]:
    """(server, phase) in the order they run: every server's `roll` (or `force`), and
    after the last MetaServer a `deferred` pass over the MetaServers (the leader defers)."""
    ordered = sorted(keys, key=roll_position)
    metas = [k for k in ordered if k.endswith("/meta")]
    steps: list[tuple[str, str]] = []
    for key in ordered:
        steps.append((key, phase))
        if metas and key == metas[-1]:
            steps += [(meta, "deferred") for meta in metas]
    return steps


def roll_summary(old: Mapping[str, Any], new: Mapping[str, Any], roll: Optional[Mapping[str, Any]]) -> str:
    """What an update will restart and how, in words (shown by the preview): "" for nothing."""
    keys = changed_servers(old, new)
    if not keys:
        return ""
    replicas = [k for k in keys if k.endswith("/replica")]
    others = [k for k in keys if not k.endswith("/replica")]
    cap = int((roll or {}).get("max_parallel") or 1)
    parts = []
    if replicas and cap > 1 and len(replicas) > 1:
        parts.append(f"{', '.join(replicas)}: in groups of at most {cap} ReplicaServers that share no partition "
                     "(roll.maxParallel), planned from the partition map before each group")
    elif replicas:
        others = replicas + others
    if others:
        parts.append(f"one at a time: {', '.join(others)}")
    return "; then ".join(parts)


def script_command(staged_dir: str, key: str, phase: str) -> str:
    script = f"{staged_dir}/{restart_script_name(key.partition('/')[2])}"
    return as_root(f"exec bash {shlex.quote(script)} {shlex.quote(phase)}\n")


def each_server(session: SshSession, hosts: Mapping[str, str], staged_dir: str, keys: Sequence[str],
                phase: str) -> dict[str, SshResult]:
    """Runs `phase` of each server's staged restart script, in parallel; server -> its result."""
    def run(key: str) -> SshResult:
        return session.run(hosts[key.partition("/")[0]], script_command(staged_dir, key, phase))
    with ThreadPoolExecutor(max_workers=PARALLEL_SESSIONS) as pool:
        return dict(zip(keys, pool.map(run, keys)))


class Roll:
    """Runs the phases of the staged restart scripts over one SSH session."""

    def __init__(self, session: SshSession, hosts: Mapping[str, str], staged_dir: str,
                 log: Callable[[str], None], *, tools: Optional[Mapping[str, Any]] = None,
                 replica_nodes: Optional[Mapping[str, str]] = None, servers: Sequence[str] = (),
                 removed_hosts: Optional[Mapping[str, str]] = None,
                 drain_factory: Optional[Callable[[AdminShell], Drain]] = None,
                 roll: Optional[Mapping[str, Any]] = None, map_script: str = "",
                 map_hosts: Sequence[str] = (), replica_units: Sequence[str] = ()) -> None:
        self._session, self._hosts, self._staged_dir, self._log = session, hosts, staged_dir, log
        self._tools, self._nodes = tools, dict(replica_nodes or {})
        self._servers = list(servers)  # every server of the stack ("replica-0/replica")
        self._removed_hosts = dict(removed_hosts or {})  # SSH addresses of the hosts the stack drops
        # The units a ReplicaServer runs under: this cluster's, and the one stacks deployed before
        # named without the cluster (a server not rolled since runs under it).
        self._replica_units = list(replica_units) or [legacy_role_unit("replica")]
        self._drain_factory = drain_factory or (lambda shell: Drain(shell, log, records=self._records()))
        # Groups of ReplicaServers: the planner's limits, and where the partition map is read.
        # (numbers come back from the engine's state as floats)
        self._limits = RollLimits(**{k: int(v) for k, v in roll.items()}) if roll else RollLimits(1)
        self._map_script, self._map_hosts = map_script, list(map_hosts)

    def _run(self, key: str, phase: str) -> SshResult:
        host = self._hosts[key.partition("/")[0]]
        return self._session.run(host, script_command(self._staged_dir, key, phase))

    def _on_tools_host(self, command_line: str) -> tuple[int, str]:
        result = self._session.run(self._hosts[(self._tools or {})["host"]], command_line)
        return result.returncode, result.output

    def _shell(self) -> AdminShell:
        """The admin shell on the tools' MetaServer host, over this roll's session."""
        tools = self._tools or {}
        return AdminShell(self._on_tools_host, tools["dir"], tools["meta_list"], tools.get("library_dir", ""),
                          tools["release"])

    def _records(self) -> DrainRecords:
        return DrainRecords(self._on_tools_host, records_dir(self._staged_dir))

    def _drain(self) -> Drain:
        return self._drain_factory(self._shell())

    def put_back_interrupted_drains(self) -> None:
        """With the admin tools: what a drain cut short (a killed `pulumi up`) left changed on
        the MetaServer is put back before anything else."""
        if not self._tools:
            return
        try:
            put_back_interrupted(self._shell(), self._records(), self._log)
        except SHELL_FAILURES as exc:
            raise RollFailed(str(exc)) from exc

    def _node(self, key: str) -> str:
        host = key.partition("/")[0]
        if host not in self._nodes:
            raise RollFailed(f"the stack does not record {host}'s ReplicaServer address: run `pulumi up` once "
                             "without removing servers, then remove them")
        return self._nodes[host]

    def refuse_unsafe_removal(self, removed: Sequence[str], guard: str) -> None:
        """Without the admin tools nothing drains a ReplicaServer the stack drops: the
        scale-in guard asks the MetaServers about it before anything restarts, and
        Pulumi runs it again, as `<cluster>-replica-removal`, before deleting it."""
        entries = [f"{key.partition('/')[0]}={self._node(key)}" for key in removed]
        meta = next(key.partition("/")[0] for key in self._servers if key.endswith("/meta"))
        result = self._session.run(self._hosts[meta],
                                   as_root(f"set -- {' '.join(shlex.quote(e) for e in entries)}\n{guard}"))
        if result.returncode != 0:
            raise RollFailed(f"the stack drops {', '.join(removed)}, which the scale-in guard refuses; nothing was "
                             f"restarted. Its output:\n{result.tail()}")

    def _each(self, keys: Sequence[str], phase: str) -> dict[str, SshResult]:
        return each_server(self._session, self._hosts, self._staged_dir, keys, phase)

    def due(self, keys: Sequence[str], *, skip_unreachable: bool = False) -> list[str]:
        """The servers that do not run their newest files, asked in parallel. `skip_unreachable`:
        a host that does not answer SSH is left out (restarted only if its record changed)."""
        answers = self._each(keys, "probe")
        if skip_unreachable:
            unreachable = sorted((k for k, r in answers.items() if r.returncode == SSH_FAILED and not r.started),
                                 key=roll_position)
            if unreachable:
                self._log(f"rolling restart: could not ask {', '.join(unreachable)} whether a restart is due "
                          "(no SSH); only a change of their records restarts them")
            answers = {k: r for k, r in answers.items() if k not in unreachable}
        failed = {k: r for k, r in answers.items() if r.returncode not in (0, RESTART_DUE)}
        if failed:
            raise RollFailed(failure_report("could not ask these servers whether a restart is due", failed))
        return sorted((k for k, r in answers.items() if r.returncode == RESTART_DUE), key=roll_position)

    def _step(self, key: str, phase: str, keys: Sequence[str], done: list[str]) -> None:
        self._log(f"rolling restart: {key} ({phase})")
        result = self._run(key, phase)
        if result.returncode != 0:
            untouched = [k for k in sorted(keys, key=roll_position) if k not in done and k != key]
            raise RollFailed(
                f"{key} {_what_failed(result, phase)}; the roll stopped there. Restarted before it: "
                f"{', '.join(done) or 'none'}; not restarted: {', '.join(untouched) or 'none'}. "
                f"Its output:\n{result.tail()}")
        if phase in ("roll", "force", "drained") and key not in done:
            done.append(key)

    def restart(self, keys: Sequence[str], removed: Sequence[str] = ()) -> list[str]:
        """Restarts `keys` in roll order, ReplicaServers in groups that share no partition and
        the rest one at a time; stops at the first failure. With the admin tools: removes the
        `removed` ReplicaServers first, drains each group before its restart, and restarts the
        MetaServers after a removal."""
        done: list[str] = []
        steps = restart_steps(keys)
        replicas = [key for key, _ in steps if key.endswith("/replica")]
        steps = [(key, phase) for key, phase in steps if not key.endswith("/replica")]
        if self._tools:
            if removed:
                self._remove(removed)
            if replicas:
                self._drained_restarts(replicas, keys, done)
            if removed and not any(key.endswith("/meta") for key, _ in steps):
                # The MetaServer lists a removed node UNALIVE until it restarts.
                metas = [k for k in self._servers if k.endswith("/meta")]
                steps = restart_steps(metas, "force") + steps
        else:
            self._groups(replicas, keys, done, lambda group: self._together(group, "together", keys, done)
                         if len(group) > 1 else self._step(group[0], "roll", keys, done))
        for key, phase in steps:
            self._step(key, phase, keys, done)
        return done

    def _groups(self, replicas: Sequence[str], keys: Sequence[str], done: list[str],
                restart: Callable[[Sequence[str]], None]) -> None:
        """Restarts `replicas` group by group: each group planned from the partition map read
        just before it (partitions move during a roll), the largest first."""
        remaining = list(replicas)
        while remaining:
            plan = self.plan(remaining)
            group = plan.groups[0]
            if self._limits.max_parallel > 1:
                self._log(f"rolling restart: group of {len(group)}: {', '.join(group)} (" + (
                    f"plan: {plan.describe(self._limits)})" if len(remaining) > 1 else "the last to restart)"))
            restart(group)
            remaining = [k for k in remaining if k not in group]

    def plan(self, remaining: Sequence[str]) -> RollPlan:
        """The groups for `remaining`, from the partition map read now."""
        if self._limits.max_parallel <= 1 or len(remaining) <= 1 or not self._map_script:
            return RollPlan(tuple((k,) for k in remaining), 1, 0, "roll.maxParallel is 1")
        cluster, resolved, why = self._read_map()
        addresses = {k: self._nodes[k.partition("/")[0]] for k in remaining if k.partition("/")[0] in self._nodes}
        names = node_names(addresses, cluster, resolved) if cluster else {}
        return plan_roll(remaining, names, cluster, self._limits, why)

    def _read_map(self) -> tuple[Optional[ClusterMap], dict[str, set[str]], str]:
        """The partition map from the first MetaServer host that answers SSH, or why not."""
        why = []
        for host in self._map_hosts:
            result = self._session.run(self._hosts[host], self._map_script)
            if result.returncode == SSH_FAILED:
                why.append(f"{host} did not answer SSH")
                continue
            if result.returncode != 0:
                return None, {}, f"on {host}: {result.tail(3)}"
            try:
                cluster, resolved = read_map_output(result.output)
            except MapUnreadable as exc:
                return None, {}, f"on {host}: {exc}"
            return cluster, resolved, ""
        return None, {}, "; ".join(why) or "no MetaServer host to read it on"

    def _together(self, group: Sequence[str], phase: str, keys: Sequence[str], done: list[str]) -> None:
        """`phase` on every server of `group` at once; when one fails, the roll stops once all are done."""
        self._log(f"rolling restart: {', '.join(group)} ({phase}, together)")
        results = self._each(group, phase)
        failed = {k: r for k, r in results.items() if r.returncode != 0}
        if phase in ("together", "drained"):
            done += [k for k in group if k not in failed and k not in done]
        if failed:
            untouched = [k for k in sorted(keys, key=roll_position) if k not in done and k not in failed]
            lost = [k for k, r in failed.items() if r.returncode == SSH_FAILED and r.started]
            raise RollFailed(failure_report(
                f"{', '.join(sorted(failed, key=roll_position))} did not "
                f"{'pass their check' if phase == 'check' else 'restart healthy'}"
                + (f" ({', '.join(sorted(lost, key=roll_position))}: {_what_failed(failed[lost[0]], phase)})"
                   if lost else "") + "; the roll stopped at the group "
                f"{', '.join(group)}. Restarted: {', '.join(done) or 'none'}; failed: "
                f"{', '.join(sorted(failed, key=roll_position))}; not restarted: {', '.join(untouched) or 'none'}. "
                "Their output", failed))

    def _drained_restarts(self, replicas: Sequence[str], keys: Sequence[str], done: list[str]) -> None:
        """pegasus_rolling_update.sh, a group at a time: the group drained, its replicas closed,
        restarted, ALIVE, secondaries allowed again, every table healthy; settings back at the end."""
        every_node = [self._node(key) for key in replicas]
        with self._draining("restart", every_node, lambda exc: f"the admin shell failed during the roll (restarted: "
                            f"{', '.join(done) or 'none'}): {exc}") as drain:
            def restart(group: Sequence[str]) -> None:
                nodes = [self._node(key) for key in group]
                try:
                    drain.drain(*nodes)
                    drain.close(*nodes)
                except SHELL_FAILURES as exc:
                    untouched = [k for k in replicas if k not in done and k not in group]
                    which = (f"{group[0]} ({nodes[0]}) could not be drained before its restart; nothing was "
                             "restarted on it" if len(group) == 1 else
                             f"{', '.join(group)} ({', '.join(nodes)}) could not be drained before their restart; "
                             "nothing was restarted on them")
                    raise RollFailed(f"{which}. Restarted before {'it' if len(group) == 1 else 'them'}: "
                                     f"{', '.join(done) or 'none'}; not restarted: {', '.join(untouched) or 'none'}. "
                                     f"{exc}") from exc
                if len(group) == 1:
                    self._step(group[0], "drained", keys, done)
                else:
                    self._together(group, "drained", keys, done)
                drain.release_secondaries()
                if len(group) == 1:
                    self._step(group[0], "check", keys, done)
                else:
                    self._together(group, "check", keys, done)
            self._groups(replicas, keys, done, restart)

    @contextlib.contextmanager
    def _draining(self, purpose: str, nodes: Sequence[str],
                  failure: Callable[[Exception], str]) -> Iterator[Drain]:
        """A drain of `nodes` begun for `purpose` (and recorded as such); the MetaServer settings
        it changed are put back at the end, also when the body fails. An admin shell failure
        becomes RollFailed(failure(exc))."""
        drain = self._drain()
        failed: Optional[BaseException] = None
        try:
            drain.begin(purpose, nodes)
            yield drain
        except SHELL_FAILURES as exc:
            failed = exc
            raise RollFailed(failure(exc)) from exc
        except BaseException as exc:
            failed = exc
            raise
        finally:
            self._put_back(drain, failed)

    def _put_back(self, drain: Drain, failure: Optional[BaseException]) -> None:
        try:
            failed = drain.end()
        except (AdminShellError, DrainRecordError, OSError) as exc:
            failed = [str(exc)]
        if failed:
            message = ("could not put back the MetaServer settings the roll changed (the next `pulumi up` tries "
                       "again from the drain's record; or set them with the Pegasus shell: remote_command -l "
                       "<leader> <setting> DEFAULT, set_meta_level): " + "; ".join(failed))
            if failure is None:
                raise RollFailed(message)
            self._log(message)

    def _remove(self, removed: Sequence[str]) -> None:
        """pegasus_offline_node.sh, one ReplicaServer at a time: drained, its replicas killed,
        stopped, its partitions healthy again on the others. Pulumi deletes it afterwards."""
        wait = float((self._tools or {}).get("wait_seconds", 600))
        nodes = [self._node(key) for key in removed]
        with self._draining("removal", nodes, lambda exc: f"removing {', '.join(removed)}: {exc}") as drain:
            for key, node in zip(removed, nodes):
                try:
                    drain.drain(node)
                    drain.kill_partitions(node)
                except SHELL_FAILURES as exc:
                    raise RollFailed(f"{key} ({node}) could not be drained; it keeps running and nothing was "
                                     f"deleted. {exc}") from exc
                address = self._removed_hosts.get(key.partition("/")[0])
                if address:
                    stop = as_root("".join(f"if systemctl is-active --quiet -- {shlex.quote(unit)}; then "
                                           f"systemctl stop -- {shlex.quote(unit)}; fi\n"
                                           for unit in self._replica_units))
                    result = self._session.run(address, stop)
                    if result.returncode != 0:
                        raise RollFailed(f"{key} was drained but did not stop:\n{result.tail()}")
                self._log(f"rolling restart: {key} ({node}) drained and stopped")
                drain.wait_unalive(node, wait)
                drain.release_secondaries("DEFAULT")
                drain.wait_healthy(wait)

    def check(self, keys: Sequence[str]) -> None:
        """Every server serves, is ALIVE, and every table is healthy; checked in parallel."""
        failed = {k: r for k, r in self._each(keys, "check").items() if r.returncode != 0}
        if failed:
            raise RollFailed(failure_report("these servers did not pass their check", failed))


def _what_failed(result: SshResult, phase: str) -> str:
    if result.returncode == SSH_FAILED and result.started:
        return (f"lost its SSH connection during its {phase} phase: the restart goes on by itself on {result.host} "
                "(and comes back on its old files if it fails), and the next `pulumi up` finds where it got to")
    return f"did not {'pass its check' if phase == 'check' else 'restart healthy'}"


def failure_report(what: str, failed: Mapping[str, SshResult]) -> str:
    return f"{what}: {', '.join(sorted(failed, key=roll_position))}\n" + "\n".join(
        f"--- {key} ({result.host}), exit {result.returncode}:\n{result.tail()}"
        for key, result in sorted(failed.items(), key=lambda item: roll_position(item[0])))


def _roll(session: SshSession, values: Mapping[str, Any], old: Optional[Mapping[str, Any]] = None) -> Roll:
    old = old or {}
    return Roll(session, values["hosts"], values["staged_dir"], pulumi.log.info, tools=values.get("tools"),
                replica_nodes={**(old.get("replica_nodes") or {}), **(values.get("replica_nodes") or {})},
                servers=list(values["restart_records"]),
                removed_hosts={h: a for h, a in (old.get("hosts") or {}).items() if h not in values["hosts"]},
                roll=values.get("roll"), map_script=values.get("map_script") or "",
                map_hosts=values.get("map_hosts") or (), replica_units=values.get("replica_units") or ())


def _outputs(props: Mapping[str, Any], restarted: Sequence[str]) -> dict:
    return {**{key: props.get(key) for key in INPUT_KEYS}, "restarted": list(restarted)}


class RollingRestartProvider(pulumi.dynamic.ResourceProvider):
    def check(self, _olds: dict, news: dict) -> pulumi.dynamic.CheckResult:
        """Adds `roll_plan`, what an update would restart and how, so that the preview says it
        (an input the diff ignores: it changes only when the records do)."""
        old, new = plain(dict(_olds or {})), plain(dict(news))
        records = (old.get("restart_records"), new.get("restart_records"))
        summary = ""
        if all(isinstance(r, Mapping) and all(isinstance(v, str) for v in r.values()) for r in records):
            summary = roll_summary(records[0], records[1], new.get("roll"))
        return pulumi.dynamic.CheckResult({**news, "roll_plan": summary}, [])

    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        values = plain(dict(props))
        records = values["restart_records"]
        with session_for(values["access"]) as session:
            roll = _roll(session, values)
            roll.put_back_interrupted_drains()
            restarted = roll.restart(roll.due(list(records)))
            roll.check(sorted(records, key=roll_position))
        return pulumi.dynamic.CreateResult("rolling-restart", _outputs(props, restarted))

    def diff(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.DiffResult:
        old, new = plain(dict(olds)), plain(dict(news))
        changed = [key for key in INPUT_KEYS if old.get(key) != new.get(key)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.UpdateResult:
        old, new = plain(dict(olds)), plain(dict(news))
        records = new["restart_records"]
        changed = changed_servers(old.get("restart_records") or {}, records)
        dropped = removed_replicas(old.get("restart_records") or {}, records)
        # With the tools, the roll drains and removes them first; without, the replica-removal
        # guard refuses one that holds replicas, asked here before any restart.
        removed = dropped if new.get("tools") else []
        restarted: list[str] = []
        # A dropped server is drained and stopped before Pulumi deletes it: its key is in the old inputs.
        with session_for(with_departed(new["access"], old.get("access"))) as session:
            roll = _roll(session, new, old)
            if dropped and not removed and new.get("removal_guard"):
                roll.refuse_unsafe_removal(dropped, new["removal_guard"])  # before anything else
            roll.put_back_interrupted_drains()
            # The state holds the records of the last roll that succeeded: a server that an
            # interrupted or failed roll left on other files is found only by asking it.
            keys = sorted(set(changed) | set(roll.due(list(records), skip_unreachable=True)), key=roll_position)
            if keys or removed:
                restarted = roll.restart(keys, removed)
        return pulumi.dynamic.UpdateResult(_outputs(news, restarted))

    def delete(self, _id: str, _props: dict) -> None:
        return None


@dataclass
class RollingRestartArgs:
    restart_records: pulumi.Input[Mapping[str, pulumi.Input[str]]]  # server_key -> record
    hosts: pulumi.Input[Mapping[str, pulumi.Input[str]]]  # host name -> SSH address
    staged_dir: str  # <appDir>/staged on every server
    # {user, port, private_key, bastion: {host, user, port} | None}: as every server's connection
    access: pulumi.Input[Mapping[str, Any]]
    # host name -> "ip:port" of its ReplicaServer (2.6+ MetaServers list a host name: the drain maps it)
    replica_nodes: pulumi.Input[Mapping[str, pulumi.Input[str]]] = None  # type: ignore[assignment]
    # the admin tools on a MetaServer host, or None: {host, dir, meta_list, library_dir, release, wait_seconds}
    tools: pulumi.Input[Optional[Mapping[str, Any]]] = None
    # ReplicaServers in groups: roll_plan.RollLimits' fields ({max_parallel, min_replicas, min_live,
    # live_percentage}), the partition map's script (templates/partition_map.sh) and the hosts to run it on
    roll: Optional[Mapping[str, int]] = None
    map_script: pulumi.Input[str] = ""
    map_hosts: Sequence[str] = ()
    # the scale-in guard's script (templates/replica_removal_guard.sh.j2), run before any restart
    # of a roll that also drops ReplicaServers, when there are no admin tools to drain them
    removal_guard: pulumi.Input[Optional[str]] = None
    # server_key -> the stamp its config command prints of the files it staged (new files, new stamp)
    staged: pulumi.Input[Mapping[str, pulumi.Input[str]]] = None  # type: ignore[assignment]
    # the units a ReplicaServer of the cluster may run under (server_files.replica_units)
    replica_units: Sequence[str] = ()


class RollingRestart(pulumi.dynamic.Resource, module="pegasus", name="RollingRestart"):
    """Make it depend on every server's first start: it runs once they all have."""

    restarted: pulumi.Output[list]

    def __init__(self, name: str, args: RollingRestartArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            "restart_records": args.restart_records,
            "hosts": args.hosts,
            "staged_dir": args.staged_dir,
            "access": pulumi.Output.secret(args.access),  # the private key
            "replica_nodes": args.replica_nodes,
            "tools": args.tools,
            "roll": args.roll,
            "map_script": args.map_script,
            "map_hosts": list(args.map_hosts),
            "removal_guard": args.removal_guard,
            "staged": args.staged,
            "replica_units": list(args.replica_units),
            "restarted": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["access"]))
        super().__init__(RollingRestartProvider(), name, props, opts)
