"""The ZooKeeper ensemble: provisioned on its own hosts, or an existing one used as is.

Provisioned: every host gets the distribution's `zookeeper` package and the
script that starts or restarts its server onto its newest zoo.cfg, myid and
unit; a server that does not run starts at once (a new ensemble, a replaced
server). Then one readiness check waits for a quorum with a leader and fails
with the tail of the ZooKeeper log when none forms. Last, once every client
(the MetaServers) has rolled onto the new server list, `<cluster>-zookeeper-roll`
(`roll_after`) restarts the running servers whose files changed, one at a
time, followers first and the leader last, keeping the quorum: a zoo.cfg
lists every server, so replacing one changes them all, and a client still
listing the replaced server's address could spend its session on it while
the server it used restarts.
"""

from __future__ import annotations

import functools

import pulumi

from components.operations.zookeeper_roll import ZooKeeperRoll, ZooKeeperRollArgs, server_key
from components.render import server_files as files
from components.resources.host_handle import HostHandle
from components.resources.host_preparation import HostPreparation
from components.resources.remote_command import remote_command
from components.spec.model import ClusterSpec


class ZooKeeperEnsemble(pulumi.ComponentResource):
    """`servers` is the `ip:port,...` list; `ready` is what must precede its first client."""

    servers: pulumi.Output[str]
    ready: list[pulumi.Resource]

    def __init__(self, name: str, spec: ClusterSpec, hosts: list[tuple[HostHandle, HostPreparation]],
                 access: pulumi.Input[dict], opts: pulumi.ResourceOptions | None = None) -> None:
        """`access`: how the ZooKeeper roll reaches the servers, their host keys included."""
        super().__init__("pegasus:cluster:ZooKeeper", name, None, opts)
        self._name = name
        self._roll_args: ZooKeeperRollArgs | None = None
        self._installs: list[pulumi.Resource] = []
        if not spec.zookeeper.provisioned:
            self.servers = pulumi.Output.from_input(",".join(spec.zookeeper.external_servers))
            self.ready = []
            self.register_outputs({"servers": self.servers})
            return
        ips = pulumi.Output.all(*[host.cluster_ip for host, _ in hosts])
        installs: list[pulumi.Resource] = []
        records = {}
        for index, (host, prep) in enumerate(hosts):
            server = ips.apply(functools.partial(_server_files, spec, index))
            installs.append(remote_command(
                host.names(f"{host.name}-zookeeper"), connection=host.connection,
                create=files.STAGE_COMMAND, stdin=server.apply(lambda f: f.install),
                delete=files.remove_zookeeper_script(),
                opts=pulumi.ResourceOptions(parent=self, aliases=host.names.aliases(f"{host.name}-zookeeper"),
                                            depends_on=prep.done)))
            records[server_key(host.name)] = server.apply(lambda f: f.record)
        self._roll_args = ZooKeeperRollArgs(
            restart_records=records, hosts={host.name: host.ssh_address for host, _ in hosts},
            staged_dir=files.layout(spec).staged_dir, access=access)
        self._installs = installs
        first = hosts[0][0]
        check = remote_command(
            f"{name}-ready", connection=first.connection,
            create=ips.apply(lambda all_ips: files.zookeeper_ready_script(all_ips, spec.timeouts.zookeeper_seconds)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=installs))
        self.servers = ips.apply(files.zookeeper_servers)
        self.ready = [check]
        self.register_outputs({"servers": self.servers})

    def roll_after(self, clients_rolled: list[pulumi.Resource]) -> list[pulumi.Resource]:
        """`<name>-roll`, once `clients_rolled` (the rolling restart that moves the MetaServers
        onto the new list) is done; none for an existing ensemble."""
        if self._roll_args is None:
            return []
        return [ZooKeeperRoll(f"{self._name}-roll", self._roll_args, opts=pulumi.ResourceOptions(
            parent=self, depends_on=[*self._installs, *clients_rolled]))]


def _server_files(spec: ClusterSpec, index: int, ips: list[str]) -> files.ZooKeeperFiles:
    return files.zookeeper_files(spec, ips, index)
