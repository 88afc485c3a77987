"""Pegasus's admin tools (the `pack_tools` package) on every MetaServer host.

The rolling restart runs the admin shell from there (rolling_restart.py,
replica_drain.py): uploaded once per host like the server package, checked and
unpacked into `<appDir>/tools/<release>-<sha256 prefix>` (a new build gets its
own directory; the old one goes when its resource is replaced).
"""

from __future__ import annotations

from typing import Sequence

import pulumi
import pulumi_command as command

from components.render import server_files as files
from components.resources.host_handle import HostHandle
from components.resources.host_preparation import HostPreparation
from components.resources.remote_command import remote_command
from components.spec.model import ClusterSpec


class AdminTools(pulumi.ComponentResource):
    def __init__(self, name: str, spec: ClusterSpec, hosts: Sequence[tuple[HostHandle, HostPreparation]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pegasus:cluster:AdminTools", name, None, opts)
        tools = spec.tools
        assert tools is not None
        layout = files.layout(spec)
        self.installed: list[pulumi.Resource] = []
        for host, prep in hosts:
            # As the server package: a replaced instance gets the upload again.
            names = host.names
            upload = command.remote.CopyToRemote(
                names(f"{host.name}-tools-upload"), connection=host.connection, source=pulumi.FileAsset(tools.path),
                remote_path=layout.package_path(tools.file_name), triggers=[tools.sha256, host.identity],
                opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(f"{host.name}-tools-upload"),
                                            depends_on=prep.done))
            self.installed.append(remote_command(
                names(f"{host.name}-tools"), host.connection, triggers=[tools.sha256],
                create=files.install_tools_script(spec), delete=files.remove_tools_script(spec),
                opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(f"{host.name}-tools"),
                                            depends_on=[upload])))
        self.directory = files.tools_release_dir(spec)
        self.register_outputs({"release": tools.release})
