"""The SSH host keys of a cluster, wired: every connection checks the server's key, and the bastion's.

- An AWS server gets a key pair the stack made for it (operations/host_key_pair.py)
  at launch, in its user data (render/cloud_config.py): the key is known before the
  server first answers, so it is never trusted on a first answer. User data
  rather than a key read back after boot (the console output, an agent): it is
  the one channel EC2 gives a server before its sshd starts, cloud-init on
  Debian's and Ubuntu's AMIs installs the key before sshd starts, and nothing
  else has to run on the server or be allowed in IAM. The instance ignores
  later changes to it (`ignore_changes`): the provider would stop and start it.
- An instance launched before this (it has no `pegasus:host-key` tag) keeps its
  key: the first `up` with this version records the one it offers (it was accepted at
  every `up` before), and it is held to it from then on. Its replacement gets
  none (Pulumi launches it with the ignored user data as it was): its key is
  refused until the operator accepts it (operations/host_key_pin.py).
- Your own servers: `servers.<role>[i].hostKey`, or your known_hosts.
- The bastion: `ssh.bastion.hostKey`, or your known_hosts.
Each is held by a pin (operations/host_key_pin.py), kept in the state; every
pulumi-command connection carries its `host_key` (and the proxy's), the system
`ssh` of the operations gets them as a known_hosts file, and at every `up` a
check (operations/host_key_check.py) asks every server, failing with the
server, both fingerprints and how to accept a rebuilt one; the operations
that reach every server wait for it.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

import pulumi
import pulumi_command as command

from components.operations.host_key_check import HostKeyCheck, HostKeyCheckArgs
from components.operations.host_key_pin import HostKeyPin, HostKeyPinArgs
from components.resources.resource_names import ResourceNames
from components.spec.host_key import fingerprint
from components.spec.model import ClusterSpec
from components.ssh.known_hosts import Pin, known_hosts_text, pins_from

# An instance's tag holding the fingerprint of the host key it was launched with: set at launch,
# then ignored (`ignore_changes`), so an instance launched before the stack gave keys never gets
# it. Its outputs say so whatever the provider does with user data (it keeps a hash of it, and
# an output it does not return is taken from the program's input by the SDK).
HOST_KEY_TAG = "pegasus:host-key"
BASTION = "the bastion"


def launched_key(tags: Any, public_key: str) -> str:
    """`public_key` when the instance's tags say it was launched with it, else ""."""
    given = (tags or {}).get(HOST_KEY_TAG) if isinstance(tags, dict) else None
    return public_key if public_key and given == fingerprint(public_key) else ""


def known_host(name: str, address: pulumi.Input[str], pin: HostKeyPin, accept: pulumi.Input[str],
               port: int = 22) -> pulumi.Output[dict]:
    """The Pin (ssh/known_hosts.py) of a host at its current address, as operations take it."""
    return pulumi.Output.all(address, pin.key, pin.source, accept).apply(
        lambda v: Pin(name=name, host=v[0], port=port, key=v[1], source=v[2], accept=v[3]).as_dict())


