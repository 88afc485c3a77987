"""Getting a booted server ready: tools and directories, disks mounted, extra NIC found.

Runs as remote commands over the host's SSH connection. The disk script finds
each disk by its stable id, formats only a disk with no file system, and
mounts it by UUID through fstab; destroy unmounts and removes those fstab
lines but never wipes a disk.
"""

from __future__ import annotations

import pulumi

from components.render import server_files as files
from components.resources.host_handle import HostHandle
from components.resources.remote_command import remote_command
from components.spec.model import ClusterSpec


class HostPreparation(pulumi.ComponentResource):
    """`interface` is the name of the NIC Pegasus must bind to ("" lets it choose)."""

    interface: pulumi.Output[str]
    done: list[pulumi.Resource]

    def __init__(self, host: HostHandle, spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        names = host.names
        super().__init__("pegasus:cluster:HostPreparation", names(host.name), None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=names.aliases(host.name))))
        base = remote_command(
            names(f"{host.name}-prepare"), connection=host.first_connection,
            create=files.prepare_host_script(spec), delete=files.remove_app_dir_script(spec),
            opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(f"{host.name}-prepare"),
                                        depends_on=host.ready))
        self.done = [base]
        if host.data_devices or host.slog_device:
            devices = pulumi.Output.all(pulumi.Output.all(*host.data_devices),
                                        pulumi.Output.from_input(host.slog_device))
            disks = devices.apply(lambda d: files.disk_entries(spec, d[0], d[1]))
            self.done.append(remote_command(
                names(f"{host.name}-disks"), connection=host.connection,
                create=disks.apply(files.prepare_disks_script), delete=disks.apply(files.cleanup_disks_script),
                opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(f"{host.name}-disks"),
                                            depends_on=[base])))
        if host.interface is not None:
            self.interface = host.interface
        elif spec.network.primary_interface:
            self.interface = pulumi.Output.from_input(spec.network.primary_interface)
        elif host.nic_mac is not None:
            nic = remote_command(
                names(f"{host.name}-nic"), connection=host.connection,
                create=host.nic_mac.apply(files.resolve_nic_script),
                opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(f"{host.name}-nic"), depends_on=[base]))
            self.done.append(nic)
            self.interface = nic.stdout.apply(lambda out: out.strip().splitlines()[-1].strip())
        else:
            self.interface = pulumi.Output.from_input("")
        self.register_outputs({"interface": self.interface})
