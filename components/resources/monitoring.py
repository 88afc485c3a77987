"""The cluster's monitoring: node_exporter on every host, and one monitoring host with
Prometheus, Alertmanager, the exporter for ZooKeeper and 2.6 JSON metrics, and (unless turned off) Grafana.

Resources, all named under the cluster's:
- `<cluster>-<host>-node-exporter` on every host (ZooKeeper's too);
- on AWS with a host of its own: the instance `<cluster>-monitoring-0`, its encrypted
  volume `<cluster>-monitoring-0-data` (Prometheus's storage, mounted by
  `<cluster>-monitoring-0-disks`) and its security group `<cluster>-monitoring`
  (monitoring_network.py);
- with your own servers and `servers.monitoring`: `<cluster>-monitoring-0-address`, as for
  every listed server (own_host.py);
- `<cluster>-monitoring-install`: packages, configs, rules, the exporter and units on the
  monitoring host;
- `<cluster>-monitoring-targets`: the file_sd files, rewritten when servers come or go
  (Prometheus follows them without a restart);
- `<cluster>-grafana`: Grafana from its apt repository, provisioned with the dashboards.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components.render import monitoring_files as mf
from components.render import monitoring_layout as ml
from components.render.server_files import cleanup_disks_script, prepare_disks_script
from components.operations.host_key_pair import HostKeyPair
from components.operations.host_key_pin import HostKeyPinArgs
from components.render.cloud_config import host_key_user_data
from components.resources.aws_host import ROOT_VOLUME_GIB, ebs_stable_path
from components.resources.host_handle import ANSWERED_DIALS, BOOT_DIALS, HostHandle
from components.resources.host_keys import HOST_KEY_TAG, HostKeys, aws_advice, launched_key
from components.resources.monitoring_network import ui_cidr
from components.resources.remote_command import remote_command
from components.spec.host_key import fingerprint
from components.spec.model import ClusterSpec

# The monitoring host's own instance, named as the cluster's hosts are (kind-index).
MONITORING_HOST = "monitoring-0"
# Prometheus, Alertmanager and Grafana as an operator opens them through the SSH tunnel.
TUNNEL_PORTS = (ml.PROMETHEUS_PORT, ml.ALERTMANAGER_PORT, ml.GRAFANA_PORT)
EC2_TRUST_POLICY = pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


class MonitoringHost(pulumi.ComponentResource):
    """The monitoring host's own instance on AWS, in the cluster's subnet, with an
    encrypted volume for Prometheus's storage mounted at /var/lib/pegasus-monitoring."""

    handle: HostHandle
    ready: list[pulumi.Resource]

    def __init__(self, name: str, spec: ClusterSpec, subnet_id: pulumi.Input[str], zone: pulumi.Input[str],
                 group_id: pulumi.Input[str], wait_for: list[pulumi.Resource], ami_id: pulumi.Input[str],
                 key_name: pulumi.Input[str], names, keys: HostKeys,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        """`wait_for`: what the instance must not start before (its group's rules, the route out)."""
        super().__init__("pegasus:cluster:MonitoringHost", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        m = spec.monitoring
        tags = {"pegasus:cluster": spec.cluster_name, "pegasus:stack": spec.stack, "pegasus:role": "monitoring",
                "pegasus:node": MONITORING_HOST}
        profile = None
        if m.sns_topic_arn:
            # Alertmanager signs its SNS requests with this role, allowed to publish to that topic only.
            role = aws.iam.Role(f"{name}-role", assume_role_policy=EC2_TRUST_POLICY, tags=tags, opts=child)
            aws.iam.RolePolicy(f"{name}-sns-publish", role=role.id, policy=pulumi.Output.json_dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sns:Publish",
                                                        "Resource": m.sns_topic_arn}]}), opts=child)
            profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, tags=tags, opts=child).name
        # Launched with its SSH host key, as every server of the cluster (host_keys.py says why).
        host_key = HostKeyPair(f"{name}-host-key-pair", f"{spec.cluster_name}-{MONITORING_HOST}", opts=child)
        user_data: pulumi.Output[str] = pulumi.Output.secret(pulumi.Output.all(
            host_key.private_key, host_key.public_key).apply(lambda k: host_key_user_data(k[0], k[1])))
        instance = aws.ec2.Instance(
            name, ami=ami_id, instance_type=m.instance_type, subnet_id=subnet_id, availability_zone=zone,
            vpc_security_group_ids=[group_id], key_name=key_name, iam_instance_profile=profile,
            associate_public_ip_address=spec.network.public_addresses,
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(http_tokens="required", http_endpoint="enabled",
                                                                 http_put_response_hop_limit=1),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(encrypted=True, volume_type="gp3",
                                                                  volume_size=ROOT_VOLUME_GIB),
            tags={**tags, "Name": f"{spec.cluster_name}-monitoring",
                  HOST_KEY_TAG: host_key.public_key.apply(fingerprint)},
            user_data=user_data,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["ami", "key_name", "user_data",
                                                                     f'tags["{HOST_KEY_TAG}"]'],
                                        depends_on=wait_for))
        volume = aws.ebs.Volume(f"{name}-data", availability_zone=instance.availability_zone, size=m.data_disk_gib,
                                type="gp3", encrypted=True,
                                tags={**tags, "pegasus:disk": "monitoring",
                                      "Name": f"{spec.cluster_name}-monitoring-data"},
                                opts=child)
        attachment = aws.ec2.VolumeAttachment(
            f"{name}-data-attach", instance_id=instance.id, volume_id=volume.id, device_name="/dev/sdf",
            stop_instance_before_detaching=True, opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True))
        address = instance.public_ip if spec.network.public_addresses else instance.private_ip
        launched = pulumi.Output.all(instance.tags, host_key.public_key).apply(lambda v: launched_key(v[0], v[1]))
        pin, known_host = keys.pin(MONITORING_HOST, HostKeyPinArgs(
            name=MONITORING_HOST, where=MONITORING_HOST, identity=instance.id, address=address, launched=launched,
            may_record=True, access=keys.record_access()),
            accept=lambda pin: pulumi.Output.all(instance.urn, pin.urn, launched, instance.id).apply(
                lambda v: aws_advice(v[0], v[1], bool(v[2]), v[3])), parent=self)
        self.handle = HostHandle(name=MONITORING_HOST, names=names,
                                 connection=keys.connection(address, pin.key, ANSWERED_DIALS),
                                 first_connection=keys.connection(address, pin.key, BOOT_DIALS), identity=instance.id,
                                 cluster_ip=instance.private_ip, ssh_address=address, known_host=known_host,
                                 ready=[instance, attachment])
        disks = volume.id.apply(lambda vid: [{"device": ebs_stable_path(vid), "mount_point": ml.DATA_MOUNT,
                                              "label": "pg-monitoring"}])
        # The first command on the new machine: it dials while the machine boots.
        self.ready = [remote_command(f"{name}-disks", self.handle.first_connection,
                                     create=disks.apply(prepare_disks_script),
                                     delete=disks.apply(cleanup_disks_script),
                                     opts=pulumi.ResourceOptions(parent=self, depends_on=[instance, attachment]))]
        self.register_outputs({"instanceId": instance.id, "privateIp": instance.private_ip})