class HostKeys:
    """The bastion's pin, the servers' pins and what connections carry, for one cluster."""

    def __init__(self, spec: ClusterSpec, names: ResourceNames, opts: pulumi.ResourceOptions) -> None:
        self.spec, self.names, self.opts = spec, names, opts
        self.servers: list[pulumi.Output[dict]] = []  # every server's Pin, as made
        bastion = spec.ssh.bastion
        self.bastion_pin: HostKeyPin | None = None
        self.bastion_known: list[pulumi.Output[dict]] = []
        if bastion is not None:
            self.bastion_pin = HostKeyPin(f"{names.cluster}-bastion-host-key", HostKeyPinArgs(
                name=BASTION, where="ssh.bastion", identity=f"{bastion.host}:{bastion.port}", address=bastion.host,
                port=bastion.port, configured=bastion.host_key), opts=opts)
            accept = pulumi.Output.all(self.bastion_pin.source, self.bastion_pin.urn).apply(
                lambda v: configured_advice("ssh.bastion", v[0], v[1]))
            self.bastion_known = [known_host(BASTION, bastion.host, self.bastion_pin, accept, bastion.port)]

    # -- what connections carry ------------------------------------------------
    def _bastion_endpoint(self) -> dict | None:
        bastion = self.spec.ssh.bastion
        return {"host": bastion.host, "user": bastion.user, "port": bastion.port} if bastion else None

    def record_access(self) -> pulumi.Output[dict]:
        """What a pin needs to record a server's key: the login, through the checked bastion."""
        return pulumi.Output.all(*self.bastion_known).apply(lambda pins: {
            "user": self.spec.ssh.user, "private_key": self.spec.ssh.private_key,
            "bastion": self._bastion_endpoint(), "bastion_pins": list(pins)})

    def session_access(self, servers: list[pulumi.Output[dict]] | None = None) -> pulumi.Output[dict]:
        """What the operations' ssh sessions need: the login, the pins of every server (or of
        `servers` only, for an operation that reaches no other: a new server elsewhere then
        changes nothing of it) and the bastion's."""
        chosen = self.servers if servers is None else servers
        return pulumi.Output.all(*chosen, *self.bastion_known).apply(lambda pins: {
            "user": self.spec.ssh.user, "port": 22, "private_key": self.spec.ssh.private_key,
            "bastion": self._bastion_endpoint(), "known_hosts": list(pins)})

    def known_hosts(self) -> pulumi.Output[str]:
        """Every server's and the bastion's key as known_hosts lines: for the operator's own ssh."""
        return pulumi.Output.all(*self.servers, *self.bastion_known).apply(
            lambda pins: known_hosts_text(pins_from(pins)))

    def tunnel(self, via: pulumi.Output[dict]) -> pulumi.Output[dict]:
        """The ZooKeeper path guard's tunnel through the host whose Pin is `via`."""
        return pulumi.Output.all(via, *self.bastion_known).apply(lambda pins: {
            "host": pins[0]["host"], "user": self.spec.ssh.user, "port": 22, "private_key": self.spec.ssh.private_key,
            "bastion": self._bastion_endpoint(), "known_hosts": list(pins)})

    def connection(self, host: pulumi.Input[str], host_key: pulumi.Input[str], dials: int,
                   ) -> command.remote.ConnectionArgs:
        """pulumi-command's connection to a server: its pinned key, and the bastion's."""
        key = pulumi.Output.secret(self.spec.ssh.private_key)
        proxy = None
        bastion = self.spec.ssh.bastion
        if bastion is not None and self.bastion_pin is not None:
            proxy = command.remote.ProxyConnectionArgs(host=bastion.host, user=bastion.user, port=bastion.port,
                                                       private_key=key, host_key=self.bastion_pin.key)
        return command.remote.ConnectionArgs(host=host, user=self.spec.ssh.user, private_key=key, proxy=proxy,
                                             host_key=host_key, dial_error_limit=dials, per_dial_timeout=15)

    # -- pins and the check ------------------------------------------------------
    def pin(self, host: str, args: HostKeyPinArgs, accept: Callable[[HostKeyPin], pulumi.Output[str]],
            parent: pulumi.Resource) -> tuple[HostKeyPin, pulumi.Output[dict]]:
        """The pin of server `host` (`replica-0`) and its Pin at its address; `accept(pin)` says how
        to accept a rebuild of it."""
        pin = HostKeyPin(self.names(f"{host}-host-key"), args, opts=pulumi.ResourceOptions(parent=parent))
        known = known_host(host, args.address, pin, accept(pin))
        self.servers.append(known)
        return pin, known

    def check(self) -> HostKeyCheck:
        """At every up, every server's key (once every pin is made)."""
        return HostKeyCheck(f"{self.names.cluster}-host-keys", HostKeyCheckArgs(
            run=uuid.uuid4().hex, servers=pulumi.Output.all(*self.servers).apply(list),
            access=self.session_access()), opts=self.opts)


def aws_advice(instance_urn: str, pin_urn: str, launched: bool, instance_id: str) -> str:
    """How to accept an AWS server that offers another key than the stack holds."""
    if launched:
        return ("replace it: a machine this stack launched keeps the key it was given, so another key means "
                f"another machine. `pulumi up --replace '{instance_urn}'` launches one with the stack's key "
                "(its data volumes are kept and attached to it; drain a ReplicaServer first, docs/operating.md)")
    return (f"run `pulumi up --replace '{pin_urn}'`: the stack records the key the server offers at that moment "
            "(this instance was launched before the stack gave its servers keys; its console output, "
            f"`aws ec2 get-console-output --instance-id {instance_id} --latest`, shows the keys cloud-init made "
            "for it)")


def configured_advice(where: str, source: str, pin_urn: str) -> str:
    """How to accept a rebuilt server whose key the stack config gives (or the operator's known_hosts)."""
    advice = (f"set its new key: pulumi config set --path 'pegasus:{where}.hostKey' '<the line of "
              "/etc/ssh/ssh_host_ed25519_key.pub>'")
    if "known_hosts" in (source or ""):
        advice += (f"; or, as the stack took the key from your known_hosts, put the new key there and run "
                   f"`pulumi up --replace '{pin_urn}'`")
    return advice
