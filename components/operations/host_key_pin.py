"""The one SSH host key the stack holds for a server, or for the bastion: every connection checks it.

Each pin takes its key from the first of these that applies, and keeps it:
- `configured`: the stack's `hostKey` (your own servers, the bastion); a new
  value is how an operator accepts a server rebuilt on purpose;
- `launched`: the key this stack generated and gave the AWS instance at launch
  (operations/host_key_pair.py): known before the server ever answered;
- the key the pin holds already, for as long as it is the same machine (a new
  address, as a stopped and started instance gets, keeps it);
- the operator's known_hosts, read where `pulumi up` runs when the pin is made;
- `may_record`: what the server offers when the pin is made, on the first `up`
  that pins keys, for an AWS instance this stack launched before it did (the
  program accepted any key from it at every `up` until then; from this one on
  it holds it to that key). Only then: a machine that replaces it later is
  launched with the old one's user data (Pulumi keeps ignored inputs on a
  replacement), so with no key from the stack, and its pin refuses it until
  the operator, having read its key from its console, accepts it.
Nothing else: a pin with no key fails, at preview already, saying how to give it.

`pulumi up --replace <the pin's URN>` makes the pin anew from those sources:
after you updated your known_hosts, or to record the key of such an instance.

The provider is pickled by reference to this module: keep it importable and
free of side effects at import (components/legacy_paths.py when it moves).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import pulumi
import pulumi.dynamic
from pulumi.runtime import rpc

from components.operations.provider_inputs import plain
from components.spec.host_key import parse_host_key
from components.ssh.known_hosts import DEFAULT_KNOWN_HOSTS, operator_keys, pins_from
from components.ssh.offered_key import record_offered_key
from components.ssh.tunnel import SshEndpoint

# Inputs whose change makes the pin look for its key again (an address alone does not).
SOURCES = ("identity", "configured", "launched")
OUTPUT_KEYS = ("server", "where", "identity", "configured", "launched", "may_record")


class NoHostKey(RuntimeError):
    """Nothing gives the key of a server the stack must not trust on its first answer."""


def missing_key_message(props: Mapping[str, Any]) -> str:
    where, address, port = props["where"], props["address"], int(props.get("port") or 22)
    target = address if port == 22 else f"-p {port} {address}"
    return (f"{where}.hostKey: no SSH host key is known for {props['server']} ({address}): the stack holds none and "
            f"your known_hosts ({', '.join(DEFAULT_KNOWN_HOSTS)}) has none for it, and a server is never trusted "
            "on its first answer. Read the key from a channel you trust: on the server, "
            "`cat /etc/ssh/ssh_host_ed25519_key.pub`; or `ssh-keyscan -t ed25519 "
            f"{target}` from here once its fingerprint (`ssh-keygen -lf -`) matches the one the server shows. "
            f"Then: pulumi config set --path 'pegasus:{where}.hostKey' '<that line>'")


def unlaunched_replacement_message(props: Mapping[str, Any]) -> str:
    instance = props["identity"]
    return (f"{props['server']}: its new instance {instance} was launched without a host key from this stack: it "
            "replaces an instance launched before the stack gave its servers keys, and Pulumi launches a "
            "replacement with the old one's user data, so the key it offers is nobody's word yet. Read it "
            f"from its console output (`aws ec2 get-console-output --instance-id {instance} --latest`: cloud-init "
            "prints the host keys between the BEGIN and END SSH HOST KEY KEYS lines) or on the server itself; "
            "then run `pulumi up --replace` with the URN of this pin (the `...-host-key` resource named here), "
            "which records the key the instance offers")


def _known(value: Any) -> bool:
    """A value the preview knows (an unknown one may come as rpc.UNKNOWN or as the SDK's Unknown)."""
    return isinstance(value, str) and rpc.UNKNOWN not in value


def _needs_operator_keys(olds: Mapping[str, Any], news: Mapping[str, Any]) -> bool:
    """True when only the operator's known_hosts can give this pin its key."""
    new_machine = not olds or olds.get("identity") != news.get("identity")
    return new_machine and not news.get("configured") and not news.get("launched") and not news.get("may_record")


def resolve(props: Mapping[str, Any], old: Optional[Mapping[str, Any]]) -> tuple[str, str]:
    """(key line, where it came from) for a pin with `props`, given what it held (`old`)."""
    if props.get("configured"):
        return parse_host_key(props["configured"]).line, f"{props['where']}.hostKey of the stack"
    if props.get("launched"):
        return parse_host_key(props["launched"]).line, "given to the instance at launch by this stack"
    if old and old.get("key") and old.get("identity") == props.get("identity"):
        return old["key"], old.get("source") or "held by this stack"
    port = int(props.get("port") or 22)
    found = operator_keys(props["address"], port)
    if found:
        return found[0].line, "your known_hosts"
    if props.get("may_record") and old:
        raise NoHostKey(unlaunched_replacement_message(props))
    if props.get("may_record"):
        access = props["access"]
        bastion = access.get("bastion")
        key = record_offered_key(
            props["address"], access["user"], access["private_key"], port=port,
            bastion=SshEndpoint(bastion["host"], bastion["user"], int(bastion.get("port") or 22)) if bastion else None,
            bastion_pins=pins_from(access.get("bastion_pins")))
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return key.line, (f"recorded on {when}, on the first `pulumi up` that pinned host keys: the instance was "
                          "launched before this stack gave its servers their keys")
    raise NoHostKey(missing_key_message(props))


def _outputs(props: Mapping[str, Any], key: str, source: str) -> dict:
    return {**{k: props.get(k) for k in OUTPUT_KEYS}, "key": key, "source": source,
            "fingerprint": parse_host_key(key).fingerprint}


class HostKeyPinProvider(pulumi.dynamic.ResourceProvider):
    def check(self, olds: dict, news: dict) -> pulumi.dynamic.CheckResult:
        values, failures = plain(dict(news)), []
        if _needs_operator_keys(olds or {}, values) and _known(values.get("address")) and \
                _known(values.get("launched")) and not operator_keys(values["address"], int(values.get("port") or 22)):
            failures.append(pulumi.dynamic.CheckFailure("configured", missing_key_message(values)))
        return pulumi.dynamic.CheckResult(news, failures)

    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        values = plain(dict(props))
        key, source = resolve(values, None)
        return pulumi.dynamic.CreateResult(f"host-key-{values['server']}", _outputs(values, key, source))

    def diff(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.DiffResult:
        changed = [k for k in SOURCES if (olds.get(k) or "") != (plain(news.get(k)) or "")]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.UpdateResult:
        values = plain(dict(news))
        key, source = resolve(values, olds)
        return pulumi.dynamic.UpdateResult(_outputs(values, key, source))

    def delete(self, _id: str, _props: dict) -> None:
        return None


@dataclass
class HostKeyPinArgs:
    name: str  # `replica-0`, `the bastion`: what messages call it
    where: str  # its stack key (`servers.replica[0]`, `ssh.bastion`), or what stands for it on AWS
    identity: pulumi.Input[str]  # the machine: an instance id, an own server's host, the bastion's host:port
    address: pulumi.Input[str]  # where ssh dials it
    port: int = 22
    configured: Optional[str] = None  # the stack's hostKey
    launched: pulumi.Input[str] = ""  # the key the instance got at launch, "" when it got none
    may_record: bool = False  # an instance launched before the stack gave keys: record its key once
    # {user, private_key, bastion: {host, user, port} | None, bastion_pins: [Pin.as_dict()]}: to record
    access: pulumi.Input[Mapping[str, Any]] = None  # type: ignore[assignment]


class HostKeyPin(pulumi.dynamic.Resource, module="pegasus", name="HostKeyPin"):
    key: pulumi.Output[str]  # `<type> <base64>`
    source: pulumi.Output[str]
    fingerprint: pulumi.Output[str]

    def __init__(self, resource_name: str, args: HostKeyPinArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {"server": args.name, "where": args.where, "identity": args.identity, "address": args.address,
                 "port": args.port, "configured": args.configured or "", "launched": args.launched,
                 "may_record": args.may_record,
                 "access": pulumi.Output.secret(args.access) if args.access is not None else None,
                 "key": None, "source": None, "fingerprint": None}
        super().__init__(HostKeyPinProvider(), resource_name, props, opts)
