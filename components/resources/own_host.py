"""Your own servers as hosts: the `HostHandle` of each server the stack lists.

Nothing is made for such a server but the pin of its SSH host key
(`<cluster>-<host>-host-key`: its `hostKey`, or your known_hosts; host_keys.py)
and one read-only remote command, `<cluster>-<host>-address`, that finds the
interface Pegasus binds (by name, by MAC address, or Pegasus's own choice) and
its IPv4 address: the cluster address every config.ini and zoo.cfg names
(templates/resolve_address.sh.j2). The rest (preparation, disks, ZooKeeper,
roles) is the same as on AWS. No AWS provider, resource or lookup is involved.
"""

from __future__ import annotations

import pulumi

from components.operations.host_key_pin import HostKeyPinArgs
from components.render import server_files as files
from components.resources.host_handle import ANSWERED_DIALS, HostHandle
from components.resources.host_keys import HostKeys, configured_advice
from components.spec.own_servers import OwnServer
from components.resources.remote_command import remote_command
from components.resources.resource_names import ResourceNames
from components.spec.model import ClusterSpec
from components.spec.topology import HostPlan


class OwnHost(pulumi.ComponentResource):
    def __init__(self, plan: HostPlan, server: OwnServer, spec: ClusterSpec, names: ResourceNames, keys: HostKeys,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pegasus:cluster:OwnHost", names(plan.name), None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=names.aliases(plan.name))))
        where = f"servers.{plan.kind}[{plan.index}]"
        pin, known_host = keys.pin(plan.name, HostKeyPinArgs(
            name=plan.name, where=where, identity=server.host, address=server.host, configured=server.host_key),
            accept=lambda pin: pulumi.Output.all(pin.source, pin.urn).apply(
                lambda v: configured_advice(where, v[0], v[1])), parent=self)
        # The server is up already: no long wait for a boot, unlike a new instance.
        connection = keys.connection(server.host, pin.key, ANSWERED_DIALS)
        address_name = f"{plan.name}-address"
        address = remote_command(names(address_name), connection, create=files.resolve_address_script(server.nic),
                                 opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(address_name)))
        words = address.stdout.apply(lambda out: out.split())
        interface, cluster_ip = words.apply(lambda w: w[0]), words.apply(lambda w: w[1])
        host = pulumi.Output.from_input(server.host)
        self.handle = HostHandle(
            name=plan.name, names=names, connection=connection, first_connection=connection,
            # Another machine is another host in the list.
            identity=host, cluster_ip=cluster_ip, ssh_address=host, known_host=known_host,
            data_devices=[pulumi.Output.from_input(d) for d in server.data_disks],
            slog_device=pulumi.Output.from_input(server.slog_disk) if server.slog_disk else None,
            interface=interface, ready=[address], addresses=words.apply(lambda w: w[1:]))
        self.register_outputs({"clusterIp": cluster_ip, "interface": interface})


def own_hosts(spec: ClusterSpec, plans: list[HostPlan], names: ResourceNames, keys: HostKeys,
              opts: pulumi.ResourceOptions) -> dict[str, HostHandle]:
    """The HostHandle of every planned host, from the stack's `servers` list."""
    assert spec.servers is not None
    return {p.name: OwnHost(p, spec.servers.server(p.kind, p.index), spec, names, keys, opts=opts).handle
            for p in plans}
