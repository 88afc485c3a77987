"""The cluster's health, checked at every `pulumi up`: one resource, one line in the preview.

A new `run` input at every up makes Pulumi update it each time, changed
stack or not, so a server that died since the last up fails the next one by
name instead of surfacing at the next change. From where `pulumi up` runs,
over SSH (components/ssh/session.py):

1. the first MetaServer host that answers SSH runs the health check
   (templates/health_check.sh.j2): every ReplicaServer ALIVE, every
   MetaServer and Collector answering, the release's tables there;
2. when it fails, each server it names as not serving prints its own
   `systemctl status`, journal and log tail (the `logs` phase of the restart
   script staged beside its config), and the error carries them: the
   MetaServer host cannot read another host's logs, the operator's machine can.

A host that does not answer SSH costs a few dials, not minutes, and the error
says what to do when it is gone for good.

Like the rolling restart, the provider is pickled by reference to this module:
keep it importable and free of side effects at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi.dynamic

from components.operations.provider_inputs import plain
from components.operations.rolling_restart import each_server, roll_position
from components.ssh.session import DIALS, SSH_FAILED, SshResult, SshSession, session_for

NOT_SERVING = "health-check: not serving:"
HEALTHY = "health-check: cluster healthy:"
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


def check(session: SshSession, values: Mapping[str, Any]) -> str:
    """Runs the health check; returns its summary, or raises ClusterUnhealthy with the logs."""
    hosts, unreachable = values["hosts"], []
    answer: Optional[SshResult] = None
    for host in values["check_hosts"]:
        result = session.run(hosts[host], values["script"])
        if result.returncode != SSH_FAILED:
            answer = result
            break
        unreachable.append(f"{host} ({hosts[host]}): {result.tail(3)}")
    if answer is None:
        raise ClusterUnhealthy(f"no MetaServer host answered SSH after {DIALS} dials each, so the cluster's "
                               f"health could not be checked:\n" + "\n".join(unreachable) + "\n" + GONE_FOR_GOOD)
    if answer.returncode == 0:
        summary = [line[len(HEALTHY):].strip() for line in answer.output.splitlines() if line.startswith(HEALTHY)]
        return summary[-1] if summary else answer.tail(1)
    down = not_serving(answer.output)
    logs = _server_logs(session, hosts, values["staged_dir"], down)
    raise ClusterUnhealthy(
        f"the cluster is not healthy; not serving: {', '.join(down) or 'see the check'}.\n"
        f"--- the check, on {answer.host}:\n{answer.tail()}" + "".join(logs))


def _server_logs(session: SshSession, hosts: Mapping[str, str], staged_dir: str, keys: Sequence[str]) -> list[str]:
    results = each_server(session, hosts, staged_dir, [k for k in keys if k.partition("/")[0] in hosts], "logs")
    return [f"\n--- {key} ({result.host}) does not answer SSH: {result.tail(3)}\n{GONE_FOR_GOOD}"
            if result.returncode == SSH_FAILED else
            f"\n--- {key} ({result.host}), its status, journal and log tail:\n{result.tail(200)}"
            for key, result in results.items()]


class ClusterHealthProvider(pulumi.dynamic.ResourceProvider):
    def _outputs(self, props: dict) -> dict:
        values = plain(dict(props))
        with session_for(values["access"]) as session:
            report = check(session, values)
        pulumi.log.info(f"cluster healthy: {report}")
        return {**props, "report": report}

    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult("health", self._outputs(props))

    def diff(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.DiffResult:
        # `run` is new at every up: the check runs each time.
        return pulumi.dynamic.DiffResult(changes=olds.get("run") != news.get("run"), replaces=[],
                                         delete_before_replace=False)

    def update(self, _id: str, _olds: dict, news: dict) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(self._outputs(news))

    def delete(self, _id: str, _props: dict) -> None:
        return None


@dataclass
class ClusterHealthArgs:
    run: str  # new at every `pulumi up`
    script: pulumi.Input[str]  # health_check.sh, rendered, run as root on a MetaServer host
    check_hosts: Sequence[str]  # the MetaServer hosts, tried in order
    hosts: pulumi.Input[Mapping[str, pulumi.Input[str]]]  # host name -> SSH address
    staged_dir: str  # <appDir>/staged, where each server's restart script is
    access: pulumi.Input[Mapping[str, Any]]  # as RollingRestartArgs.access


class ClusterHealth(pulumi.dynamic.Resource, module="pegasus", name="ClusterHealth"):
    report: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterHealthArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {"run": args.run, "script": args.script, "check_hosts": list(args.check_hosts), "hosts": args.hosts,
                 "staged_dir": args.staged_dir, "access": pulumi.Output.secret(args.access), "report": None}
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["access"]))
        super().__init__(ClusterHealthProvider(), name, props, opts)
