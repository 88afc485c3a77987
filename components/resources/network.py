"""The cluster's network: one subnet in one availability zone, one security group per role.

Ingress is only what Pegasus and ZooKeeper need between the cluster's own
groups, plus SSH from `network.adminCidr` (or, with a bastion and no admin
range, from inside the VPC where the bastion sits). Nothing else is open.
"""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_aws as aws

from components.render import host_layout as hl
from components.render import server_files as files
from components.spec.model import ClusterSpec

# (to group, protocol, port, from groups): who may send to whom.
PEER_RULES = (
    ("zookeeper", "tcp", hl.ZOOKEEPER_CLIENT_PORT, ("zookeeper", "meta", "replica", "collector")),
    ("zookeeper", "tcp", hl.ZOOKEEPER_PEER_PORT, ("zookeeper",)),
    ("zookeeper", "tcp", hl.ZOOKEEPER_ELECTION_PORT, ("zookeeper",)),
    ("meta", "tcp", hl.ROLE_PORTS["meta"], ("meta", "replica", "collector")),
    ("replica", "tcp", hl.ROLE_PORTS["replica"], ("meta", "replica", "collector")),
    ("collector", "tcp", hl.ROLE_PORTS["collector"], ("meta", "collector")),
    # Failure detection is UDP in every release's config.ini
    # ([task.RPC_FD_FAILURE_DETECTOR_PING] rpc_call_channel = RPC_CHANNEL_UDP,
    # src/server/config.ini at v2.4.0, v2.5.0, master): a ReplicaServer pings
    # the MetaServer's port from its own port, the MetaServer answers to it.
    # MetaServers also ping through the same channel when a follower forwards.
    # The Collector takes part in no failure detection.
    ("meta", "udp", hl.ROLE_PORTS["meta"], ("meta", "replica")),
    ("replica", "udp", hl.ROLE_PORTS["replica"], ("meta",)),
)
GROUPS = ("zookeeper", "meta", "replica", "collector")


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]
    availability_zone: pulumi.Output[str]
    security_groups: dict[str, pulumi.Output[str]]
    egress_ready: list[pulumi.Resource]  # servers wait for these: their first commands install packages
    group_rules: dict[str, list[pulumi.Resource]]  # each group's rules: its servers live within them
    _server_routes: pulumi.Output[list[str]] | None = None  # the servers' subnet's route table, when made here

    def __init__(self, name: str, spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pegasus:cluster:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        net = spec.network
        self._spec_network = net
        tags = {"pegasus:cluster": spec.cluster_name, "pegasus:stack": spec.stack}
        self.egress_ready = []
        if net.vpc_id and net.subnet_id:  # the spec allows both or neither
            self.vpc_id = pulumi.Output.from_input(net.vpc_id)
            self.subnet_id = pulumi.Output.from_input(net.subnet_id)
            subnet = aws.ec2.get_subnet_output(id=net.subnet_id, opts=pulumi.InvokeOutputOptions(parent=self))
            self.availability_zone = subnet.availability_zone
            self._vpc_cidr_output = aws.ec2.get_vpc_output(id=net.vpc_id).cidr_block
        else:
            self._create_vpc(name, spec, tags, child)
            self._vpc_cidr_output = pulumi.Output.from_input(net.vpc_cidr)
        self.security_groups = self._security_groups(name, spec, tags, child)
        self.register_outputs({
            "vpcId": self.vpc_id, "subnetId": self.subnet_id, "availabilityZone": self.availability_zone,
        })

    def _create_vpc(self, name: str, spec: ClusterSpec, tags: dict, child: pulumi.ResourceOptions) -> None:
        net = spec.network
        private_cidr, public_cidr = subnet_ranges(net.vpc_cidr)
        if net.availability_zone:
            zone = pulumi.Output.from_input(net.availability_zone)
        else:
            zone = aws.get_availability_zones_output(state="available",
                                                     opts=pulumi.InvokeOutputOptions(parent=self)).names[0]
        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=net.vpc_cidr, enable_dns_hostnames=True,
                          enable_dns_support=True, tags={**tags, "Name": f"{spec.cluster_name}-vpc"}, opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=child)
        # The zone is read once: a later answer of the zone lookup (or a zone that
        # became unavailable) must never move the subnets and so every server.
        pinned = pulumi.ResourceOptions(parent=self, ignore_changes=["availability_zone"])
        public = aws.ec2.Subnet(f"{name}-public", vpc_id=vpc.id, cidr_block=public_cidr, availability_zone=zone,
                                map_public_ip_on_launch=False, tags={**tags, "Name": f"{spec.cluster_name}-public"},
                                opts=pinned)
        public_routes = aws.ec2.RouteTable(f"{name}-public-routes", vpc_id=vpc.id, tags=tags, routes=[
            aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)], opts=child)
        self.egress_ready.append(aws.ec2.RouteTableAssociation(f"{name}-public-subnet-routes", subnet_id=public.id,
                                                               route_table_id=public_routes.id, opts=child))
        if net.public_addresses:
            # Servers get public addresses (SSH from adminCidr only): no NAT needed.
            self._server_routes = pulumi.Output.all(public_routes.id)
            self.subnet_id = public.id
            self.availability_zone = public.availability_zone
        else:
            nat_ip = aws.ec2.Eip(f"{name}-nat-ip", domain="vpc", tags=tags, opts=child)
            nat = aws.ec2.NatGateway(f"{name}-nat", subnet_id=public.id, allocation_id=nat_ip.id, tags=tags,
                                     opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]))
            private = aws.ec2.Subnet(f"{name}-private", vpc_id=vpc.id, cidr_block=private_cidr,
                                     availability_zone=zone, tags={**tags, "Name": f"{spec.cluster_name}-private"},
                                     opts=pinned)
            private_routes = aws.ec2.RouteTable(f"{name}-private-routes", vpc_id=vpc.id, tags=tags, routes=[
                aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)], opts=child)
            self.egress_ready.append(aws.ec2.RouteTableAssociation(
                f"{name}-private-subnet-routes", subnet_id=private.id, route_table_id=private_routes.id,
                opts=child))
            self._server_routes = pulumi.Output.all(private_routes.id)
            self.subnet_id = private.id
            self.availability_zone = private.availability_zone
        self.vpc_id = vpc.id

    def server_route_table_ids(self) -> pulumi.Output[list[str]]:
        """The route table(s) the servers' subnet uses: the one this stack made, or, for an
        existing subnet, the table associated with it, else the VPC's main table (a subnet
        without an association of its own uses the main one: VPC User Guide, "Subnet route
        tables", https://docs.aws.amazon.com/vpc/latest/userguide/subnet-route-tables.html)."""
        if self._server_routes is not None:
            return self._server_routes
        net, invoke = self._spec_network, pulumi.InvokeOutputOptions(parent=self)
        explicit = aws.ec2.get_route_tables_output(vpc_id=net.vpc_id, filters=[
            aws.ec2.GetRouteTablesFilterArgs(name="association.subnet-id", values=[net.subnet_id or ""])], opts=invoke)
        main = aws.ec2.get_route_tables_output(vpc_id=net.vpc_id, filters=[
            aws.ec2.GetRouteTablesFilterArgs(name="association.main", values=["true"])], opts=invoke)
        return pulumi.Output.all(explicit.ids, main.ids).apply(lambda v: list(v[0] or []) or list(v[1] or []))

    def _security_groups(self, name: str, spec: ClusterSpec, tags: dict,
                         child: pulumi.ResourceOptions) -> dict[str, pulumi.Output[str]]:
        # Rules are resources of their own, never inline: the provider warns that
        # mixing the two makes them overwrite each other.
        groups = {
            kind: aws.ec2.SecurityGroup(
                f"{name}-{kind}", vpc_id=self.vpc_id, description=f"Pegasus {spec.cluster_name} {kind} servers",
                tags={**tags, "Name": f"{spec.cluster_name}-{kind}"}, opts=child)
            for kind in GROUPS
        }
        # A server depends on its group's rules: created before it, deleted after
        # it. Otherwise destroy removes the SSH rule side by side with the remote
        # commands that stop the roles, which then cannot connect.
        self.group_rules = {kind: [] for kind in GROUPS}
        for kind in GROUPS:  # servers install packages and reach each other
            self.group_rules[kind].append(aws.vpc.SecurityGroupEgressRule(
                f"{name}-{kind}-egress", security_group_id=groups[kind].id, cidr_ipv4="0.0.0.0/0",
                ip_protocol="-1", description="all outbound traffic", opts=child))
        for target, protocol, port, sources in PEER_RULES:
            for source in sources:
                # TCP rules keep their first names, so existing stacks do not replace them.
                suffix = "" if protocol == "tcp" else f"-{protocol}"
                self.group_rules[target].append(aws.vpc.SecurityGroupIngressRule(
                    f"{name}-{target}-{port}{suffix}-from-{source}", security_group_id=groups[target].id,
                    referenced_security_group_id=groups[source].id, ip_protocol=protocol, from_port=port,
                    to_port=port, description=f"{source} to {target} on {port}{suffix.replace('-', '/')}", opts=child))
        ssh_from = spec.network.admin_cidr or self._vpc_cidr_output
        for kind in GROUPS:
            self.group_rules[kind].append(aws.vpc.SecurityGroupIngressRule(
                f"{name}-{kind}-ssh", security_group_id=groups[kind].id, cidr_ipv4=ssh_from, ip_protocol="tcp",
                from_port=22, to_port=22, description="SSH for the deployment's remote commands", opts=child))
        if spec.zookeeper.provisioned and spec.zookeeper.access == "direct":
            # The path guard runs where `pulumi up` runs and reaches ZooKeeper directly.
            self.group_rules["zookeeper"].append(aws.vpc.SecurityGroupIngressRule(
                f"{name}-zookeeper-client-from-operators", security_group_id=groups["zookeeper"].id,
                cidr_ipv4=ssh_from, ip_protocol="tcp", from_port=hl.ZOOKEEPER_CLIENT_PORT,
                to_port=hl.ZOOKEEPER_CLIENT_PORT, description="the ZooKeeper path guard of pulumi up",
                opts=child))
        # Prometheus scrapes (2.4/2.5 with perf_counter_sink = prometheus) come
        # from the operators' range only, like SSH.
        for kind, roles in group_roles(spec).items():
            for port in sorted({p for p in (files.metrics_port(spec, role) for role in roles) if p}):
                self.group_rules[kind].append(aws.vpc.SecurityGroupIngressRule(
                    f"{name}-{kind}-metrics-{port}", security_group_id=groups[kind].id, cidr_ipv4=ssh_from,
                    ip_protocol="tcp", from_port=port, to_port=port,
                    description="Prometheus metrics for the operators", opts=child))
        return {kind: group.id for kind, group in groups.items()}


def subnet_ranges(vpc_cidr: str) -> tuple[str, str]:
    """(private, public): the first two /24s of a /23 or larger range, the two halves of a /24."""
    vpc_range = ipaddress.IPv4Network(vpc_cidr)
    private, public = list(vpc_range.subnets(new_prefix=max(24, vpc_range.prefixlen + 1)))[:2]
    return str(private), str(public)


def group_roles(spec: ClusterSpec) -> dict[str, list[str]]:
    """The Pegasus roles whose servers sit in each security group."""
    colocated = ["collector"] if spec.collector.enabled and spec.collector.colocate else []
    return {"meta": ["meta", *colocated], "replica": ["replica"],
            "collector": ["collector"] if spec.collector.own_host else []}
