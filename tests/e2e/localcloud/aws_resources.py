"""AWS resources and invokes, played by the local cloud.

Instances are machines, volumes are sparse files on loop devices, network
interfaces are veths; buckets, objects, roles and instance profiles live in the
region's S3 and IAM (store_resources.py). Everything else under `aws:` (VPC, subnets, security
groups, routes, gateways...) gets a plausible id and outputs; security groups
and the VPC's DNS attributes take effect through network_policy.py (each
instance's firewall, the private DNS names of private_dns.py).
Changes: what the AWS provider updates in place (tags, instance type, security
groups, volume size/type/iops...) is accepted without effect; what forces a new
resource in AWS (an instance's AMI, subnet, key, private IP; a volume's zone or
encryption; any attachment input; an ENI's subnet) replaces it.
An instance's user data is handed to it at launch (cloud-init installs the
host keys it carries before sshd starts, tools/localcloud/cloud_init.py) and
served by its metadata service. Changed user data stops and starts the
instance, as pulumi-aws documents for `userData` ("Updates to this field will
trigger a stop/start of the EC2 instance by default"); cloud-init does not
run its per-instance modules again, so the host keys stay.
"""

from __future__ import annotations

import base64
import re
import zlib

from tools.localcloud.machines import random_mac
from tools.localcloud.private_dns import REGION, private_dns_name

from .resource_type import REPLACE, SAME, UPDATE, ResourceType, hex_id
from .store_resources import RESOURCE_TYPES as STORE_RESOURCE_TYPES

ZONE = "local-1a"
ACCOUNT = "000000000000"

_ID_PREFIXES = {
    "vpc": "vpc", "subnet": "subnet", "securityGroup": "sg", "securityGroupRule": "sgr",
    "vpcSecurityGroupIngressRule": "sgr", "vpcSecurityGroupEgressRule": "sgr",
    "routeTable": "rtb", "route": "r", "routeTableAssociation": "rtbassoc",
    "internetGateway": "igw", "natGateway": "nat", "eip": "eipalloc",
    "placementGroup": "pg", "launchTemplate": "lt",
}


def _member(token: str) -> str:
    """aws:ec2/securityGroup:SecurityGroup -> securityGroup"""
    return token.split(":")[1].split("/")[-1]


def _changed(old: dict, new: dict) -> set[str]:
    return {k for k in set(old) | set(new) if old.get(k) != new.get(k)}


class AwsGeneric(ResourceType):
    def __init__(self, token: str):
        self.token = token

    def create(self, mocks, name, raw, inputs):
        prefix = _ID_PREFIXES.get(_member(self.token))
        resource_id = hex_id(prefix) if prefix else f"{name}-{hex_id('id', 8)[3:]}"
        extras = {"id": resource_id, "arn": f"arn:aws:local:{REGION}:{ACCOUNT}:{_member(self.token)}/{resource_id}"}
        if _member(self.token) == "subnet":
            extras["availabilityZone"] = inputs.get("availabilityZone") or ZONE
        if _member(self.token) == "eip":
            extras["publicIp"] = "198.51.100.10"
            extras["allocationId"] = resource_id
        return resource_id, extras


class SecurityGroup(AwsGeneric):
    """DeleteSecurityGroup refuses a group that network interfaces still use (EC2 API
    Reference, DeleteSecurityGroup: DependencyViolation), such as an application's
    instance launched into it outside the stack (Engine.launch_application)."""

    def __init__(self):
        super().__init__("aws:ec2/securityGroup:SecurityGroup")

    def delete(self, mocks, record):
        users = sorted(name for name, groups in mocks.applications.items() if record["id"] in groups)
        if users:
            raise RuntimeError(f"deleting EC2 Security Group ({record['id']}): operation error EC2: "
                               f"DeleteSecurityGroup, api error DependencyViolation: resource {record['id']} has "
                               f"a dependent object (the network interfaces of {', '.join(users)})")


class KeyPair(ResourceType):
    def create(self, mocks, name, raw, inputs):
        key_name = inputs.get("keyName") or name
        return key_name, {"keyName": key_name, "keyPairId": hex_id("key"),
                          "fingerprint": hex_id("fp", 32)[3:]}

    def diff(self, mocks, old, raw, inputs):
        if old["inputs"] == inputs:
            return SAME
        return UPDATE if _changed(old["inputs"], inputs) <= {"tags", "tagsAll"} else REPLACE


