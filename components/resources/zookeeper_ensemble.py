"""The ZooKeeper ensemble: provisioned on its own hosts, or an existing one used as is.

Provisioned: every host gets the distribution's `zookeeper` package and the
script that starts or restarts its server onto its newest zoo.cfg, myid and
unit; a server that does not run starts at once. Then `<cluster>-zookeeper-roll`
restarts the running servers whose files changed, one at a time, followers
first and the leader last, keeping the quorum (a zoo.cfg lists every server:
replacing one changes them all). Then one readiness check waits for a quorum
with a leader and fails with the tail of the ZooKeeper log when none forms.
"""

from __future__ import annotations

import functools

import pulumi

from components.operations.zookeeper_roll import ZooKeeperRoll, ZooKeeperRollArgs, server_key
from components.render import server_files as files
from components.resources.host_handle import HostHandle, ssh_access
from components.resources.host_preparation import HostPreparation
from components.resources.remote_command import remote_command
from components.spec.model import ClusterSpec


class ZooKeeperEnsemble(pulumi.ComponentResource):
    """`servers` is the `ip:port,...` list; `ready` is what must precede its first client."""

    servers: pulumi.Output[str]
    ready: list[pulumi.Resource]

    def __init__(self, name: str, spec: ClusterSpec, hosts: list[tuple[HostHandle, HostPreparation]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pegasus:cluster:ZooKeeper", name, None, opts)
        if not spec.zookeeper.provisioned:
            self.servers = pulumi.Output.from_input(",".join(spec.zookeeper.external_servers))
            self.ready = []
            self.register_outputs({"servers": self.servers})
            return
        ips = pulumi.Output.all(*[host.cluster_ip for host, _ in hosts])
        installs, records = [], {}
        for index, (host, prep) in enumerate(hosts):
            server = ips.apply(functools.partial(_server_files, spec, index))
            installs.append(remote_command(
                host.names(f"{host.name}-zookeeper"), connection=host.connection,
                create=server.apply(lambda f: f.install), delete=files.remove_zookeeper_script(),
                opts=pulumi.ResourceOptions(parent=self, aliases=host.names.aliases(f"{host.name}-zookeeper"),
                                            depends_on=prep.done)))
            records[server_key(host.name)] = server.apply(lambda f: f.record)
        roll = ZooKeeperRoll(f"{name}-roll", ZooKeeperRollArgs(
            restart_records=records, hosts={host.name: host.ssh_address for host, _ in hosts},
            staged_dir=files.layout(spec).staged_dir, access=ssh_access(spec)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=installs))
        first = hosts[0][0]
        check = remote_command(
            f"{name}-ready", connection=first.connection,
            create=ips.apply(lambda all_ips: files.zookeeper_ready_script(all_ips, spec.timeouts.zookeeper_seconds)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[roll]))
        self.servers = ips.apply(files.zookeeper_servers)
        self.ready = [check]
        self.register_outputs({"servers": self.servers})


def _server_files(spec: ClusterSpec, index: int, ips: list[str]) -> files.ZooKeeperFiles:
    return files.zookeeper_files(spec, ips, index)
