"""A small Pulumi program for testing the mock cloud's AWS side: one instance
with a data volume and a second network interface, checked by a remote command.

Config (namespace `demo`): publicKey, privateKey, volumeSize.
"""

import pulumi
import pulumi_aws as aws
import pulumi_command as command

config = pulumi.Config("demo")

ami = aws.ec2.get_ami(most_recent=True, owners=["136693071363"],
                      filters=[{"name": "name", "values": ["debian-12-amd64-*"]}])
zones = aws.get_availability_zones(state="available")
vpc = aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/16")
subnet = aws.ec2.Subnet("subnet", vpc_id=vpc.id, cidr_block="10.0.1.0/24",
                        availability_zone=zones.names[0])
group = aws.ec2.SecurityGroup("group", vpc_id=vpc.id)
# The local cloud enforces security groups: SSH from the host's bridge address.
aws.vpc.SecurityGroupIngressRule("group-ssh", security_group_id=group.id, ip_protocol="tcp",
                                 from_port=22, to_port=22, cidr_ipv4="10.0.0.0/8")
key = aws.ec2.KeyPair("key", public_key=config.require("publicKey"))
server = aws.ec2.Instance(
    "server-0", ami=ami.id, instance_type="t3.small", subnet_id=subnet.id,
    vpc_security_group_ids=[group.id], key_name=key.key_name,
    metadata_options={"http_tokens": "required"},
)
volume = aws.ebs.Volume("data-0", availability_zone=server.availability_zone,
                        size=int(config.get("volumeSize") or 2), type="gp3", encrypted=True)
attachment = aws.ec2.VolumeAttachment("data-0-attachment", instance_id=server.id,
                                      volume_id=volume.id, device_name="/dev/sdf")
nic = aws.ec2.NetworkInterface("nic-0", subnet_id=subnet.id, security_groups=[group.id])
nic_attachment = aws.ec2.NetworkInterfaceAttachment(
    "nic-0-attachment", instance_id=server.id, network_interface_id=nic.id, device_index=1)

disk_path = volume.id.apply(
    lambda vid: "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_" + vid.replace("-", ""))
check = command.remote.Command(
    "check",
    connection=command.remote.ConnectionArgs(host=server.private_ip, user="root",
                                             private_key=config.require_secret("privateKey")),
    create=pulumi.Output.all(disk_path, nic.mac_address).apply(
        lambda args: f"test -b {args[0]} && ip -o link | grep -c {args[1]}"),
    opts=pulumi.ResourceOptions(depends_on=[attachment, nic_attachment]),
)

pulumi.export("instanceId", server.id)
pulumi.export("privateIp", server.private_ip)
pulumi.export("nicIp", nic.private_ip)
pulumi.export("nicMac", nic.mac_address)
pulumi.export("diskPath", disk_path)
pulumi.export("check", check.stdout)