class Monitoring(pulumi.ComponentResource):
    """`hosts`: every host of the cluster by plan name, with its kind and what its first
    commands wait for; `host`: the monitoring host (its own, or the first MetaServer's)."""

    def __init__(self, name: str, spec: ClusterSpec,
                 hosts: Mapping[str, tuple[str, HostHandle, Sequence[pulumi.Resource]]], host: HostHandle,
                 host_ready: Sequence[pulumi.Resource],
                 pegasus: dict[str, list[str]], zookeeper_servers: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        """`pegasus`: role -> host names running it; `zookeeper_servers`: the ensemble's ip:port list."""
        super().__init__("pegasus:cluster:Monitoring", name, None, opts)
        cluster = name.removesuffix("-monitoring")
        exporters = {}
        for host_name, (_, handle, ready) in hosts.items():
            exporters[host_name] = remote_command(
                handle.names(f"{host_name}-node-exporter"), handle.connection,
                create=mf.install_node_exporter_script(), delete=mf.remove_node_exporter_script(),
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(ready)))
        # Receivers' URLs and passwords live in Alertmanager's config: the script is secret.
        # After the host's own node_exporter: two package installs on one host do not race.
        install = remote_command(
            f"{cluster}-monitoring-install", host.connection,
            create=pulumi.Output.secret(mf.install_monitoring_script(spec)), delete=mf.remove_monitoring_script(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*host_ready, exporters[host.name]]))
        addresses = pulumi.Output.all(*[handle.cluster_ip for _, handle, _ in hosts.values()])
        kinds = {host_name: kind for host_name, (kind, _, _) in hosts.items()}
        names = list(hosts)
        # An ensemble the stack brings (zookeeper.servers) is not this cluster's to watch:
        # its four-letter words may not be allowed, nor its port open to the monitoring.
        zookeeper_servers = zookeeper_servers if spec.zookeeper.provisioned else ""

        def targets(values: list) -> str:
            ips, zk = dict(zip(names, values[0])), values[1]
            files = mf.targets_files(
                spec, {n: (kinds[n], ip) for n, ip in ips.items()},
                {role: [(n, ips[n]) for n in members] for role, members in pegasus.items()},
                [s for s in zk.split(",") if s])
            return mf.write_targets_script(files)

        remote_command(
            f"{cluster}-monitoring-targets", host.connection,
            create=pulumi.Output.all(addresses, zookeeper_servers).apply(targets),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[install]))
        if spec.monitoring.grafana:
            script = mf.install_grafana_script(spec)
            remote_command(
                f"{cluster}-grafana", host.connection,
                create=pulumi.Output.secret(script) if spec.monitoring.grafana_admin_password else script,
                delete=mf.remove_grafana_script(),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[install]))
        self.outputs = host.ssh_address.apply(lambda address: monitoring_outputs(spec, host.name, address))
        self.register_outputs({"monitoring": self.outputs})


