"""Keeps the local cloud's network as the stack state says: security groups and DNS.

Called by the engine after every create, update, replace or delete; it
recomputes from the whole state (as AWS applies a rule to every member at once)
and rewrites each instance's firewall, then switches the private DNS on or off
after the VPC's attributes, and the route to S3 after the gateway endpoints.
"""

from __future__ import annotations

import threading

from tools.localcloud import vpc_routes

from . import firewall, security_groups

VPC = "aws:ec2/vpc:Vpc"


def dns_hostnames_enabled(resources: list[dict]) -> bool:
    """AWS User Guide, "DNS attributes for your VPC": names resolve only with both
    enableDnsSupport (default true) and enableDnsHostnames (default false, except in
    the default VPC). A program with no Vpc of its own uses an existing one: keep on."""
    vpcs = [r["inputs"] for r in resources if r["type"] == VPC]
    return all(v.get("enableDnsSupport") is not False and bool(v.get("enableDnsHostnames")) for v in vpcs)


class NetworkPolicy:
    def __init__(self, cloud, state, machines: dict, applications: dict | None = None):
        self.cloud = cloud
        self.state = state
        self.machines = machines  # instance id -> Machine (the engine's map)
        self.applications = applications if applications is not None else {}  # name -> group ids
        self._lock = threading.Lock()

    def changed(self, token: str) -> None:
        if token in security_groups.TYPES:
            self.refresh_firewalls()
        if token == vpc_routes.ENDPOINT:
            with self.state.lock:
                resources = [dict(r) for r in self.state.resources.values()]
            self.cloud.set_s3_route(vpc_routes.s3_routed(resources))
        if token == VPC:
            with self.state.lock:
                resources = [dict(r) for r in self.state.resources.values()]
            self.cloud.set_private_dns(dns_hostnames_enabled(resources))

    def refresh_firewalls(self) -> None:
        with self._lock:
            with self.state.lock:
                resources = [dict(r) for r in self.state.resources.values()]
            # Instances launched outside the stack are members of their groups too.
            for name, groups in list(self.applications.items()):
                machine = self.cloud.machines.get(name)
                if machine is not None:
                    resources.append({"type": security_groups.INSTANCE, "id": f"application/{name}",
                                      "inputs": {"vpcSecurityGroupIds": groups}, "extras": {"privateIp": machine.ip}})
            allows = security_groups.inbound_by_instance(resources)
            for instance_id, machine in list(self.machines.items()):
                try:
                    firewall.apply(machine.netns, allows.get(instance_id, []))
                except Exception:
                    if machine.name in self.cloud.machines and machine.is_running():
                        raise  # a machine being terminated meanwhile is no error