_INSTANCE_IN_PLACE = {"tags", "tagsAll", "instanceType", "vpcSecurityGroupIds", "metadataOptions",
                      "rootBlockDevice", "userData", "userDataBase64", "disableApiTermination",
                      "monitoring", "iamInstanceProfile", "sourceDestCheck", "volumeTags"}


USER_DATA = ("userData", "userDataBase64")


def user_data(inputs: dict) -> str | None:
    """The instance's user data as it reaches it (the provider base64-encodes `userData`)."""
    if inputs.get("userDataBase64"):
        return base64.b64decode(inputs["userDataBase64"]).decode()
    return inputs.get("userData") or None


def machine_name(resource_name: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", resource_name.lower()).strip("-")[:36].strip("-")
    return name or "machine"


class Instance(ResourceType):
    def create(self, mocks, name, raw, inputs):
        keys = []
        if inputs.get("keyName"):
            public_key = mocks.public_key_for(inputs["keyName"])
            if public_key is None:
                raise ValueError(f"instance {name}: no KeyPair named {inputs['keyName']!r} exists")
            keys.append(public_key)
        machine = mocks.boot(machine_name(name), keys, user_data(inputs))
        instance_id = hex_id("i")
        mocks.machines[instance_id] = machine
        # What the metadata service hands this instance: its profile's role credentials, its user data.
        mocks.cloud.metadata.attach(machine.name, instance_id, inputs.get("iamInstanceProfile"), user_data(inputs))
        return instance_id, {
            "id": instance_id, "privateIp": machine.ip, "privateDns": private_dns_name(machine.ip),
            "publicIp": "", "primaryNetworkInterfaceId": hex_id("eni"),
            "availabilityZone": inputs.get("availabilityZone") or ZONE,
            "instanceState": "running", "arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance_id}",
            "machineName": machine.name,
        }

    def diff(self, mocks, old, raw, inputs):
        if old["inputs"] == inputs:
            return SAME
        return UPDATE if _changed(old["inputs"], inputs) <= _INSTANCE_IN_PLACE else REPLACE

    def update(self, mocks, old, raw, inputs):
        # A new profile reaches the running instance (AssociateIamInstanceProfile); new user
        # data needs the instance stopped (ModifyInstanceAttribute) and started again; the rest
        # of what may change in place has no effect here.
        machine = mocks.machine_for(old["id"], old["name"])
        if any(old["inputs"].get(k) != inputs.get(k) for k in USER_DATA):
            mocks.cloud.reboot_machine(machine)
            with mocks.log.lock:
                mocks.log.stopped.append(old["name"])
        mocks.cloud.metadata.attach(machine.name, old["id"], inputs.get("iamInstanceProfile"), user_data(inputs))
        return old["extras"]

    def delete(self, mocks, record):
        mocks.cloud.metadata.detach(record["extras"].get("machineName", ""))
        machine = mocks.machines.pop(record["id"], None)
        if machine is None:
            machine = mocks.cloud.machines.get(record["extras"].get("machineName"))
        if machine is not None:
            machine.stop()


class Volume(ResourceType):
    def create(self, mocks, name, raw, inputs):
        volume_id = hex_id("vol")
        mocks.cloud.create_volume(volume_id, int(inputs.get("size") or 8))
        return volume_id, {"id": volume_id, "arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/{volume_id}",
                           "availabilityZone": inputs.get("availabilityZone") or ZONE}

    def diff(self, mocks, old, raw, inputs):
        if old["inputs"] == inputs:
            return SAME
        replacing = {"availabilityZone", "encrypted", "snapshotId", "kmsKeyId", "outpostArn"}
        return REPLACE if _changed(old["inputs"], inputs) & replacing else UPDATE

    def update(self, mocks, old, raw, inputs):
        size = int(inputs.get("size") or 8)
        if size < int(old["inputs"].get("size") or 8):
            raise ValueError(f"volume {old['id']}: size can only grow (AWS refuses to shrink)")
        mocks.cloud.grow_volume(old["id"], size)
        return old["extras"]

    def delete(self, mocks, record):
        mocks.cloud.delete_volume(record["id"])


class VolumeAttachment(ResourceType):
    def create(self, mocks, name, raw, inputs):
        machine = mocks.machine_for(inputs["instanceId"], name)
        mocks.cloud.attach_volume(machine, inputs["volumeId"])
        attachment_id = f"vai-{zlib.crc32((inputs['instanceId'] + inputs['volumeId']).encode())}"
        return attachment_id, {"id": attachment_id}

    def diff(self, mocks, old, raw, inputs):
        return SAME if old["inputs"] == inputs else REPLACE

    def delete(self, mocks, record):
        volume = mocks.cloud.volumes.get(record["inputs"]["volumeId"])
        if volume is not None and volume.attached_to is not None:
            mocks.cloud.detach_volume(volume.volume_id)


class NetworkInterface(ResourceType):
    def create(self, mocks, name, raw, inputs):
        eni_id = hex_id("eni")
        ip = mocks.cloud.allocate_ip()
        return eni_id, {"id": eni_id, "macAddress": random_mac(), "privateIp": ip,
                        "privateIps": [ip], "privateIpList": [ip],
                        "privateDnsName": private_dns_name(ip)}

    def diff(self, mocks, old, raw, inputs):
        if old["inputs"] == inputs:
            return SAME
        replacing = {"subnetId", "privateIp", "privateIps"}
        return REPLACE if _changed(old["inputs"], inputs) & replacing else UPDATE

    def delete(self, mocks, record):
        mocks.cloud.release_ip(record["extras"]["privateIp"])


class NetworkInterfaceAttachment(ResourceType):
    def create(self, mocks, name, raw, inputs):
        machine = mocks.machine_for(inputs["instanceId"], name)
        eni = mocks.record_by_id("aws:ec2/networkInterface:NetworkInterface", inputs["networkInterfaceId"])
        if eni is None:
            raise ValueError(f"{name}: no NetworkInterface {inputs['networkInterfaceId']}")
        mocks.cloud.attach_nic(machine, eni["extras"]["macAddress"], eni["extras"]["privateIp"],
                               device_index=int(inputs.get("deviceIndex") or 1))
        attachment_id = hex_id("eni-attach")
        return attachment_id, {"id": attachment_id, "attachmentId": attachment_id, "status": "attached"}

    def diff(self, mocks, old, raw, inputs):
        return SAME if old["inputs"] == inputs else REPLACE

    def delete(self, mocks, record):
        machine = mocks.machines.get(record["inputs"]["instanceId"])
        eni = mocks.record_by_id("aws:ec2/networkInterface:NetworkInterface",
                                 record["inputs"]["networkInterfaceId"])
        if machine is not None and eni is not None:
            mocks.cloud.detach_nic(machine, eni["extras"]["macAddress"])


RESOURCE_TYPES = {
    "aws:ec2/securityGroup:SecurityGroup": SecurityGroup,
    "aws:ec2/keyPair:KeyPair": KeyPair,
    "aws:ec2/instance:Instance": Instance,
    "aws:ec2/volume:Volume": Volume,
    "aws:ebs/volume:Volume": Volume,
    "aws:ec2/volumeAttachment:VolumeAttachment": VolumeAttachment,
    "aws:ec2/networkInterface:NetworkInterface": NetworkInterface,
    "aws:ec2/networkInterfaceAttachment:NetworkInterfaceAttachment": NetworkInterfaceAttachment,
    **STORE_RESOURCE_TYPES,
}


def invoke(token: str, args: dict) -> dict:
    """Plausible answers for the data sources the program may call."""
    if token == "aws:ec2/getAmi:getAmi":
        return {"id": "ami-0123456789abcdef0", "imageId": "ami-0123456789abcdef0",
                "name": "debian-12-amd64-local", "architecture": "x86_64",
                "rootDeviceName": "/dev/xvda", "ownerId": "136693071363"}
    if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
        return {"id": REGION, "names": [ZONE], "zoneIds": ["loc1-az1"], "state": "available"}
    if token == "aws:index/getRegion:getRegion":
        return {"id": REGION, "name": REGION, "region": REGION, "endpoint": "localhost"}
    if token == "aws:index/getCallerIdentity:getCallerIdentity":
        return {"id": ACCOUNT, "accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:root",
                "userId": ACCOUNT}
    if token == "aws:ec2/getVpc:getVpc":
        return {"id": "vpc-0123456789abcdef0", "cidrBlock": "10.213.0.0/16", "default": True}
    if token == "aws:ec2/getSubnet:getSubnet":
        return {"id": "subnet-0123456789abcdef0", "availabilityZone": ZONE,
                "vpcId": "vpc-0123456789abcdef0", "cidrBlock": "10.213.0.0/24"}
    if token == "aws:ec2/getRouteTables:getRouteTables":
        return {"id": REGION, "ids": ["rtb-0123456789abcdef0"]}
    if token == "aws:ec2/getSubnets:getSubnets":
        return {"id": REGION, "ids": ["subnet-0123456789abcdef0"]}
    return {"id": f"{token.rsplit(':', 1)[-1]}-local", **args}
