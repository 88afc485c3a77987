"""The whole Pegasus cluster, wired in the order it must come up (and go down).

Up:  fixed settings checked -> network, security-group rules, hosts (or your
     own servers, listed: nothing of AWS) -> host
     preparation -> ZooKeeper ready -> ZooKeeper path guard -> MetaServers ->
     ReplicaServers (in parallel) -> Collector -> rolling restart (which, on
     a first deploy, checks every server) -> ZooKeeper roll (the servers whose
     zoo.cfg changed, once the MetaServers list them as they are) -> cluster
     checks.
Down (Pulumi deletes in reverse): Collector, ReplicaServers, MetaServers
     stopped and their directories removed -> ZooKeeper path removed ->
     ZooKeeper stopped -> disks unmounted, package and appDir removed ->
     instances, volumes, NICs -> the groups' rules (SSH last of all), groups,
     network.
Changes: `<cluster>-rolling-restart` restarts the servers whose files changed
in Pegasus's rolling-update order (ReplicaServers, then MetaServers with the
leader last, then the Collector), one at a time, each only in a healthy
cluster, waiting until every table is fully healthy again. Every server hangs
off the graph by one edge, so a first deploy is as long for 1000
ReplicaServers as for 3.
Checks: after that, the cluster's `-health` (at every up: every server
serves, else those that do not with their own logs) and `-replica-removal`
(before Pulumi deletes a dropped ReplicaServer).
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pulumi
import pulumi_aws as aws

from components.render.client_config import client_config
from components.render import host_layout as hl
from components.render import server_files as files
from components.resources.tools_install import AdminTools
from components.operations.cluster_health import ClusterHealth, ClusterHealthArgs
from components.operations.fixed_settings import FixedSettings
from components.resources.aws_host import AwsHost
from components.resources.host_handle import HostHandle
from components.resources.host_keys import HostKeys
from components.resources.host_preparation import HostPreparation
from components.resources.monitoring import MONITORING_HOST, Monitoring, MonitoringHost
from components.resources.monitoring_network import monitoring_rules
from components.resources.network import Network, group_roles
from components.resources.own_host import OwnHost, own_hosts
from components.resources.package_store import PackageStore
from components.resources.pegasus_server import PegasusServer, RoleCommands
from components.resources.remote_command import remote_command
from components.resources.resource_names import ResourceNames
from components.operations.rolling_restart import RollingRestart, RollingRestartArgs, server_key
from components.spec.model import ClusterSpec
from components.spec.topology import ROLE_ORDER, ROLL_ORDER, HostPlan, plan_hosts
from components.resources.zookeeper_ensemble import ZooKeeperEnsemble
from components.operations.zookeeper_path_guard import ZooKeeperPathGuard, ZooKeeperPathGuardArgs, default_owner_id


class PegasusCluster(pulumi.ComponentResource):
    """Every resource of the cluster is named under `name` (`<name>-replica-0`), so
    several clusters can share a program, a stack and a project (give each its own
    clusterName: it names the ZooKeeper path and the servers' tags).

    `adopt_old_names`: the cluster takes over the resources a stack deployed before
    names carried the cluster's (`replica-0`, `meta-0-prepare`): each renamed resource
    gets an alias to its old name, so `pulumi up` updates it in place and replaces
    nothing. Only the one cluster such a stack holds may: __main__.py sets it for the
    cluster of the stack's config; a further cluster in a program must not (the engine
    refuses two resources with an alias to the same old resource). See resource_names.py.
    That cluster's ZooKeeper path also stays stamped with the stack alone, as before;
    any other cluster's with the stack and its name.
    """

    def __init__(self, name: str, spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None, *,
                 adopt_old_names: bool = False) -> None:
        super().__init__("pegasus:cluster:Cluster", name, None, opts)
        # Every host and data directory is marked as this stack's cluster's.
        spec = replace(spec, owner=spec.owner or default_owner_id())
        child = pulumi.ResourceOptions(parent=self)
        names = ResourceNames(name, adopt_old_names)
        # First registered: its check refuses, at preview, a change of what an
        # existing cluster cannot change (homeDir, appDir, clusterName, fewer or
        # smaller disks, a shared-log disk added or removed, another ZooKeeper
        # ensemble or size). Its URN must not depend on clusterName, or a renamed
        # cluster's check would find no previous values to compare with.
        fixed_name, fixed_aliases = names.of_the_stack("fixed-settings")
        slog = spec.replica.slog_disk
        FixedSettings(fixed_name, {
            "cluster_name": spec.cluster_name, "home_dir": spec.home_dir, "app_dir": spec.app_dir,
            "data_disk_count": spec.replica.data_disks.count, "data_disk_size_gib": spec.replica.data_disks.size_gib,
            "slog_disk": slog is not None, "slog_disk_size_gib": slog.size_gib if slog else 0,
            "zookeeper_count": spec.zookeeper.count, "zookeeper_servers": ",".join(spec.zookeeper.external_servers),
        }, opts=pulumi.ResourceOptions(parent=self, aliases=fixed_aliases))
        plans = plan_hosts(spec)
        # Your own servers (`servers`) or machines made on AWS; from here on, a host is a HostHandle.
        store: PackageStore | None = None
        self.client_security_group_id: pulumi.Output[str] | None = None  # AWS only: your own servers have no groups
        self._aws: tuple | None = None  # (network, AMI, key pair name) on AWS: the monitoring host needs them
        # Every SSH connection checks the server's host key, and the bastion's (host_keys.py).
        host_keys = HostKeys(spec, names, child)
        if spec.servers:
            hosts = own_hosts(spec, plans, names, host_keys, child)
        else:
            hosts, store = self._aws_hosts(names, spec, plans, host_keys, child)
        # The monitoring's own host, made before the host-key check, which asks it too.
        monitoring_host = self._monitoring_host(names, spec, host_keys, child) if spec.monitoring.enabled else None
        # At every up, every server asked for its key: fails with each refused one's fingerprints. Each
        # command, and the path guard's tunnel, checks its own server's key itself; the rolling restart
        # and the health check, which reach every server, wait for this check. (A gate before every
        # command would tie every server to every other: the SDK's dependency checks would grow with
        # the square of the cluster.)
        checked = host_keys.check()
        preps = {n: HostPreparation(h, spec, opts=child) for n, h in hosts.items()}
        zk_hosts = [(hosts[p.name], preps[p.name]) for p in plans if p.kind == "zookeeper"]
        metas = [p.name for p in plans if p.kind == "meta"]

        zookeeper = ZooKeeperEnsemble(f"{name}-zookeeper", spec, zk_hosts,
                                      host_keys.session_access([h.known_host for h, _ in zk_hosts]), opts=child)
        guard = self._path_guard(names, spec, host_keys, zookeeper,
                                 hosts[zk_hosts[0][0].name if zk_hosts else metas[0]],
                                 zk_hosts[0][1] if zk_hosts else preps[metas[0]], [hosts[m] for m in metas])

        meta_ips = pulumi.Output.all(*[hosts[m].cluster_ip for m in metas])
        pegasus = {p.name: PegasusServer(hosts[p.name], preps[p.name], spec, meta_ips, zookeeper.servers, store,
                                         opts=child)
                   for p in plans if p.roles}
        servers: dict[str, list[RoleCommands]] = {role: [] for role in ROLE_ORDER}
        for role in ROLE_ORDER:  # first starts: MetaServers, ReplicaServers, Collector
            start_after = {"meta": [guard], "replica": [r.service for r in servers["meta"]],
                           "collector": [r.service for r in servers["replica"]]}[role]
            for plan in plans:
                if role in plan.roles:
                    servers[role].append(pegasus[plan.name].add_role(role, start_after))
        replica_names = [p.name for p in plans if p.kind == "replica"]
        tools, tools_args = None, None
        if spec.tools is not None:
            tools = AdminTools(f"{name}-admin-tools", spec, [(hosts[m], preps[m]) for m in metas], opts=child)
            release = spec.tools.version
            tools_args = meta_ips.apply(lambda ips: {
                "host": metas[0], "dir": tools.directory, "library_dir": files.layout(spec).jvm_lib_link,
                "release": release,
                "meta_list": files.address_list(ips, hl.ROLE_PORTS["meta"]),
                "wait_seconds": spec.timeouts.health_seconds})
        else:
            pulumi.log.warn(
                "no toolsPackage: a rolling restart (a config, unit or package change) restarts each "
                "ReplicaServer without moving its primaries away first (that needs Pegasus's admin shell): "
                "clients get errors on those partitions until the MetaServer reassigns them (up to "
                "fd_grace_seconds). To avoid them, set pegasus:toolsPackage to the tarball pack_tools made "
                "(this program then moves the primaries with the shell), or roll at a quiet time.", resource=self)
        # Once every server has started (each start waits for its package, so a
        # package that failed to install anywhere stops the roll before any
        # restart) and the admin tools are installed: restarts on change in
        # Pegasus's order (ReplicaServers in groups that share no partition,
        # planned from the partition map a MetaServer host reads; the others one
        # at a time), and on a first deploy the check of every server.
        started: list[pulumi.Resource] = [server.service for role in ROLE_ORDER for server in servers[role]]
        restart_hosts = {n: hosts[n].ssh_address for n in pegasus}
        replica_ips = pulumi.Output.all(*[hosts[n].cluster_ip for n in replica_names])
        # (MetaServer addresses, {ReplicaServer host name: address}) for the replica-removal guard
        addresses = pulumi.Output.all(meta_ips, replica_ips).apply(lambda v: (v[0], dict(zip(replica_names, v[1]))))
        restart = RollingRestart(f"{name}-rolling-restart", RollingRestartArgs(
            restart_records={server_key(s.host, s.role): s.record for role in ROLL_ORDER for s in servers[role]},
            hosts=restart_hosts,
            staged_dir=files.layout(spec).staged_dir,
            access=host_keys.session_access(),
            replica_nodes={n: hosts[n].cluster_ip.apply(lambda ip: f"{ip}:{hl.ROLE_PORTS['replica']}")
                           for n in replica_names},
            tools=tools_args,
            roll=files.roll_limits(spec, spec.roll.max_parallel),
            map_script=meta_ips.apply(files.partition_map_script),
            map_hosts=metas,
            removal_guard=addresses.apply(lambda a: files.replica_removal_guard(spec, *a)),
            staged={server_key(s.host, s.role): s.staged_stamp for role in ROLL_ORDER for s in servers[role]},
            replica_units=files.replica_units(spec)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[checked, *started,
                                                                 *(tools.installed if tools else [])]))
        keys = [server_key(s.host, s.role) for role in ROLL_ORDER for s in servers[role]]
        server_ips = pulumi.Output.all(*[hosts[key.partition("/")[0]].cluster_ip for key in keys]).apply(
            lambda ips: dict(zip(keys, ips)))
        # A provisioned ensemble whose files changed (a server replaced) rolls last, once
        # the MetaServers list its servers as they are now.
        zookeeper_roll = zookeeper.roll_after([restart])
        # Runs at every `pulumi up`, changed or not (a new `run` each time: one
        # line in the preview), so a server that died since the last up is
        # reported, with its own logs, rather than found by the next change.
        health = ClusterHealth(f"{name}-health", ClusterHealthArgs(
            run=uuid.uuid4().hex,
            script=pulumi.Output.all(meta_ips, server_ips).apply(lambda v: files.health_check_script(spec, *v)),
            check_hosts=metas, hosts=restart_hosts, staged_dir=files.layout(spec).staged_dir,
            access=host_keys.session_access(), servers=keys, wait_seconds=spec.timeouts.health_seconds,
            tools=tools_args, rolling_restart=f"{name}-rolling-restart"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[restart, *zookeeper_roll]))

        # Scale-in: before Pulumi deletes a ReplicaServer the stack dropped (deletes
        # come last in a deployment), this refuses while it still holds replicas (the
        # rolling restart asks the same before it restarts anything).
        remote_command(
            f"{name}-replica-removal", hosts[metas[0]].connection,
            create=addresses.apply(lambda a: files.replica_removal_guard_script(spec, *a)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[restart]))

        self.meta_servers = meta_ips.apply(lambda ips: files.address_list(ips, hl.ROLE_PORTS["meta"]))
        self.client_config = meta_ips.apply(lambda ips: client_config(
            spec.cluster_name, [f"{ip}:{hl.ROLE_PORTS['meta']}" for ip in ips]))
        self.zookeeper_servers = zookeeper.servers
        self.cluster_root = guard.path
        self.replica_servers = replica_ips.apply(lambda ips: [f"{ip}:{hl.ROLE_PORTS['replica']}" for ip in ips])
        collector_host = next((p.name for p in plans if "collector" in p.roles), None)
        self.collector = (hosts[collector_host].cluster_ip.apply(lambda ip: f"{ip}:{hl.ROLE_PORTS['collector']}")
                          if collector_host else pulumi.Output.from_input(""))
        self.ssh = {n: h.ssh_address.apply(lambda ip: self._ssh_hint(spec, ip)) for n, h in hosts.items()}
        self.monitoring = (self._monitoring(names, spec, plans, hosts, preps, zookeeper, monitoring_host, child).outputs
                           if spec.monitoring.enabled else None)
        self.known_hosts = host_keys.known_hosts()
        self.health = health.report
        self.register_outputs({"metaServers": self.meta_servers, "zookeeperServers": self.zookeeper_servers,
                               "clusterRoot": self.cluster_root, "replicaServers": self.replica_servers,
                               "collector": self.collector, "health": self.health,
                               "clientConfig": self.client_config,
                               "clientSecurityGroupId": self.client_security_group_id})

    def _aws_hosts(self, names: ResourceNames, spec: ClusterSpec, plans: list[HostPlan], keys: HostKeys,
                   child: pulumi.ResourceOptions) -> tuple[dict[str, HostHandle], PackageStore | None]:
        """The machines, and the package store they read the package from (unless it is uploaded)."""
        name = names.cluster
        network = Network(name, spec, opts=child)
        self.client_security_group_id = network.client_security_group_id
        key = aws.ec2.KeyPair(f"{name}-ssh", public_key=spec.ssh.public_key,
                              tags={"pegasus:cluster": spec.cluster_name}, opts=child)
        ami = spec.image.ami or aws.ec2.get_ami_output(
            most_recent=True, owners=[spec.image.ami_owner],
            filters=[aws.ec2.GetAmiFilterArgs(name="name", values=[spec.image.ami_name_pattern]),
                     aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"])],
            opts=pulumi.InvokeOutputOptions(parent=self)).id
        # The package, uploaded once for the stack; Pegasus servers read it with their role.
        store = PackageStore(name, spec, network, opts=child) if spec.package_from_store else None
        hosts = {p.name: AwsHost(p, spec, network, ami, key.key_name, names, keys,
                                 instance_profile=store.instance_profile if store and p.roles else None,
                                 opts=child).handle for p in plans}
        self._aws = (network, ami, key.key_name)
        return hosts, store

    def _monitoring_host(self, names: ResourceNames, spec: ClusterSpec, keys: HostKeys,
                         child: pulumi.ResourceOptions) -> tuple[HostHandle, list[pulumi.Resource]] | None:
        """The monitoring's own host and what its first commands wait for: an instance on AWS
        (`monitoring.host: own`, in a group of its own made here too) or `servers.monitoring`;
        None when it runs on the first MetaServer's host."""
        if self._aws is not None:
            network, ami, key_name = self._aws
            group, rules = monitoring_rules(names.cluster, spec, network.vpc_id, network.security_groups,
                                            {"zookeeper": [], **group_roles(spec)}, network.ssh_from, child)
            if not spec.monitoring.own_host:
                return None
            # Its first commands install packages: the subnet's route out comes first.
            own = MonitoringHost(f"{names.cluster}-{MONITORING_HOST}", spec, network.subnet_id,
                                 network.availability_zone, group, [*network.egress_ready, *rules], ami, key_name,
                                 names, keys, opts=child)
            return own.handle, own.ready
        if not spec.monitoring.own_host:
            return None
        # Your own servers: the one under servers.monitoring, found like the cluster's.
        assert spec.servers is not None
        plan = HostPlan(MONITORING_HOST, "monitoring", 0, (), "", None, None, False)
        host = OwnHost(plan, spec.servers.monitoring[0], spec, names, keys, opts=child).handle
        return host, list(host.ready)

    def _monitoring(self, names: ResourceNames, spec: ClusterSpec, plans: list[HostPlan],
                    hosts: dict[str, HostHandle], preps: dict[str, HostPreparation], zookeeper: ZooKeeperEnsemble,
                    own_host: tuple[HostHandle, list[pulumi.Resource]] | None,
                    child: pulumi.ResourceOptions) -> Monitoring:
        """node_exporter on every host; Prometheus and Alertmanager on the monitoring host:
        its own (`own_host`), else the first MetaServer's host."""
        kinds = {p.name: p.kind for p in plans}
        entries = {n: (kinds[n], h, preps[n].done) for n, h in hosts.items()}
        first_meta = next(p.name for p in plans if p.kind == "meta")
        host, ready = hosts[first_meta], list(preps[first_meta].done)
        if own_host is not None:
            host, ready = own_host
            entries[MONITORING_HOST] = ("monitoring", host, ready)
        pegasus = {role: [p.name for p in plans if role in p.roles] for role in ROLE_ORDER}
        return Monitoring(f"{names.cluster}-monitoring", spec, entries, host, ready, pegasus, zookeeper.servers,
                          opts=child)

    def _path_guard(self, names: ResourceNames, spec: ClusterSpec, keys: HostKeys, zookeeper: ZooKeeperEnsemble,
                    via: HostHandle, via_prep, meta_hosts: list[HostHandle]):
        tunnel = keys.tunnel(via.known_host) if spec.zookeeper.access == "ssh" else None
        # Only the MetaServers write the path (besides the guard, by its own secret): an
        # address is all ZooKeeper can know them by (Pegasus 2.4/2.5 authenticate in no way).
        writers = pulumi.Output.all(*[host.addresses for host in meta_hosts if host.addresses is not None]).apply(
            lambda lists: sorted({ip for ips in lists for ip in ips}))
        # The stack owns its own cluster's path; a further cluster of the program owns its
        # path under its own name, so two of them given one clusterName on one ensemble are
        # refused rather than sharing /pegasus/<clusterName>.
        owner = default_owner_id() if names.adopt_old_names else f"{default_owner_id()}/{names.cluster}"
        return ZooKeeperPathGuard(
            f"{names.cluster}-zookeeper-path",
            ZooKeeperPathGuardArgs(cluster_name=spec.cluster_name, servers=zookeeper.servers, owner=owner,
                                   retain=spec.retain_data, adopt=spec.zookeeper.adopt_existing_path,
                                   tunnel=tunnel, timeout_seconds=spec.timeouts.zookeeper_seconds,
                                   writers=writers),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*zookeeper.ready, *via_prep.done]))

    @staticmethod
    def _ssh_hint(spec: ClusterSpec, ip: str) -> str:
        bastion = spec.ssh.bastion
        jump = f"-J {bastion.user}@{bastion.host}:{bastion.port} " if bastion else ""
        return f"ssh {jump}{spec.ssh.user}@{ip}"
