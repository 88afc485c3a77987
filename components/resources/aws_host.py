"""One server on AWS: instance, encrypted EBS data volumes, optional slog volume and extra NIC.

It gives the rest of the program a `HostHandle` (host_handle.py), as your own
servers do (own_host.py). The instance is launched with the SSH host key the
stack made for it, in its user data (host_keys.py says why).
"""

from __future__ import annotations

import string

import pulumi
import pulumi_aws as aws

from components.operations.host_key_pair import HostKeyPair
from components.operations.host_key_pin import HostKeyPinArgs
from components.render.cloud_config import host_key_user_data
from components.spec.host_key import fingerprint
from components.resources.host_handle import ANSWERED_DIALS, BOOT_DIALS, HostHandle
from components.resources.host_keys import HOST_KEY_TAG, HostKeys, aws_advice, launched_key
from components.resources.network import Network
from components.resources.resource_names import ResourceNames
from components.spec.model import ClusterSpec, DiskSpec
from components.spec.topology import HostPlan

EBS_BY_ID = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_"
# /dev/sdf.. /dev/sdv: the device names AWS recommends for EBS data volumes.
DEVICE_LETTERS = string.ascii_lowercase[5:22]
ROOT_VOLUME_GIB = 40


def ebs_stable_path(volume_id: str) -> str:
    """The udev path of an EBS volume on a Nitro instance (NVMe names are not stable)."""
    return EBS_BY_ID + volume_id.replace("-", "")


def refuse_instance_type_change(plan: HostPlan, running: str | None) -> None:
    """An existing server keeps its instance type: the provider would change every
    server of the role at once, ZooKeeper and all MetaServers included."""
    if running and running != plan.instance_type:
        key = plan.kind  # the spec's key of the role: zookeeper, meta, replica, collector
        raise pulumi.RunError(
            f"{key}.instanceType: {plan.name} runs {running}, the stack asks for {plan.instance_type}; "
            "changing it would stop and start every such server at once. Change one server at a time "
            "instead: stop it (aws ec2 stop-instances), change its type (aws ec2 modify-instance-attribute "
            "--instance-type), start it, wait until `pulumi up` reports the cluster healthy, then the next; "
            f"when all run {plan.instance_type}, the stack may ask for it. Or set {key}.instanceType back "
            f"to {running}.")


