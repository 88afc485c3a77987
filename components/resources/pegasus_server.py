"""Pegasus on one server: the package (fetched from the stack's store, or uploaded) and each role it runs.

Each role is two remote commands with distinct jobs:
- `<cluster>-<host>-<role>-config`: stages the newest rendered config.ini and the
  script that restarts the server onto it (a command, not an upload: its text
  holds addresses unknown at preview).
- `<cluster>-<host>-<role>`: first start (create) and stop + cleanup (delete). A rerun
  (a new connection) leaves a running server alone.
Restarts on change, and the check that every server serves, belong to the
cluster's rolling restart (rolling_restart.py), which runs the staged script.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from components.render import server_files as files
from components.resources.host_handle import HostHandle
from components.resources.host_preparation import HostPreparation
from components.resources.package_store import PackageStore
from components.resources.remote_command import remote_command
from components.spec.model import ClusterSpec


class PegasusServer(pulumi.ComponentResource):
    """The package on one host, and the roles the cluster adds to it in start order."""

    def __init__(self, host: HostHandle, prep: HostPreparation, spec: ClusterSpec,
                 meta_ips: pulumi.Output[list[str]], zk_servers: pulumi.Output[str],
                 store: PackageStore | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        names = host.names
        super().__init__("pegasus:cluster:PegasusServer", names(f"{host.name}-pegasus"), None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                             aliases=names.aliases(f"{host.name}-pegasus"))))
        self._host, self._prep, self._spec = host, prep, spec
        self._meta_ips, self._zk_servers = meta_ips, zk_servers
        self.installed = self._package(host, prep, spec, store)
        self.register_outputs({"release": spec.package.release})

    def _package(self, host: HostHandle, prep: HostPreparation, spec: ClusterSpec,
                 store: PackageStore | None) -> command.remote.Command:
        """`<cluster>-<host>-package`: the package fetched from the stack's store (or uploaded), checked, installed."""
        names = host.names
        if store is not None:
            # The host reads it from S3 itself: no package bytes cross the operator's
            # link or the bastion. The instance's id is in the script, so a replaced
            # instance runs it again.
            script = pulumi.Output.all(store.bucket, store.region, host.identity).apply(
                lambda v: files.fetch_and_install_package_script(spec, f"{host.name} ({v[2]})", v[0], v[1],
                                                                 store.key))
            return remote_command(
                names(f"{host.name}-package"), connection=host.connection, triggers=[spec.package.sha256],
                create=script, delete=files.remove_package_script(spec),
                opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(f"{host.name}-package"),
                                            depends_on=[*prep.done, *store.ready]))
        # pulumi-command 1.2.1 re-copies only when the file or the remote path
        # changes, not when the connection points at a new machine: the
        # instance's identity in the triggers makes a replaced server get it.
        upload = command.remote.CopyToRemote(
            names(f"{host.name}-package-upload"), connection=host.connection,
            source=pulumi.FileAsset(spec.package.path),
            remote_path=files.layout(spec).package_path(spec.package.file_name),
            triggers=[spec.package.sha256, host.identity],
            opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(f"{host.name}-package-upload"),
                                        depends_on=prep.done))
        return remote_command(
            names(f"{host.name}-package"), connection=host.connection, triggers=[spec.package.sha256],
            create=files.install_package_script(spec), delete=files.remove_package_script(spec),
            opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(f"{host.name}-package"),
                                        depends_on=[upload]))

    def add_role(self, role: str, start_after: list[pulumi.Resource]) -> "RoleCommands":
        """The role's staged files and first start; the cluster's rolling restart restarts it."""
        host, spec = self._host, self._spec
        names = host.names
        role_files = pulumi.Output.all(host.cluster_ip, self._prep.interface, self._meta_ips,
                                       self._zk_servers).apply(
            lambda v: files.role_files(spec, role, v[0], v[1], v[2], v[3]))
        # The config travels inside the command, not as a CopyToRemote: its text
        # depends on addresses the cloud assigns, unknown at preview, and
        # pulumi-command 1.2.1 refuses an unknown CopyToRemote source (fixed
        # upstream in #1184, unreleased). Secret overrides keep it secret.
        stage = role_files.apply(lambda f: f.stage)
        staged = remote_command(
            names(f"{host.name}-{role}-config"), host.connection,
            create=pulumi.Output.secret(stage) if spec.config_has_secrets else stage,
            opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(f"{host.name}-{role}-config"),
                                        depends_on=self._prep.done))
        service = remote_command(
            names(f"{host.name}-{role}"), connection=host.connection,
            create=role_files.apply(lambda f: f.start), delete=role_files.apply(lambda f: f.stop),
            opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(f"{host.name}-{role}"),
                                        depends_on=[self.installed, staged, *start_after]))
        record = role_files.apply(lambda f: f.restart_record)
        return RoleCommands(host=host.name, role=role, service=service, staged=staged, record=record)


@dataclass
class RoleCommands:
    host: str  # the host's name
    role: str
    service: command.remote.Command  # first start, and stop + cleanup at destroy
    staged: command.remote.Command  # the newest rendered config.ini, staged on the host
    record: pulumi.Output[str]  # what the rolling restart compares (RoleFiles.restart_record)
