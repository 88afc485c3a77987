"""The cluster's rolling restart: one resource that restarts changed servers one at a time.

Each Pegasus server's `<host>-<role>-config` command stages, next to its
newest config.ini, the script that restarts it (templates/restart_role.sh.j2).
This resource holds, per server, the record of what that server runs with
(`restartRecords`, one fact a line: package, addresses, overrides, unit and
config hashes), so a preview's diff names each server that will restart and
says in plain words why. Then, from where `pulumi up` runs, over SSH:

- update: the servers whose record changed restart in Pegasus's rolling-update
  order (admin_tools/pegasus_rolling_update.sh, v2.5.0): ReplicaServers, then
  MetaServers with the leader deferred to a second pass, then the Collector.
  Each restart waits for a healthy cluster before and after (the script's
  gates), and the roll stops at the first server that fails.
- create (a new cluster, or a stack that had per-server roll commands before):
  every server is asked in parallel whether it runs its newest files; those
  that do not restart as above. Then every server is checked in parallel:
  it serves, it is ALIVE, every table is healthy; a failure shows that
  server's logs.
- delete: nothing (the servers stop with their own resources).

Why one resource rather than one per server: a per-server restart chained to
the previous one makes the first deploy as long as the cluster is wide and
makes the SDK's dependency checks quadratic (1000 ReplicaServers did not
evaluate). Here the graph has one edge per server.

Like the ZooKeeper path guard, the provider is pickled by reference to this
module (see zookeeper_path_guard.py): keep it importable, free of side
effects at import, and tolerant of outputs written by older versions.
"""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import pulumi
import pulumi.dynamic

from components.dynamic_inputs import plain
from components.host_files import as_root
from components.host_layout import restart_script_name
from components.ssh_exec import SshResult, SshSession
from components.ssh_tunnel import SshEndpoint
from components.topology import ROLL_ORDER

# Exit status of the restart script's probe phase when a restart is due.
RESTART_DUE = 3
# SSH sessions at once when every server is asked or checked.
PARALLEL_SESSIONS = 16
INPUT_KEYS = ("restart_records", "hosts", "staged_dir", "access")


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


def restart_steps(keys: Sequence[str]) -> list[tuple[str, str]]:
    """(server, phase) in the order they run: every server's `roll`, and after the
    last MetaServer a `deferred` pass over the MetaServers (the leader defers)."""
    ordered = sorted(keys, key=roll_position)
    metas = [k for k in ordered if k.endswith("/meta")]
    steps: list[tuple[str, str]] = []
    for key in ordered:
        steps.append((key, "roll"))
        if metas and key == metas[-1]:
            steps += [(meta, "deferred") for meta in metas]
    return steps


def script_command(staged_dir: str, key: str, phase: str) -> str:
    script = f"{staged_dir}/{restart_script_name(key.partition('/')[2])}"
    return as_root(f"exec bash {shlex.quote(script)} {shlex.quote(phase)}\n")


class Roll:
    """Runs the phases of the staged restart scripts over one SSH session."""

    def __init__(self, session: SshSession, hosts: Mapping[str, str], staged_dir: str,
                 log: Callable[[str], None]) -> None:
        self._session, self._hosts, self._staged_dir, self._log = session, hosts, staged_dir, log

    def _run(self, key: str, phase: str) -> SshResult:
        host = self._hosts[key.partition("/")[0]]
        return self._session.run(host, script_command(self._staged_dir, key, phase))

    def _each(self, keys: Sequence[str], phase: str) -> dict[str, SshResult]:
        with ThreadPoolExecutor(max_workers=PARALLEL_SESSIONS) as pool:
            return dict(zip(keys, pool.map(lambda key: self._run(key, phase), keys)))

    def due(self, keys: Sequence[str]) -> list[str]:
        """The servers that do not run their newest files, asked in parallel."""
        answers = self._each(keys, "probe")
        failed = {k: r for k, r in answers.items() if r.returncode not in (0, RESTART_DUE)}
        if failed:
            raise RollFailed(_report("could not ask these servers whether a restart is due", failed))
        return sorted((k for k, r in answers.items() if r.returncode == RESTART_DUE), key=roll_position)

    def restart(self, keys: Sequence[str]) -> list[str]:
        """Restarts `keys` one at a time, in roll order; stops at the first failure."""
        done: list[str] = []
        for key, phase in restart_steps(keys):
            self._log(f"rolling restart: {key} ({phase})")
            result = self._run(key, phase)
            if result.returncode != 0:
                untouched = [k for k in sorted(keys, key=roll_position) if k not in done and k != key]
                raise RollFailed(
                    f"{key} did not restart healthy; the roll stopped there. Restarted before it: "
                    f"{', '.join(done) or 'none'}; not restarted: {', '.join(untouched) or 'none'}. "
                    f"Its output:\n{result.tail()}")
            if phase == "roll" and key not in done:
                done.append(key)
        return done

    def check(self, keys: Sequence[str]) -> None:
        """Every server serves, is ALIVE, and every table is healthy; checked in parallel."""
        failed = {k: r for k, r in self._each(keys, "check").items() if r.returncode != 0}
        if failed:
            raise RollFailed(_report("these servers did not pass their check", failed))


def _report(what: str, failed: Mapping[str, SshResult]) -> str:
    return f"{what}: {', '.join(sorted(failed, key=roll_position))}\n" + "\n".join(
        f"--- {key} ({result.host}), exit {result.returncode}:\n{result.tail()}"
        for key, result in sorted(failed.items(), key=lambda item: roll_position(item[0])))


def _session(access: Mapping[str, Any]) -> SshSession:
    bastion = access.get("bastion")
    return SshSession(user=access["user"], private_key=access["private_key"], port=int(access.get("port") or 22),
                      bastion=SshEndpoint(bastion["host"], bastion["user"], int(bastion.get("port") or 22))
                      if bastion else None)


def _outputs(props: Mapping[str, Any], restarted: Sequence[str]) -> dict:
    return {**{key: props.get(key) for key in INPUT_KEYS}, "restarted": list(restarted)}


class RollingRestartProvider(pulumi.dynamic.ResourceProvider):
    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        values = plain(dict(props))
        records = values["restart_records"]
        with _session(values["access"]) as session:
            roll = Roll(session, values["hosts"], values["staged_dir"], pulumi.log.info)
            restarted = roll.restart(roll.due(list(records)))
            roll.check(sorted(records, key=roll_position))
        return pulumi.dynamic.CreateResult("rolling-restart", _outputs(props, restarted))

    def diff(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.DiffResult:
        old, new = plain(dict(olds)), plain(dict(news))
        changed = [key for key in INPUT_KEYS if old.get(key) != new.get(key)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.UpdateResult:
        old, new = plain(dict(olds)), plain(dict(news))
        keys = changed_servers(old.get("restart_records") or {}, new["restart_records"])
        restarted: list[str] = []
        if keys:
            with _session(new["access"]) as session:
                restarted = Roll(session, new["hosts"], new["staged_dir"], pulumi.log.info).restart(keys)
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


class RollingRestart(pulumi.dynamic.Resource, module="pegasus", name="RollingRestart"):
    """Make it depend on every server's first start: it runs once they all have."""

    restarted: pulumi.Output[list]

    def __init__(self, name: str, args: RollingRestartArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            "restart_records": args.restart_records,
            "hosts": args.hosts,
            "staged_dir": args.staged_dir,
            "access": pulumi.Output.secret(args.access),  # the private key
            "restarted": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["access"]))
        super().__init__(RollingRestartProvider(), name, props, opts)
