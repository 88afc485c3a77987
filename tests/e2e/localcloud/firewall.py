"""A machine's inbound firewall: nftables in its network namespace, set from the host.

The ruleset is written with `ip netns exec <ns> nft -f -` by the cloud, never
from inside the machine (the image has no nft; a test's scripts do not touch
it). Default deny inbound as a security group is; loopback and tracked replies
pass (`ct state established,related`: security groups are stateful, UDP too);
IPv6 neighbour discovery passes (not filtered by security groups either).
Outbound is not filtered (the program's egress rules allow all).
"""

from __future__ import annotations

from tools.localcloud.shell import run

from .security_groups import Allow

TABLE = "localcloud_sg"


def _match(allow: Allow) -> str:
    parts = [f"ip daddr {allow.dest}"]
    if allow.sources is not None:
        parts.append("ip saddr { " + ", ".join(allow.sources) + " }")
    if allow.protocol in ("tcp", "udp"):
        low, high = max(allow.from_port, 0), allow.to_port if allow.to_port >= 0 else 65535
        parts.append(f"{allow.protocol} dport {low}" + (f"-{high}" if high != low else ""))
    elif allow.protocol == "icmp":
        parts.append("ip protocol icmp")
        if allow.from_port >= 0:
            parts.append(f"icmp type {allow.from_port}")
            if allow.to_port >= 0:
                parts.append(f"icmp code {allow.to_port}")
    return " ".join(parts) + " accept"


def ruleset(allows: list[Allow]) -> str:
    """The whole table, replaced atomically (one nft transaction)."""
    lines = [f"table inet {TABLE}", f"delete table inet {TABLE}", f"table inet {TABLE} {{",
             "  chain inbound {", "    type filter hook input priority 0; policy drop;",
             "    iif lo accept", "    ct state established,related accept",
             "    ct state invalid drop",
             "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept"]
    lines += [f"    {_match(a)}" for a in sorted(set(allows), key=repr)]
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def apply(netns: str, allows: list[Allow]) -> None:
    run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=ruleset(allows))


def remove(netns: str) -> None:
    run(["ip", "netns", "exec", netns, "nft", "delete", "table", "inet", TABLE], check=False)


def listing(netns: str) -> str:
    return run(["ip", "netns", "exec", netns, "nft", "list", "ruleset"], check=False)
