"""The whole Pegasus cluster, wired in the order it must come up (and go down).

Up:  fixed settings checked -> network, security-group rules, hosts -> host
     preparation -> ZooKeeper ready -> ZooKeeper path guard -> MetaServers ->
     ReplicaServers (in parallel) -> Collector -> checks.
Down (Pulumi deletes in reverse): Collector, ReplicaServers, MetaServers
     stopped and their directories removed -> ZooKeeper path removed ->
     ZooKeeper stopped -> disks unmounted, package and appDir removed ->
     instances, volumes, NICs -> the groups' rules (SSH last of all), groups,
     network.
Changes: the `-roll` commands form one chain in Pegasus's rolling-update
order (ReplicaServers, then MetaServers, then the deferred leader, then the
Collector), so a change restarts one server at a time, each only in a healthy
cluster, and waits until every table is fully healthy again.
Checks: after all that, every server's `-check`, the cluster's `-health` (at
every up) and `-replica-removal` (before Pulumi deletes a dropped
ReplicaServer) run side by side.
"""

from __future__ import annotations

import uuid

import pulumi
import pulumi_aws as aws

from . import host_layout as hl
from . import server_files as files
from .fixed_settings import FixedSettings
from .host import AwsHost
from .host_preparation import HostPreparation
from .network import Network
from .package_store import PackageStore
from .pegasus_server import PegasusServer, RoleCommands
from .remote_command import remote_command
from .spec import ClusterSpec
from .topology import ROLE_ORDER, ROLL_ORDER, plan_hosts
from .zookeeper import ZooKeeperEnsemble
from .zookeeper_path_guard import ZooKeeperPathGuard, ZooKeeperPathGuardArgs, default_owner_id


