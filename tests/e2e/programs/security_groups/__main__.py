"""Three instances in three security groups, for the local cloud's firewall and DNS.

`server` (group server) admits TCP 8080 from group `a` (unless noTcp), UDP 9000
from group `a` when `udp` is set, and SSH from 10.0.0.0/8 (the host's bridge
address; every group has that). `client-a` is in group a, `client-b` in group b.
Config (namespace `demo`): publicKey, tcp (default true), udp, dnsHostnames
(default true).
"""

import pulumi
import pulumi_aws as aws

config = pulumi.Config("demo")
tcp = config.get_bool("tcp")
vpc = aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/8", enable_dns_support=True,
                  enable_dns_hostnames=config.get_bool("dnsHostnames") is not False)
subnet = aws.ec2.Subnet("subnet", vpc_id=vpc.id, cidr_block="10.0.1.0/24", availability_zone="local-1a")
key = aws.ec2.KeyPair("key", public_key=config.require("publicKey"))
groups = {name: aws.ec2.SecurityGroup(name, vpc_id=vpc.id) for name in ("server", "a", "b")}
for name, group in groups.items():
    aws.vpc.SecurityGroupIngressRule(f"{name}-ssh", security_group_id=group.id, ip_protocol="tcp",
                                     from_port=22, to_port=22, cidr_ipv4="10.0.0.0/8")
if tcp is not False:
    aws.vpc.SecurityGroupIngressRule("server-8080-from-a", security_group_id=groups["server"].id,
                                     ip_protocol="tcp", from_port=8080, to_port=8080,
                                     referenced_security_group_id=groups["a"].id)
if config.get_bool("udp"):
    aws.vpc.SecurityGroupIngressRule("server-9000-udp-from-a", security_group_id=groups["server"].id,
                                     ip_protocol="udp", from_port=9000, to_port=9000,
                                     referenced_security_group_id=groups["a"].id)

instances = {
    name: aws.ec2.Instance(name, ami="ami-0123456789abcdef0", instance_type="t3.small",
                           subnet_id=subnet.id, key_name=key.key_name,
                           vpc_security_group_ids=[groups[group].id])
    for name, group in (("server", "server"), ("client-a", "a"), ("client-b", "b"))
}
for name, instance in instances.items():
    pulumi.export(name, instance.id)