def monitoring_outputs(spec: ClusterSpec, host: str, address: str) -> dict[str, str]:
    """How an operator opens Prometheus, Alertmanager and Grafana: URLs where the
    security groups let `network.adminCidr` in, and always the SSH tunnel; which
    host runs them and how to log in to it (`make status` asks Alertmanager there)."""
    bastion = spec.ssh.bastion
    jump = f"-J {bastion.user}@{bastion.host}:{bastion.port} " if bastion else ""
    ports = [p for p in TUNNEL_PORTS if p != ml.GRAFANA_PORT or spec.monitoring.grafana]
    forwards = " ".join(f"-L {p}:127.0.0.1:{p}" for p in ports)
    out = {"host": host, "ssh": f"ssh {jump}{spec.ssh.user}@{address}",
           "tunnel": f"ssh -N {jump}{forwards} {spec.ssh.user}@{address}"}
    direct = ui_cidr(spec) is not None
    base = f"http://{address}" if direct else "http://127.0.0.1"
    out["prometheus"] = f"{base}:{ml.PROMETHEUS_PORT}"
    out["alertmanager"] = f"{base}:{ml.ALERTMANAGER_PORT}"
    if spec.monitoring.grafana:
        out["grafana"] = f"{base}:{ml.GRAFANA_PORT}"
        read = f"ssh {jump}{spec.ssh.user}@{address} sudo cat {ml.GRAFANA_CONF_DIR}/admin-password"
        given = spec.monitoring.grafana_admin_password
        out["grafanaPassword"] = "the stack's monitoring.grafana.adminPassword" if given else read
    return out

