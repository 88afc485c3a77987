"""The ZooKeeper ensemble's roll: its servers restarted onto new files one at a time.

A provisioned ensemble's zoo.cfg lists every server, so replacing one server
changes every server's files. Restarting them all at once (what rerunning
each server's install did) loses the quorum, and every MetaServer's session
with it. ZooKeeper's documented way is a rolling restart: one server at a
time, the followers first and the leader last, each back serving before the
next (the leader's restart then costs one election, not the ensemble).

Each server's `<cluster>-<host>-zookeeper` command stages, on the host, the
script that starts or restarts it onto its newest files
(templates/zookeeper_restart.sh.j2) and starts a server that does not run.
This resource holds one record per server (what it runs with: the servers
of its zoo.cfg, its myid, the hashes of zoo.cfg and unit), so the preview's
diff says which servers restart and why, and then, over SSH from where
`pulumi up` runs, as the cluster's rolling restart does:

- create and update: every server is asked whether it runs its newest files;
  those that do not restart one at a time, a follower whenever one is due,
  the leader last. Each restart waits until the others keep a majority
  serving, and afterwards until the server serves again and the ensemble has
  a leader and a majority; a server that does not goes back to its previous
  files and the roll stops there.
- create also checks every server: it serves, the ensemble has a leader and
  a majority.
- delete: nothing (each server goes with its own command).

Pickled by reference to this module, like the other dynamic providers: keep it
importable, free of side effects at import, and tolerant of older outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import pulumi
import pulumi.dynamic

from components.operations.provider_inputs import plain
from components.operations.rolling_restart import (RESTART_DUE, RollFailed, each_server, failure_report,
                                                   roll_position)
from components.render.host_layout import ZOOKEEPER_ROLE
from components.ssh.session import SshResult, SshSession, session_for

INPUT_KEYS = ("restart_records", "hosts", "staged_dir", "access")
LEADER = "leader"


def server_key(host: str) -> str:
    """A ZooKeeper server's key in the records, as the rolling restart keys a role on a host."""
    return f"{host}/{ZOOKEEPER_ROLE}"


def next_to_restart(remaining: Sequence[str], modes: Mapping[str, str]) -> str:
    """The first due server that does not lead; the leader only when it is the last one due."""
    return next((key for key in remaining if modes.get(key) != LEADER), remaining[0])


def _mode(result: SshResult) -> str:
    for line in result.output.splitlines():
        if line.startswith("mode="):
            return line.partition("=")[2].strip()
    return ""


class EnsembleRoll:
    """Runs the phases of the staged ZooKeeper restart scripts over one SSH session."""

    def __init__(self, session: SshSession, hosts: Mapping[str, str], staged_dir: str,
                 log: Callable[[str], None], servers: Sequence[str]) -> None:
        self._session, self._hosts, self._staged_dir, self._log = session, hosts, staged_dir, log
        self._servers = sorted(servers, key=roll_position)

    def _each(self, keys: Sequence[str], phase: str) -> dict[str, SshResult]:
        return each_server(self._session, self._hosts, self._staged_dir, keys, phase)

    def due(self) -> list[str]:
        """The servers that do not run their newest files, asked in parallel."""
        answers = self._each(self._servers, "probe")
        failed = {k: r for k, r in answers.items() if r.returncode not in (0, RESTART_DUE)}
        if failed:
            raise RollFailed(failure_report("could not ask these ZooKeeper servers whether a restart is due", failed))
        return [k for k in self._servers if answers[k].returncode == RESTART_DUE]

    def modes(self) -> dict[str, str]:
        """Each server's mode (leader, follower, standalone, or "" when it does not serve)."""
        return {key: _mode(result) for key, result in self._each(self._servers, "mode").items()}

    def restart(self, due: Sequence[str]) -> list[str]:
        """Restarts `due` one at a time, followers first, the leader last; stops at the first failure."""
        remaining, done = list(due), list[str]()
        while remaining:
            modes = self.modes()
            key = next_to_restart(remaining, modes)
            self._log(f"zookeeper roll: {key} ({modes.get(key) or 'not serving'})")
            result = self._each([key], "roll")[key]
            if result.returncode != 0:
                untouched = [k for k in remaining if k != key]
                raise RollFailed(
                    f"{key} did not restart serving, with the ensemble keeping a leader and a majority; the "
                    f"ZooKeeper roll stopped there. Restarted before it: {', '.join(done) or 'none'}; not "
                    f"restarted: {', '.join(untouched) or 'none'}. Its output:\n{result.tail()}")
            remaining.remove(key)
            done.append(key)
        return done

    def check(self) -> None:
        failed = {k: r for k, r in self._each(self._servers, "check").items() if r.returncode != 0}
        if failed:
            raise RollFailed(failure_report("these ZooKeeper servers did not pass their check", failed))


def _outputs(props: Mapping[str, Any], restarted: Sequence[str]) -> dict:
    return {**{key: props.get(key) for key in INPUT_KEYS}, "restarted": list(restarted)}


def _roll(values: Mapping[str, Any], *, check: bool) -> list[str]:
    with session_for(values["access"]) as session:
        roll = EnsembleRoll(session, values["hosts"], values["staged_dir"], pulumi.log.info,
                            list(values["restart_records"]))
        restarted = roll.restart(roll.due())
        if check:
            roll.check()
    return restarted


class ZooKeeperRollProvider(pulumi.dynamic.ResourceProvider):
    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult("zookeeper-roll", _outputs(props, _roll(plain(dict(props)), check=True)))

    def diff(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.DiffResult:
        old, new = plain(dict(olds)), plain(dict(news))
        changed = [key for key in INPUT_KEYS if old.get(key) != new.get(key)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.UpdateResult:
        old, new = plain(dict(olds)), plain(dict(news))
        restarted: list[str] = []
        if old.get("restart_records") != new.get("restart_records"):
            restarted = _roll(new, check=False)
        return pulumi.dynamic.UpdateResult(_outputs(news, restarted))

    def delete(self, _id: str, _props: dict) -> None:
        return None


@dataclass
class ZooKeeperRollArgs:
    restart_records: pulumi.Input[Mapping[str, pulumi.Input[str]]]  # server_key(host) -> record
    hosts: pulumi.Input[Mapping[str, pulumi.Input[str]]]  # host name -> SSH address
    staged_dir: str  # <appDir>/staged on every ZooKeeper host
    access: pulumi.Input[Mapping[str, Any]]  # {user, port, private_key, bastion}, as the rolling restart's


class ZooKeeperRoll(pulumi.dynamic.Resource, module="pegasus", name="ZooKeeperRoll"):
    """Make it depend on every server's install command and on what moves the clients (the
    MetaServers) onto the new server list: a client still listing a replaced server's address
    could spend its session trying it while the server it uses restarts."""

    restarted: pulumi.Output[list]

    def __init__(self, name: str, args: ZooKeeperRollArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            "restart_records": args.restart_records,
            "hosts": args.hosts,
            "staged_dir": args.staged_dir,
            "access": pulumi.Output.secret(args.access),  # the private key
            "restarted": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["access"]))
        super().__init__(ZooKeeperRollProvider(), name, props, opts)
