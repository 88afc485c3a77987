"""At every `pulumi up`: does each server offer the key the stack holds?

pulumi-command refuses a server whose key is not its `host_key` on its own,
but with `ssh: handshake failed: ssh: host key mismatch`, naming neither the
server nor either key, and only on the servers a change happens to touch.
This check asks every server (and so the bastion) at every `up`, in parallel,
with the system `ssh` and the stack's pins, and fails with each refused
server's name, both fingerprints and how to accept a rebuilt one
(ssh/known_hosts.py). The operations that reach every server (the rolling
restart, the health check) wait for it; commands and the ZooKeeper path guard
run beside it, each checking its own server's key. A server that does not answer
now (a new instance still booting, one that is down) is left to its own
commands, which dial it as before and check its key themselves.

The provider is pickled by reference to this module: keep it importable and
free of side effects at import (components/legacy_paths.py when it moves).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi.dynamic

from components.operations.every_up import EveryUpProvider
from components.operations.provider_inputs import plain
from components.ssh.known_hosts import HostKeyRefused, Pin, pins_from
from components.ssh.session import SSH_FAILED, SshSession, session_for

PARALLEL_SESSIONS = 16


class HostKeysRefused(RuntimeError):
    """At least one server offered another key than the stack's."""


def ask(session: SshSession, server: Pin) -> tuple[Pin, str, str]:
    """(server, "ok" | "silent" | "refused", what ssh or the refusal said)."""
    try:
        result = session.run(server.host, "true", dials=1)
    except HostKeyRefused as refused:
        return server, "refused", str(refused)
    if result.returncode == SSH_FAILED:
        return server, "silent", result.tail(2)
    return server, "ok", ""


def check(access: Mapping[str, Any], servers: Sequence[Pin]) -> str:
    """Asks every server; raises HostKeysRefused with every refusal, else returns a summary."""
    with session_for(access) as session, ThreadPoolExecutor(max_workers=PARALLEL_SESSIONS) as pool:
        answers = list(pool.map(lambda server: ask(session, server), servers))
    refused = sorted({said for _, status, said in answers if status == "refused"})  # a bastion's, once
    if refused:
        raise HostKeysRefused("\n\n".join(refused))
    silent = [(server, said) for server, status, said in answers if status == "silent"]
    for server, said in silent:
        pulumi.log.info(f"{server.name} ({server.host}) did not answer SSH now, so its key was not checked "
                        f"here; its commands dial it and check the key themselves ({said})")
    return (f"{len(answers) - len(silent)} servers offered the keys the stack holds"
            + (f"; not answering: {', '.join(f'{s.name} ({s.host})' for s, _ in silent)}" if silent else ""))


class HostKeyCheckProvider(EveryUpProvider):
    resource_id = "host-keys"

    def _outputs(self, props: dict) -> dict:
        values = plain(dict(props))
        report = check(values["access"], pins_from(values["servers"]))
        return {"run": values["run"], "report": report}


@dataclass
class HostKeyCheckArgs:
    run: str  # new at every `pulumi up`
    servers: pulumi.Input[Sequence[Any]]  # [Pin.as_dict()] of every server, at its SSH address
    # {user, port, private_key, bastion: {host, user, port} | None, known_hosts: [Pin.as_dict()]}
    access: pulumi.Input[Mapping[str, Any]]


class HostKeyCheck(pulumi.dynamic.Resource, module="pegasus", name="HostKeyCheck"):
    report: pulumi.Output[str]

    def __init__(self, name: str, args: HostKeyCheckArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {"run": args.run, "servers": args.servers, "access": pulumi.Output.secret(args.access),
                 "report": None}
        super().__init__(HostKeyCheckProvider(), name, props, opts)
