"""The cluster's health, checked at every `pulumi up`: one resource, one line in the preview.

A new `run` input at every up makes Pulumi update it each time, changed
stack or not, so a server that died since the last up fails the next one by
name instead of surfacing at the next change. From where `pulumi up` runs,
over SSH (components/ssh/session.py):

1. with the admin tools, what a drain cut short left changed on the
   MetaServer (a killed `pulumi up`, see drain_record.py) is put back first:
   an `up` with nothing to roll mends it too;
2. the first MetaServer host that answers SSH runs the health check
   (templates/health_check.sh.j2), in passes of PASS_SECONDS: every
   ReplicaServer ALIVE, every MetaServer and Collector answering, the
   release's tables there. Between two passes each server it names as not
   serving is asked for its unit's state: one that systemd gave up on, or that
   nothing will start, fails the check at once (waiting longer cannot help),
   while a server still starting is waited for until `wait_seconds`;
3. when it fails, each server named prints its own `systemctl status`,
   journal and log tail (the `logs` phase of the restart script staged beside
   its config), and the error carries them: the MetaServer host cannot read
   another host's logs, the operator's machine can;
4. once it serves, every server is asked whether it runs the files staged for
   it (the restart script's `probe`): one that does not (a roll stopped short,
   files changed by hand) fails the check by name, with the way to finish.

A host that does not answer SSH costs a few dials, not minutes, and the error
says what to do when it is gone for good.

Like the rolling restart, the provider is pickled by reference to this module:
keep it importable and free of side effects at import.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import pulumi
import pulumi.dynamic

from components.operations.every_up import EveryUpProvider
from components.operations.provider_inputs import plain
from components.operations.rolling_restart import RESTART_DUE, Roll, RollFailed, each_server, roll_position
from components.render.templates import as_root
from components.ssh.session import DIALS, SSH_FAILED, SshResult, SshSession, session_for

NOT_SERVING = "health-check: not serving:"
HEALTHY = "health-check: cluster healthy:"
# How long the check waits on the MetaServer host before the servers it still
# waits for are asked whether they can come up at all.
PASS_SECONDS = 15
DEFAULT_WAIT_SECONDS = 600
# Exit status of the restart script's unit-state phase: systemd gave up on the
# unit, or nothing will start it.
DOWN_FOR_GOOD = 4
GONE_FOR_GOOD = ("If that host is gone for good, replace it: on AWS `pulumi up --replace <its instance URN>` "
                 "(`pulumi stack --show-urns`; its data volumes are reattached), after `pulumi refresh` if it was "
                 "deleted outside Pulumi; for your own servers, bring it back or put another machine in its "
                 "place in pegasus:servers.")


class ClusterUnhealthy(RuntimeError):
    """A server of the cluster does not serve, or the check could not run."""


def not_serving(output: str) -> list[str]:
    """The servers ("replica-2/replica") the health check named as not serving."""
    names: list[str] = []
    for line in output.splitlines():
        if line.startswith(NOT_SERVING):
            names += line[len(NOT_SERVING):].split()
    return sorted(set(names), key=roll_position)


def check(session: SshSession, values: Mapping[str, Any], *, clock: Callable[[], float] = time.monotonic) -> str:
    """Runs the health check; returns its summary, or raises ClusterUnhealthy with the logs."""
    total = int(DEFAULT_WAIT_SECONDS if values.get("wait_seconds") is None else values["wait_seconds"])
    deadline, waited = clock() + total, 0
    check_hosts = list(values["check_hosts"])
    while True:
        seconds = int(max(0, min(PASS_SECONDS, deadline - clock())))
        answer, check_hosts = _one_pass(session, values, check_hosts, seconds, waited)
        if answer.returncode == 0:
            break
        down = not_serving(answer.output)
        gone = _down_for_good(session, values, down)
        if gone or clock() >= deadline:
            raise ClusterUnhealthy(_unhealthy(session, values, answer, down, gone))
        waited += seconds
    summary = [line[len(HEALTHY):].strip() for line in answer.output.splitlines() if line.startswith(HEALTHY)]
    _require_staged_files_running(session, values)
    return summary[-1] if summary else answer.tail(1)


def _one_pass(session: SshSession, values: Mapping[str, Any], check_hosts: Sequence[str], seconds: int,
              waited: int) -> tuple[SshResult, list[str]]:
    """One pass of the check on the first MetaServer host that answers SSH; that host
    and those after it, for the next pass."""
    hosts, unreachable = values["hosts"], []
    script = as_root(f"set -- {seconds} {waited}\n{values['script']}")
    for index, host in enumerate(check_hosts):
        result = session.run(hosts[host], script)
        if result.started or result.returncode != SSH_FAILED:
            return result, list(check_hosts[index:])
        unreachable.append(f"{host} ({hosts[host]}): {result.tail(3)}")
    raise ClusterUnhealthy(f"no MetaServer host answered SSH after {DIALS} dials each, so the cluster's "
                           f"health could not be checked:\n" + "\n".join(unreachable) + "\n" + GONE_FOR_GOOD)


def _down_for_good(session: SshSession, values: Mapping[str, Any], down: Sequence[str]) -> dict[str, SshResult]:
    """The servers among `down` whose unit will not come up by itself, with what their host said."""
    keys = [k for k in down if k.partition("/")[0] in values["hosts"]]
    answers = each_server(session, values["hosts"], values["staged_dir"], keys, "unit-state") if keys else {}
    return {key: result for key, result in answers.items() if result.returncode == DOWN_FOR_GOOD}


def _unhealthy(session: SshSession, values: Mapping[str, Any], answer: SshResult, down: Sequence[str],
               gone: Mapping[str, SshResult]) -> str:
    why = ""
    if gone:
        states = "; ".join(f"{key}: {result.tail(1).removeprefix('restart-role: ')}" for key, result in gone.items())
        why = (f"\nDown for good, so the check stopped waiting: {states}. Fix what its logs below show, start "
               "it on its host (`systemctl reset-failed <unit>`, then `systemctl start <unit>`) and run `pulumi up` "
               "again.")
    logs = _server_logs(session, values["hosts"], values["staged_dir"], down)
    return (f"the cluster is not healthy; not serving: {', '.join(down) or 'see the check'}.{why}\n"
            f"--- the check, on {answer.host}:\n{answer.tail()}" + "".join(logs))


def _server_logs(session: SshSession, hosts: Mapping[str, str], staged_dir: str, keys: Sequence[str]) -> list[str]:
    results = each_server(session, hosts, staged_dir, [k for k in keys if k.partition("/")[0] in hosts], "logs")
    return [f"\n--- {key} ({result.host}) does not answer SSH: {result.tail(3)}\n{GONE_FOR_GOOD}"
            if result.returncode == SSH_FAILED and not result.started else
            f"\n--- {key} ({result.host}), its status, journal and log tail:\n{result.tail(200)}"
            for key, result in results.items()]


def _require_staged_files_running(session: SshSession, values: Mapping[str, Any]) -> None:
    """Every server runs the files staged for it; else a roll stopped short of it."""
    keys = [k for k in values.get("servers") or [] if k.partition("/")[0] in values["hosts"]]
    answers = each_server(session, values["hosts"], values["staged_dir"], keys, "probe") if keys else {}
    drifted = {k: r for k, r in answers.items() if r.returncode == RESTART_DUE}
    unknown = sorted((k for k, r in answers.items() if r.returncode not in (0, RESTART_DUE)), key=roll_position)
    if unknown:
        pulumi.log.warn(f"could not ask {', '.join(unknown)} whether they run their staged files")
    if drifted:
        names = sorted(drifted, key=roll_position)
        roll = values.get("rolling_restart") or "<cluster>-rolling-restart"
        raise ClusterUnhealthy(
            f"these servers serve, but not with the files staged for them: {', '.join(names)}. A roll stopped "
            f"before them, or their files were changed by hand. `pulumi up` restarts a server when its staged "
            f"files change; to restart these onto them now, one at a time as a roll does, replace the rolling "
            f"restart: `pulumi up --replace <URN of {roll}>` (`pulumi stack --show-urns`).\n"
            + "\n".join(f"--- {key} ({drifted[key].host}):\n{drifted[key].tail(5)}" for key in names))


def put_back_interrupted_drains(session: SshSession, values: Mapping[str, Any]) -> None:
    if not values.get("tools"):
        return
    roll = Roll(session, values["hosts"], values["staged_dir"], pulumi.log.info, tools=values["tools"])
    try:
        roll.put_back_interrupted_drains()
    except RollFailed as exc:
        raise ClusterUnhealthy(str(exc)) from exc


class ClusterHealthProvider(EveryUpProvider):
    resource_id = "health"

    def _outputs(self, props: dict) -> dict:
        values = plain(dict(props))
        with session_for(values["access"]) as session:
            put_back_interrupted_drains(session, values)
            report = check(session, values)
        pulumi.log.info(f"cluster healthy: {report}")
        return {**props, "report": report}


@dataclass
class ClusterHealthArgs:
    run: str  # new at every `pulumi up`
    script: pulumi.Input[str]  # health_check.sh, rendered; run as root on a MetaServer host, in passes
    check_hosts: Sequence[str]  # the MetaServer hosts, tried in order
    hosts: pulumi.Input[Mapping[str, pulumi.Input[str]]]  # host name -> SSH address
    staged_dir: str  # <appDir>/staged, where each server's restart script is
    access: pulumi.Input[Mapping[str, Any]]  # as RollingRestartArgs.access
    servers: Sequence[str] = ()  # every server of the stack ("replica-0/replica")
    wait_seconds: int = DEFAULT_WAIT_SECONDS  # how long a server may take to serve
    tools: pulumi.Input[Optional[Mapping[str, Any]]] = None  # as RollingRestartArgs.tools
    rolling_restart: str = ""  # the rolling restart's resource name, for the way out of a drift


class ClusterHealth(pulumi.dynamic.Resource, module="pegasus", name="ClusterHealth"):
    report: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterHealthArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {"run": args.run, "script": args.script, "check_hosts": list(args.check_hosts), "hosts": args.hosts,
                 "staged_dir": args.staged_dir, "access": pulumi.Output.secret(args.access),
                 "servers": list(args.servers), "wait_seconds": args.wait_seconds, "tools": args.tools,
                 "rolling_restart": args.rolling_restart, "report": None}
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["access"]))
        super().__init__(ClusterHealthProvider(), name, props, opts)