class PegasusCluster(pulumi.ComponentResource):
    def __init__(self, name: str, spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pegasus:cluster:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # First registered: its check refuses, at preview, a change of what an
        # existing cluster cannot change (homeDir, appDir, clusterName, fewer or
        # smaller disks).
        FixedSettings(f"{name}-fixed-settings", {
            "cluster_name": spec.cluster_name, "home_dir": spec.home_dir, "app_dir": spec.app_dir,
            "data_disk_count": spec.replica.data_disks.count, "data_disk_size_gib": spec.replica.data_disks.size_gib,
        }, opts=child)
        network = Network(name, spec, opts=child)
        key = aws.ec2.KeyPair(f"{name}-ssh", public_key=spec.ssh.public_key,
                              tags={"pegasus:cluster": spec.cluster_name}, opts=child)
        ami = spec.image.ami or aws.ec2.get_ami_output(
            most_recent=True, owners=[spec.image.ami_owner],
            filters=[aws.ec2.GetAmiFilterArgs(name="name", values=[spec.image.ami_name_pattern]),
                     aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"])],
            opts=pulumi.InvokeOutputOptions(parent=self)).id

        plans = plan_hosts(spec)
        # The package, uploaded once for the stack; Pegasus servers read it with their role.
        store = PackageStore(name, spec, network, opts=child) if spec.package_from_store else None
        hosts = {p.name: AwsHost(p, spec, network, ami, key.key_name,
                                 instance_profile=store.instance_profile if store and p.roles else None,
                                 opts=child).handle for p in plans}
        preps = {n: HostPreparation(h, spec, opts=child) for n, h in hosts.items()}
        zk_hosts = [(hosts[p.name], preps[p.name]) for p in plans if p.kind == "zookeeper"]
        metas = [p.name for p in plans if p.kind == "meta"]

        zookeeper = ZooKeeperEnsemble(f"{name}-zookeeper", spec, zk_hosts, opts=child)
        guard = self._path_guard(name, spec, zookeeper, hosts[zk_hosts[0][0].name if zk_hosts else metas[0]],
                                 zk_hosts[0][1] if zk_hosts else preps[metas[0]])

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
        # Restarts on change, one server at a time in Pegasus's rolling-update
        # order: ReplicaServers, then MetaServers (the leader last), then the Collector.
        pulumi.log.warn(
            "a rolling restart (a config, unit or package change) restarts each ReplicaServer without moving "
            "its primaries away first (that needs Pegasus's admin shell, which this program does not drive "
            "yet): clients get errors on those partitions until the MetaServer reassigns them (up to "
            "fd_grace_seconds). To avoid them, move the primaries off each ReplicaServer with the Pegasus "
            "shell before its turn, or roll at a quiet time.", resource=self)
        # The first restart also waits for the package on every host: a package
        # that failed to install anywhere stops the roll before any server restarts.
        previous: list[pulumi.Resource] = [server.installed for server in pegasus.values()]
        for role in ROLL_ORDER:
            for server in servers[role]:
                previous = [pegasus[server.host].add_roll(server, after=previous)]
            if role == "meta":
                for server in servers["meta"]:
                    previous = [pegasus[server.host].add_leader_pass(server, after=previous)]

        # Once every server has started (and any roll is done): each server checks
        # itself, so a failure shows that server's logs, and a MetaServer host checks
        # the cluster as a whole. The last roll stands for all that: every roll waits
        # for its server's start and for the roll before it. (Naming every start as
        # well would cost the SDK's cycle check about a second per 100 servers.)
        all_started = previous
        for server in (s for role in ROLE_ORDER for s in servers[role]):
            pegasus[server.host].add_check(server, after=all_started)
        replica_names = [p.name for p in plans if p.kind == "replica"]
        replica_ips = pulumi.Output.all(*[hosts[n].cluster_ip for n in replica_names])
        # (MetaServer addresses, {ReplicaServer host name: address}) for the cluster-level commands
        addresses = pulumi.Output.all(meta_ips, replica_ips).apply(lambda v: (v[0], dict(zip(replica_names, v[1]))))
        # Runs at every `pulumi up`, changed or not (a new trigger each run: one
        # line in the preview), so a server that died since the last up is
        # reported rather than found by the next change.
        health = remote_command(
            f"{name}-health", hosts[metas[0]].connection,
            create=addresses.apply(lambda a: files.health_check_script(spec, *a)),
            triggers=[uuid.uuid4().hex],
            opts=pulumi.ResourceOptions(parent=self, depends_on=all_started))

        # Scale-in: before Pulumi deletes a ReplicaServer the stack dropped (deletes
        # come last in a deployment), this refuses while it still holds replicas.
        remote_command(
            f"{name}-replica-removal", hosts[metas[0]].connection,
            create=addresses.apply(lambda a: files.replica_removal_guard_script(spec, *a)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=all_started))

        self.meta_servers = meta_ips.apply(lambda ips: files.address_list(ips, hl.ROLE_PORTS["meta"]))
        self.zookeeper_servers = zookeeper.servers
        self.cluster_root = guard.path
        self.replica_servers = replica_ips.apply(lambda ips: [f"{ip}:{hl.ROLE_PORTS['replica']}" for ip in ips])
        collector_host = next((p.name for p in plans if "collector" in p.roles), None)
        self.collector = (hosts[collector_host].cluster_ip.apply(lambda ip: f"{ip}:{hl.ROLE_PORTS['collector']}")
                          if collector_host else pulumi.Output.from_input(""))
        self.ssh = {n: h.ssh_address.apply(lambda ip: self._ssh_hint(spec, ip)) for n, h in hosts.items()}
        self.health = health.stdout
        self.register_outputs({"metaServers": self.meta_servers, "zookeeperServers": self.zookeeper_servers,
                               "clusterRoot": self.cluster_root, "replicaServers": self.replica_servers,
                               "collector": self.collector, "health": self.health})

    def _path_guard(self, name: str, spec: ClusterSpec, zookeeper: ZooKeeperEnsemble, via, via_prep):
        tunnel = None
        if spec.zookeeper.access == "ssh":
            bastion = spec.ssh.bastion
            tunnel = pulumi.Output.all(via.ssh_address).apply(lambda v: {
                "host": v[0], "user": spec.ssh.user, "port": 22, "private_key": spec.ssh.private_key,
                "bastion": {"host": bastion.host, "user": bastion.user, "port": bastion.port} if bastion else None,
            })
        return ZooKeeperPathGuard(
            f"{name}-zookeeper-path",
            ZooKeeperPathGuardArgs(cluster_name=spec.cluster_name, servers=zookeeper.servers, owner=default_owner_id(),
                                   retain=spec.retain_data, adopt=spec.zookeeper.adopt_existing_path,
                                   tunnel=tunnel, timeout_seconds=spec.timeouts.zookeeper_seconds),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*zookeeper.ready, *via_prep.done]))

    @staticmethod
    def _ssh_hint(spec: ClusterSpec, ip: str) -> str:
        bastion = spec.ssh.bastion
        jump = f"-J {bastion.user}@{bastion.host}:{bastion.port} " if bastion else ""
        return f"ssh {jump}{spec.ssh.user}@{ip}"
