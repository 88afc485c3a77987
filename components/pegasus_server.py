"""Pegasus on one server: the package (once per host) and each role it runs.

A role is three remote commands with distinct jobs:
- `<host>-<role>`: first start (create) and stop + cleanup (delete). Its
  scripts do not change with the config, so a config change never reruns it.
- `<host>-<role>-roll`: its create only records the package's sha256 and the
  rendered config.ini and unit hashes (the first start is the service's job,
  in parallel); when one of them changes, Pulumi runs its update, which
  activates the new files, restarts this one server and waits until the
  cluster is healthy. The cluster chains the rolls, so they run one at a time.
  (Not `triggers`: pulumi-command replaces a resource whose triggers change,
  even when it has an update command, pulumi/pulumi-command#855.)
- `<host>-meta-roll-leader` (MetaServers only): the leader defers its restart
  during the roll; this second pass restarts it last.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from . import server_files as files
from .host import HostHandle
from .host_preparation import HostPreparation
from .spec import ClusterSpec



def roll_record(package_sha256: str, restart_hashes: list[str]) -> str:
    """The roll's create: a no-op whose text changes exactly when a restart is due."""
    config_hash, unit_hash = restart_hashes
    return (f"echo 'rolls on change: package {package_sha256[:16]} config {config_hash} unit {unit_hash}'")


class PegasusPackage(pulumi.ComponentResource):
    """Uploads the server package once per host and unpacks it into its release directory."""

    def __init__(self, host: HostHandle, prep: HostPreparation, spec: ClusterSpec,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pegasus:cluster:PegasusPackage", f"{host.name}-package", None, opts)
        layout = files.layout(spec)
        upload = command.remote.CopyToRemote(
            f"{host.name}-package-upload", connection=host.connection,
            source=pulumi.FileAsset(spec.package.path),
            remote_path=layout.package_path(spec.package.file_name), triggers=[spec.package.sha256],
            opts=pulumi.ResourceOptions(parent=self, depends_on=prep.done))
        self.installed = command.remote.Command(
            f"{host.name}-package", connection=host.connection, triggers=[spec.package.sha256],
            create=files.install_package_script(spec), delete=files.remove_package_script(spec),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[upload]))
        self.register_outputs({"release": spec.package.release})


@dataclass
class RoleWiring:
    """Where a role sits in the cluster's order."""

    start_after: list[pulumi.Resource]
    roll_after: pulumi.Resource | None  # the previous server's roll in this role's chain


class PegasusRole(pulumi.ComponentResource):
    def __init__(self, host: HostHandle, prep: HostPreparation, package: PegasusPackage, role: str,
                 spec: ClusterSpec, meta_ips: pulumi.Output[list[str]], zk_servers: pulumi.Output[str],
                 wiring: RoleWiring, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pegasus:cluster:PegasusRole", f"{host.name}-{role}", None, opts)
        role_files = pulumi.Output.all(host.cluster_ip, prep.interface, meta_ips, zk_servers).apply(
            lambda v: files.role_files(spec, role, v[0], v[1], v[2], v[3]))
        config_hash = role_files.apply(lambda f: f.config_hash)
        staged = command.remote.CopyToRemote(
            f"{host.name}-{role}-config", connection=host.connection,
            source=role_files.apply(lambda f: pulumi.StringAsset(f.config)),
            remote_path=files.layout(spec).staged_config_path(role), triggers=[config_hash],
            opts=pulumi.ResourceOptions(parent=self, depends_on=prep.done))
        self.service = command.remote.Command(
            f"{host.name}-{role}", connection=host.connection,
            create=role_files.apply(lambda f: f.start), delete=role_files.apply(lambda f: f.stop),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[package.installed, staged, *wiring.start_after]))
        record = role_files.apply(lambda f: roll_record(spec.package.sha256, f.restart_hashes))
        roll_deps = [self.service, staged, package.installed] + ([wiring.roll_after] if wiring.roll_after else [])
        self.roll = command.remote.Command(
            f"{host.name}-{role}-roll", connection=host.connection,
            create=record, update=role_files.apply(lambda f: f.roll),
            opts=pulumi.ResourceOptions(parent=self, depends_on=roll_deps))
        self._files = role_files
        self._record = record
        self._host = host
        self.config_hash = config_hash
        self.register_outputs({"configHash": config_hash})

    def leader_pass(self, after: pulumi.Resource) -> command.remote.Command:
        """The second pass of the MetaServer roll: restarts a deferred leader, last."""
        return command.remote.Command(
            f"{self._host.name}-meta-roll-leader", connection=self._host.connection,
            create=self._record, update=self._files.apply(lambda f: f.deferred_roll),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[after]))