class AwsHost(pulumi.ComponentResource):
    def __init__(self, plan: HostPlan, spec: ClusterSpec, network: Network, ami_id: pulumi.Input[str],
                 key_name: pulumi.Input[str], names: ResourceNames, keys: HostKeys,
                 instance_profile: pulumi.Input[str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pegasus:cluster:Host", names(plan.name), None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=names.aliases(plan.name))))
        self._names = names
        self.tags = {"pegasus:cluster": spec.cluster_name, "pegasus:stack": spec.stack,
                     "pegasus:role": plan.kind, "pegasus:node": plan.name}
        groups = [network.security_groups[plan.kind]]
        host_key = HostKeyPair(names(f"{plan.name}-host-key-pair"), f"{spec.cluster_name}-{plan.name}",
                               opts=pulumi.ResourceOptions(parent=self))
        user_data: pulumi.Output[str] = pulumi.Output.secret(pulumi.Output.all(
            host_key.private_key, host_key.public_key).apply(lambda k: host_key_user_data(k[0], k[1])))
        instance = aws.ec2.Instance(
            names(plan.name), ami=ami_id, instance_type=plan.instance_type, subnet_id=network.subnet_id,
            availability_zone=network.availability_zone, vpc_security_group_ids=groups, key_name=key_name,
            associate_public_ip_address=spec.network.public_addresses,
            # The role the server reads the package store with (package_store.py). Adding,
            # changing or removing it on a running instance is an in-place update, not a
            # replacement: the provider calls EC2's AssociateIamInstanceProfile /
            # ReplaceIamInstanceProfileAssociation (https://docs.aws.amazon.com/AWSEC2/latest/
            # APIReference/API_ReplaceIamInstanceProfileAssociation.html: "without having to
            # disassociate the existing IAM instance profile first"); terraform-provider-aws
            # made iam_instance_profile updatable in hashicorp/terraform#11862 (2017), which
            # pulumi-aws bridges. An existing stack keeps its servers.
            iam_instance_profile=instance_profile,
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(http_tokens="required", http_endpoint="enabled",
                                                                 http_put_response_hop_limit=1),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(encrypted=True, volume_type="gp3",
                                                                  volume_size=ROOT_VOLUME_GIB),
            # The key's fingerprint, set at launch and never after: whether this instance got it.
            tags={**self.tags, "Name": f"{spec.cluster_name}-{plan.name}",
                  HOST_KEY_TAG: host_key.public_key.apply(fingerprint)},
            # Its SSH host key, installed by cloud-init before sshd starts (render/cloud_config.py).
            user_data=user_data,
            # A newer AMI (the lookup moves monthly) or a rotated key pair (read at
            # first boot only) must never replace a running server and its data.
            # A new instance type would be applied in place to every server of the
            # role at once (stop, modify, start): refused below instead. New user
            # data would stop and start the instance: an instance launched before the
            # stack gave host keys keeps its own (its key is recorded, host_keys.py),
            # and no host-key tag, which says so. A replaced ZooKeeper server goes
            # before its replacement starts with its server id: ZooKeeper assumes one
            # server per id (the other two keep the quorum).
            opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(plan.name),
                                        ignore_changes=["ami", "key_name", "instance_type", "user_data",
                                                        f'tags["{HOST_KEY_TAG}"]'],
                                        delete_before_replace=plan.kind == "zookeeper",
                                        depends_on=[*network.egress_ready, *network.group_rules[plan.kind]]))
        instance.instance_type.apply(lambda running: refuse_instance_type_change(plan, running))
        ssh_address = instance.public_ip if spec.network.public_addresses else instance.private_ip
        # The key it was launched with, or "" for an instance launched before the stack gave keys.
        launched = pulumi.Output.all(instance.tags, host_key.public_key).apply(lambda v: launched_key(v[0], v[1]))
        pin, known_host = keys.pin(plan.name, HostKeyPinArgs(
            name=plan.name, where=plan.name, identity=instance.id, address=ssh_address, launched=launched,
            may_record=True, access=keys.record_access()),
            accept=lambda pin: pulumi.Output.all(instance.urn, pin.urn, launched, instance.id).apply(
                lambda v: aws_advice(v[0], v[1], bool(v[2]), v[3])), parent=self)
        ready: list[pulumi.Resource] = [instance]
        letters = iter(DEVICE_LETTERS)
        data_devices = []
        if plan.data_disks:
            for i in range(plan.data_disks.count):
                data_devices.append(self._volume(f"{plan.name}-data{i + 1}", f"data{i + 1}", plan.data_disks,
                                                 instance, next(letters), spec, ready))
        slog_device = None
        if plan.slog_disk:
            slog_device = self._volume(f"{plan.name}-slog", "slog", plan.slog_disk, instance, next(letters),
                                       spec, ready)
        cluster_ip, nic_mac = instance.private_ip, None
        if plan.extra_nic:
            nic_name = f"{plan.name}-nic1"
            nic = aws.ec2.NetworkInterface(names(nic_name), subnet_id=network.subnet_id,
                                           security_groups=groups, tags={**self.tags, "pegasus:nic": "1"},
                                           opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(nic_name)))
            ready.append(aws.ec2.NetworkInterfaceAttachment(
                names(f"{nic_name}-attach"), instance_id=instance.id, network_interface_id=nic.id, device_index=1,
                opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(f"{nic_name}-attach"),
                                            delete_before_replace=True)))
            cluster_ip, nic_mac = nic.private_ip, nic.mac_address
        self.handle = HostHandle(name=plan.name, names=names,
                                 connection=keys.connection(ssh_address, pin.key, ANSWERED_DIALS),
                                 first_connection=keys.connection(ssh_address, pin.key, BOOT_DIALS),
                                 identity=instance.id, cluster_ip=cluster_ip, ssh_address=ssh_address,
                                 known_host=known_host, data_devices=data_devices, slog_device=slog_device,
                                 nic_mac=nic_mac, ready=ready,
                                 addresses=pulumi.Output.all(instance.private_ip, cluster_ip).apply(
                                     lambda ips: sorted(set(ips))))
        self.register_outputs({"instanceId": instance.id, "privateIp": instance.private_ip,
                               "clusterIp": cluster_ip})

    def _volume(self, plan_name: str, disk: str, disk_spec: DiskSpec, instance: aws.ec2.Instance, letter: str,
                spec: ClusterSpec, ready: list) -> pulumi.Output[str]:
        """`plan_name`: the volume's name from the host plan (`replica-0-data1`), which its Name tag keeps."""
        names = self._names
        # With retainData the volume outlives `pulumi destroy`; its attachment does not.
        volume = aws.ebs.Volume(
            names(plan_name), availability_zone=instance.availability_zone, size=disk_spec.size_gib,
            type=disk_spec.type, iops=disk_spec.iops, throughput=disk_spec.throughput, encrypted=True,
            tags={**self.tags, "pegasus:disk": disk, "Name": f"{spec.cluster_name}-{plan_name}"},
            opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(plan_name),
                                        retain_on_delete=spec.retain_data))
        # A volume attaches to one instance at a time: detach before attaching anew.
        # Detaching a volume that a running server has mounted loses writes in
        # flight: the instance is stopped first (the provider's documented option).
        ready.append(aws.ec2.VolumeAttachment(
            names(f"{plan_name}-attach"), instance_id=instance.id, volume_id=volume.id, device_name=f"/dev/sd{letter}",
            stop_instance_before_detaching=True,
            opts=pulumi.ResourceOptions(parent=self, aliases=names.aliases(f"{plan_name}-attach"),
                                        delete_before_replace=True)))
        return volume.id.apply(ebs_stable_path)
