"""Pegasus on one server: the package (fetched from the stack's store, or uploaded) and each role it runs.

Each role is a few remote commands with distinct jobs:
- `<host>-<role>-config`: stages the newest rendered config.ini (a command,
  not an upload: its text holds addresses unknown at preview).
- `<host>-<role>`: first start (create) and stop + cleanup (delete). A rerun
  (a new connection) leaves a running server alone.
- `<host>-<role>-roll`: its create only lists, one fact a line, what the
  server runs with (package, addresses, overrides, unit and config hashes), so
  a preview's diff says what changed; then Pulumi runs its update, which
  restarts this one server if its files differ and waits until the cluster
  is healthy again. The cluster chains the rolls in Pegasus's order.
  (Not `triggers`: pulumi-command replaces a resource whose triggers change,
  even when it has an update command, pulumi/pulumi-command#855.)
- `<host>-meta-roll-leader` (MetaServers only): the leader defers its restart
  during the roll; this second pass restarts it last.
- `<host>-<role>-check`: once the whole cluster is up, waits until this
  server serves, is ALIVE and every table is healthy; on timeout it prints
  this server's logs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from . import server_files as files
from .host import HostHandle
from .host_preparation import HostPreparation
from .package_store import PackageStore
from .remote_command import remote_command
from .spec import ClusterSpec


class PegasusServer(pulumi.ComponentResource):
    """The package on one host, and the roles the cluster adds to it in start order."""

    def __init__(self, host: HostHandle, prep: HostPreparation, spec: ClusterSpec,
                 meta_ips: pulumi.Output[list[str]], zk_servers: pulumi.Output[str],
                 store: PackageStore | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pegasus:cluster:PegasusServer", f"{host.name}-pegasus", None, opts)
        self._host, self._prep, self._spec = host, prep, spec
        self._meta_ips, self._zk_servers = meta_ips, zk_servers
        self.installed = self._package(host, prep, spec, store)
        self.register_outputs({"release": spec.package.release})

    def _package(self, host: HostHandle, prep: HostPreparation, spec: ClusterSpec,
                 store: PackageStore | None) -> command.remote.Command:
        """`<host>-package`: the package fetched from the stack's store (or uploaded), checked, installed."""
        if store is not None:
            # The host reads it from S3 itself: no package bytes cross the operator's
            # link or the bastion. The instance's id is in the script, so a replaced
            # instance runs it again.
            script = pulumi.Output.all(store.bucket, store.region, host.identity).apply(
                lambda v: files.fetch_and_install_package_script(spec, f"{host.name} ({v[2]})", v[0], v[1],
                                                                 store.key))
            return remote_command(
                f"{host.name}-package", connection=host.connection, triggers=[spec.package.sha256],
                create=script, delete=files.remove_package_script(spec),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*prep.done, *store.ready]))
        # pulumi-command 1.2.1 re-copies only when the file or the remote path
        # changes, not when the connection points at a new machine: the
        # instance's identity in the triggers makes a replaced server get it.
        upload = command.remote.CopyToRemote(
            f"{host.name}-package-upload", connection=host.connection,
            source=pulumi.FileAsset(spec.package.path),
            remote_path=files.layout(spec).package_path(spec.package.file_name),
            triggers=[spec.package.sha256, host.identity],
            opts=pulumi.ResourceOptions(parent=self, depends_on=prep.done))
        return remote_command(
            f"{host.name}-package", connection=host.connection, triggers=[spec.package.sha256],
            create=files.install_package_script(spec), delete=files.remove_package_script(spec),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[upload]))

    def add_role(self, role: str, start_after: list[pulumi.Resource]) -> "RoleCommands":
        """The role's staged config and first start; its roll comes with add_roll."""
        host, spec = self._host, self._spec
        role_files = pulumi.Output.all(host.cluster_ip, self._prep.interface, self._meta_ips,
                                       self._zk_servers).apply(
            lambda v: files.role_files(spec, role, v[0], v[1], v[2], v[3]))
        # The config travels inside the command, not as a CopyToRemote: its text
        # depends on addresses the cloud assigns, unknown at preview, and
        # pulumi-command 1.2.1 refuses an unknown CopyToRemote source (fixed
        # upstream in #1184, unreleased). Secret overrides keep it secret.
        stage = role_files.apply(lambda f: f.stage)
        staged = remote_command(
            f"{host.name}-{role}-config", host.connection,
            create=pulumi.Output.secret(stage) if spec.config_has_secrets else stage,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self._prep.done))
        service = remote_command(
            f"{host.name}-{role}", connection=host.connection,
            create=role_files.apply(lambda f: f.start), delete=role_files.apply(lambda f: f.stop),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.installed, staged, *start_after]))
        record = role_files.apply(lambda f: f.restart_record)
        return RoleCommands(host=host.name, role=role, service=service, staged=staged, record=record,
                            files=role_files)

    def add_roll(self, server: "RoleCommands", after: list[pulumi.Resource]) -> command.remote.Command:
        """The role's restart on change, after the previous server's in the cluster's roll order."""
        deps = [server.service, server.staged, self.installed, *after]
        server.roll = remote_command(
            f"{self._host.name}-{server.role}-roll", self._host.connection,
            create=server.record, update=server.files.apply(lambda f: f.roll),
            opts=pulumi.ResourceOptions(parent=self, depends_on=deps))
        return server.roll

    def add_leader_pass(self, meta: "RoleCommands", after: list[pulumi.Resource]) -> command.remote.Command:
        """The second pass of the MetaServer roll: restarts a deferred leader, last."""
        return remote_command(
            f"{self._host.name}-meta-roll-leader", connection=self._host.connection,
            create=meta.record, update=meta.files.apply(lambda f: f.deferred_roll),
            opts=pulumi.ResourceOptions(parent=self, depends_on=after))

    def add_check(self, server: "RoleCommands", after: list[pulumi.Resource]) -> command.remote.Command:
        """The server's self-check, run once the whole cluster has started."""
        return remote_command(
            f"{self._host.name}-{server.role}-check", connection=self._host.connection,
            create=server.files.apply(lambda f: f.check),
            opts=pulumi.ResourceOptions(parent=self, depends_on=after))


@dataclass
class RoleCommands:
    host: str  # the host's name
    role: str
    service: command.remote.Command  # first start, and stop + cleanup at destroy
    staged: command.remote.Command  # the newest rendered config.ini, staged on the host
    record: pulumi.Output[str]
    files: pulumi.Output[files.RoleFiles]
    roll: command.remote.Command | None = None  # restart on change (add_roll)
