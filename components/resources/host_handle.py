"""What the rest of the program needs from a server, wherever it runs: `HostHandle`.

How to reach it (with the host key every connection checks: host_keys.py),
its cluster address, its disks by stable id and its extra NIC's MAC. It is
provider-neutral on purpose: an AWS instance (aws_host.py) and one of your own
servers (own_host.py) each produce one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_command as command

from components.resources.resource_names import ResourceNames


@dataclass
class HostHandle:
    name: str  # the host plan's name (`replica-0`): what scripts, tags and messages call it
    names: ResourceNames  # how the resources made for it are named
    # Every command but the first: the host answered once, so a host that stops
    # answering (gone for good) fails within a minute instead of a quarter hour.
    connection: command.remote.ConnectionArgs
    # The first command on a new machine: it keeps dialling while the machine boots.
    first_connection: command.remote.ConnectionArgs
    # Changes exactly when the machine is a new one (an instance replaced): what
    # was copied onto the old machine must be copied again.
    identity: pulumi.Output[str]
    cluster_ip: pulumi.Output[str]  # the address Pegasus binds to (extra NIC when present)
    ssh_address: pulumi.Output[str]
    # Its SSH host key, as the stack holds it (ssh/known_hosts.py's Pin, at ssh_address).
    known_host: pulumi.Output[dict]
    data_devices: list[pulumi.Output[str]] = field(default_factory=list)
    slog_device: pulumi.Output[str] | None = None
    nic_mac: pulumi.Output[str] | None = None
    # The interface Pegasus binds, when the host already knows it (your own servers).
    interface: pulumi.Output[str] | None = None
    # Resources a remote command on this host must wait for (disks attached, NIC plugged).
    ready: list[pulumi.Resource] = field(default_factory=list)
    # Every IPv4 address the host may connect from (the ZooKeeper path's ACL admits a MetaServer's).
    addresses: pulumi.Output[list[str]] | None = None


BOOT_DIALS = 60  # x 15 s: a freshly booted instance refuses SSH for a while
ANSWERED_DIALS = 4  # x 15 s: for a host that has answered before
