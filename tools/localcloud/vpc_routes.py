"""What a machine reaches outside its subnet: the metadata service, and S3 only through a gateway endpoint.

Written from the host into each machine's namespace (`table ip localcloud_vpc`,
beside the security groups' table), rewritten when an endpoint comes or goes:
- 169.254.169.254:80 is translated to the cloud's metadata server
  (instance_metadata.py), as every EC2 instance reaches its IMDS;
- the region's S3 (moto on the bridge's address, port 443) answers only while
  the VPC has an S3 gateway endpoint (`com.amazonaws.<region>.s3`, type
  Gateway, on a route table), else connections are reset: a gateway endpoint
  is a route to S3's prefix list in the subnet's route table (VPC User Guide,
  "Gateway endpoints for Amazon S3",
  https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html).
  All machines share one subnet here, so one endpoint serves them all.

Stricter than AWS for a subnet with a NAT gateway or public addresses, where S3
is also reachable over the internet; the local cloud has no internet path to S3,
so a fetch that works here proves the endpoint is there.
"""

from __future__ import annotations

from .aws_services import S3_PORT
from .instance_metadata import METADATA_ADDRESS
from .private_dns import REGION
from .shell import run

TABLE = "localcloud_vpc"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"


def s3_routed(resources: list[dict]) -> bool:
    """Whether an S3 gateway endpoint with a route table exists in the stack state."""
    return any(r["type"] == ENDPOINT and r["inputs"].get("serviceName") == f"com.amazonaws.{REGION}.s3"
               and (r["inputs"].get("vpcEndpointType") or "Gateway") == "Gateway"
               and r["inputs"].get("routeTableIds") for r in resources)


def ruleset(gateway: str, metadata_port: int, s3_reachable: bool) -> str:
    lines = [f"table ip {TABLE}", f"delete table ip {TABLE}", f"table ip {TABLE} {{",
             "  chain metadata {", "    type nat hook output priority -100; policy accept;",
             f"    ip daddr {METADATA_ADDRESS} tcp dport 80 dnat to {gateway}:{metadata_port}", "  }",
             "  chain s3 {", "    type filter hook output priority 0; policy accept;"]
    if not s3_reachable:
        lines.append(f"    ip daddr {gateway} tcp dport {S3_PORT} reject with tcp reset")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def apply(netns: str, gateway: str, metadata_port: int, s3_reachable: bool) -> None:
    run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=ruleset(gateway, metadata_port, s3_reachable))
