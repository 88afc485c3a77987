"""Security groups from the stack state: which inbound flows each address admits.

AWS semantics (EC2 User Guide, "Security group rules" and "Security group
connection tracking"): groups belong to network interfaces (an instance's
`vpcSecurityGroupIds` are its primary interface's); inbound is denied unless a
rule of one of the interface's groups allows it; a rule names a protocol
(tcp/udp/icmp or -1 for all, also by number), a port range (for ICMP: type and
code, -1 for any) and a source: a CIDR, or a group meaning the private
addresses of every interface in that group. Replies to allowed or outbound
flows are allowed back (tracked connections, UDP included).
"""

from __future__ import annotations

from dataclasses import dataclass

INSTANCE = "aws:ec2/instance:Instance"
ENI = "aws:ec2/networkInterface:NetworkInterface"
ENI_ATTACHMENT = "aws:ec2/networkInterfaceAttachment:NetworkInterfaceAttachment"
GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
TYPES = {INSTANCE, ENI, ENI_ATTACHMENT, GROUP, INGRESS_RULE, LEGACY_RULE}

_PROTOCOLS = {"6": "tcp", "17": "udp", "1": "icmp", "all": "-1", "-1": "-1",
              "tcp": "tcp", "udp": "udp", "icmp": "icmp"}


@dataclass(frozen=True)
class Rule:
    group_id: str
    protocol: str  # tcp | udp | icmp | -1
    from_port: int  # icmp: type (-1 any)
    to_port: int  # icmp: code (-1 any)
    cidr: str | None = None
    source_group: str | None = None


def _int(value, default: int = -1) -> int:
    return default if value in (None, "") else int(value)


def _rules(resources: list[dict]) -> list[Rule]:
    rules = []
    for r in resources:
        i = r["inputs"]
        if r["type"] == INGRESS_RULE:
            rules.append(Rule(i.get("securityGroupId"), _PROTOCOLS.get(str(i.get("ipProtocol")).lower(), "?"),
                              _int(i.get("fromPort")), _int(i.get("toPort")),
                              i.get("cidrIpv4"), i.get("referencedSecurityGroupId")))
        elif r["type"] == LEGACY_RULE and i.get("type") == "ingress":
            rules += _legacy(i.get("securityGroupId"), i, i.get("sourceSecurityGroupId"))
        elif r["type"] == GROUP:  # inline `ingress` blocks
            for block in i.get("ingress") or []:
                rules += _legacy(r["id"], block, None)
    return [rule for rule in rules if rule.group_id and rule.protocol != "?"]


def _legacy(group_id: str, block: dict, source_group: str | None) -> list[Rule]:
    protocol = _PROTOCOLS.get(str(block.get("protocol")).lower(), "?")
    ports = _int(block.get("fromPort")), _int(block.get("toPort"))
    sources = [(c, None) for c in block.get("cidrBlocks") or []]
    sources += [(None, g) for g in block.get("securityGroups") or []]
    if source_group:
        sources.append((None, source_group))
    if block.get("self"):
        sources.append((None, group_id))
    return [Rule(group_id, protocol, *ports, cidr, group) for cidr, group in sources]


@dataclass
class Interface:
    ip: str
    groups: list[str]
    instance_id: str | None  # where the address lives (None: not attached)


def interfaces(resources: list[dict]) -> list[Interface]:
    result = []
    attached = {r["inputs"].get("networkInterfaceId"): r["inputs"].get("instanceId")
                for r in resources if r["type"] == ENI_ATTACHMENT}
    for r in resources:
        if r["type"] == INSTANCE and r["extras"].get("privateIp"):
            result.append(Interface(r["extras"]["privateIp"], list(r["inputs"].get("vpcSecurityGroupIds") or []),
                                    r["id"]))
        elif r["type"] == ENI and r["extras"].get("privateIp"):
            result.append(Interface(r["extras"]["privateIp"], list(r["inputs"].get("securityGroups") or []),
                                    attached.get(r["id"])))
    return result


@dataclass(frozen=True)
class Allow:
    """Inbound to `dest` from `sources` (None: any) by protocol/ports."""

    dest: str
    protocol: str
    from_port: int
    to_port: int
    sources: tuple[str, ...] | None


def inbound_by_instance(resources: list[dict]) -> dict[str, list[Allow]]:
    """instance id -> what its addresses admit (instances without rules admit nothing)."""
    nics = interfaces(resources)
    members: dict[str, list[str]] = {}
    for nic in nics:
        for group in nic.groups:
            members.setdefault(group, []).append(nic.ip)
    rules = _rules(resources)
    result: dict[str, list[Allow]] = {}
    for nic in nics:
        if nic.instance_id is None:
            continue
        allows = result.setdefault(nic.instance_id, [])
        for rule in rules:
            if rule.group_id not in nic.groups:
                continue
            if rule.source_group:
                sources = tuple(sorted(set(members.get(rule.source_group, []))))
                if not sources:
                    continue
            else:
                sources = None if rule.cidr in (None, "0.0.0.0/0") else (rule.cidr,)
            allows.append(Allow(nic.ip, rule.protocol, rule.from_port, rule.to_port, sources))
    return result
