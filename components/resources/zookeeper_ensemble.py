"""The ZooKeeper ensemble: provisioned on its own hosts, or an existing one used as is.

Provisioned: every host gets the distribution's `zookeeper` package, zoo.cfg,
myid and a systemd unit; then one readiness check waits for a quorum with a
leader and fails with the tail of the ZooKeeper log when none forms.
"""

from __future__ import annotations

import functools

import pulumi

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
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pegasus:cluster:ZooKeeper", name, None, opts)
        if not spec.zookeeper.provisioned:
            self.servers = pulumi.Output.from_input(",".join(spec.zookeeper.external_servers))
            self.ready = []
            self.register_outputs({"servers": self.servers})
            return
        ips = pulumi.Output.all(*[host.cluster_ip for host, _ in hosts])
        installs = []
        for index, (host, prep) in enumerate(hosts):
            installs.append(remote_command(
                host.names(f"{host.name}-zookeeper"), connection=host.connection,
                create=ips.apply(functools.partial(_install_script, index)),
                delete=files.remove_zookeeper_script(),
                opts=pulumi.ResourceOptions(parent=self, aliases=host.names.aliases(f"{host.name}-zookeeper"),
                                            depends_on=prep.done)))
        first = hosts[0][0]
        check = remote_command(
            f"{name}-ready", connection=first.connection,
            create=ips.apply(lambda all_ips: files.zookeeper_ready_script(all_ips, spec.timeouts.zookeeper_seconds)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=installs))
        self.servers = ips.apply(files.zookeeper_servers)
        self.ready = [check]
        self.register_outputs({"servers": self.servers})


def _install_script(index: int, ips: list[str]) -> str:
    return files.install_zookeeper_script(ips, index)
