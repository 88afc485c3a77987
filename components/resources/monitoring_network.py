"""Who may reach the monitoring, and what the monitoring may reach, on AWS.

Kept apart from the cluster's own rules (network.py) so the two evolve alone:
- the monitoring group (its own host's, or the MetaServers' when monitoring
  runs on the first MetaServer's host) reaches node_exporter on every group,
  each Pegasus role's metrics port (2.4/2.5: the prometheus_port the program
  gives it; 2.6: its RPC port, where /metrics is) and ZooKeeper's client port
  (the four-letter-word probes);
- Prometheus, Alertmanager and Grafana accept `network.adminCidr` only; with a
  bastion and no admin range, or an admin range that is the whole internet
  (`allowWorldSsh`, which allows SSH and nothing else), nobody: an `ssh -L`
  (through the bastion) reaches them from the monitoring host itself.
Nothing here opens anything to the world.
"""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_aws as aws

from components.render import monitoring_layout as ml
from components.render.host_layout import ZOOKEEPER_CLIENT_PORT
from components.render.monitoring_files import pegasus_metrics_ports
from components.resources.network import PEER_RULES
from components.spec.model import ClusterSpec

GROUP = "monitoring"


def ui_cidr(spec: ClusterSpec) -> str | None:
    """The range that reaches the web interfaces directly, if any (AWS only: your own
    servers' monitoring listens on the loopback address)."""
    admin = spec.network.admin_cidr
    if spec.servers or not admin or ipaddress.IPv4Network(admin).prefixlen == 0:
        return None
    return admin


def ui_ports(spec: ClusterSpec) -> dict[str, int]:
    """The web interfaces an operator opens: Prometheus, Alertmanager and (when on) Grafana."""
    ports = {"prometheus": ml.PROMETHEUS_PORT, "alertmanager": ml.ALERTMANAGER_PORT}
    if spec.monitoring.grafana:
        ports["grafana"] = ml.GRAFANA_PORT
    return ports


def scraped_ports(spec: ClusterSpec, groups: dict[str, list[str]]) -> dict[str, list[int]]:
    """Group -> ports the monitoring reaches there. `groups`: group -> Pegasus roles its servers run."""
    metrics = pegasus_metrics_ports(spec)
    ports: dict[str, list[int]] = {}
    for group, roles in groups.items():
        ports[group] = sorted({ml.NODE_EXPORTER_PORT, *(metrics[role] for role in roles)})
    return ports


def monitoring_rules(name: str, spec: ClusterSpec, vpc_id: pulumi.Input[str], groups: dict[str, pulumi.Input[str]],
                     group_roles: dict[str, list[str]], ssh_from: pulumi.Input[str],
                     opts: pulumi.ResourceOptions) -> tuple[pulumi.Input[str], list[pulumi.Resource]]:
    """(the monitoring group's id, the rules the monitoring host lives within).

    `groups`: the cluster's groups by kind (zookeeper, meta, replica, collector);
    `group_roles`: the Pegasus roles in each; `ssh_from`: who may SSH in (as network.py)."""
    tags = {"pegasus:cluster": spec.cluster_name, "pegasus:stack": spec.stack}
    own_rules: list[pulumi.Resource] = []
    if spec.monitoring.own_host:
        group = aws.ec2.SecurityGroup(
            f"{name}-{GROUP}", vpc_id=vpc_id, description=f"Pegasus {spec.cluster_name} monitoring host",
            tags={**tags, "Name": f"{spec.cluster_name}-{GROUP}"}, opts=opts)
        source: pulumi.Input[str] = group.id
        own_rules.append(aws.vpc.SecurityGroupEgressRule(
            f"{name}-{GROUP}-egress", security_group_id=group.id, cidr_ipv4="0.0.0.0/0", ip_protocol="-1",
            description="scrapes, probes, packages and receivers", opts=opts))
        own_rules.append(aws.vpc.SecurityGroupIngressRule(
            f"{name}-{GROUP}-ssh", security_group_id=group.id, cidr_ipv4=ssh_from, ip_protocol="tcp",
            from_port=22, to_port=22, description="SSH for the deployment's remote commands", opts=opts))
        # The monitoring host's own node_exporter, for its own Prometheus.
        own_rules.append(_from_group(f"{name}-{GROUP}-{ml.NODE_EXPORTER_PORT}-from-{GROUP}", group.id, group.id,
                                     ml.NODE_EXPORTER_PORT, opts))
        ui_group: pulumi.Input[str] = group.id
    else:
        source = groups["meta"]  # monitoring runs on the first MetaServer's host
        ui_group = groups["meta"]
    admin = ui_cidr(spec)
    if admin:
        for what, port in ui_ports(spec).items():
            own_rules.append(aws.vpc.SecurityGroupIngressRule(
                f"{name}-{GROUP}-{what}", security_group_id=ui_group, cidr_ipv4=admin,
                ip_protocol="tcp", from_port=port, to_port=port,
                description=f"{what} for the operators (network.adminCidr)", opts=opts))
    wanted = scraped_ports(spec, group_roles)
    if spec.zookeeper.provisioned:
        wanted["zookeeper"] = sorted({*wanted.get("zookeeper", []), ZOOKEEPER_CLIENT_PORT})
    # On the MetaServer's host the source is the MetaServers' group: what the
    # cluster's rules already let it reach must not be added twice (EC2 refuses
    # a duplicate rule).
    already = set() if spec.monitoring.own_host else {
        (target, port) for target, protocol, port, sources in PEER_RULES if protocol == "tcp" and "meta" in sources}
    for kind, ports in wanted.items():
        for port in ports:
            if (kind, port) not in already:
                _from_group(f"{name}-{kind}-{port}-from-{GROUP}", groups[kind], source, port, opts)
    return source, own_rules


def _from_group(name: str, target: pulumi.Input[str], source: pulumi.Input[str], port: int,
                opts: pulumi.ResourceOptions) -> aws.vpc.SecurityGroupIngressRule:
    return aws.vpc.SecurityGroupIngressRule(
        name, security_group_id=target, referenced_security_group_id=source, ip_protocol="tcp",
        from_port=port, to_port=port, description=f"the cluster's monitoring scrapes port {port}", opts=opts)
