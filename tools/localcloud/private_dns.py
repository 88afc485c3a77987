"""Private DNS names as in a VPC with enableDnsHostnames and enableDnsSupport on.

AWS names every private IPv4 address `ip-a-b-c-d.<region>.compute.internal`
(EC2 User Guide, "Amazon EC2 instance hostname types": IP name) and the VPC's
resolver (Route 53 Resolver at the VPC base + 2) answers forward and reverse.
Here each machine's /etc/hosts carries, between markers, every machine's
addresses (primary and extra NICs) with those names, rewritten from the host
whenever a machine or NIC comes or goes, so `getent hosts <ip>`,
`gethostbyaddr` and `getnameinfo(NI_NAMEREQD)` work through nss `files`.

Differences from Route 53 Resolver: no DNS server (resolv.conf stays empty, so
`dig`/`host` find nothing, only libc's resolver path works); a change is seen at
once, no TTL; the machine's own host name is its machine name (127.0.1.1), not
its IP name; no public names.
"""

from __future__ import annotations

import os
from pathlib import Path

REGION = "local-1"
BEGIN = "# BEGIN local cloud private DNS (written by the host; do not edit)"
END = "# END local cloud private DNS"


def private_dns_name(ip: str) -> str:
    return f"ip-{ip.replace('.', '-')}.{REGION}.compute.internal"


def block(addresses: list[str], services: dict[str, list[str]] | None = None) -> str:
    lines = [BEGIN]
    lines += [f"{ip} {private_dns_name(ip)} {private_dns_name(ip).split('.')[0]}" for ip in sorted(set(addresses))]
    lines += [f"{ip} {' '.join(names)}" for ip, names in sorted((services or {}).items()) if names]
    return "\n".join(lines + [END]) + "\n"


def rewrite_hosts(root: Path, addresses: list[str] | None, services: dict[str, list[str]] | None = None) -> None:
    """Replace the marked block of `root`/etc/hosts (None: remove it), atomically.
    `services`: address -> names of the region's services there (S3's names answer
    whatever the VPC's DNS host names setting: they are public names)."""
    path = root / "etc" / "hosts"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    if BEGIN in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END + "\n")
        text = head + tail
    if addresses or services:
        text = text + ("" if text.endswith("\n") or not text else "\n") + block(addresses or [], services)
    tmp = path.with_name(".hosts.localcloud")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
