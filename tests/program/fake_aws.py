"""Mocks for running the program in-process: plausible AWS outputs, no remote effects.

`FakeCloud` answers every resource with its inputs plus the outputs the program
reads (ids, addresses, MACs); `RecordingMonitor` also keeps each registration's
dependencies, so tests can check the order `pulumi up` would follow, and the
URNs its aliases name, so they can check what an existing stack keeps.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

from tests.e2e.localcloud import checks
from tests.e2e.localcloud.values import normalize, unwrap_secrets
from tests.support.alias_urns import alias_urns

PRIMARY_NET = "10.42"
NIC_NET = "10.43"


def _test_host_key() -> tuple[str, str]:
    """An Ed25519 pair made per test run: what a HostKeyPair (operations/host_key_pair.py) would hold."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


HOST_PRIVATE_KEY, HOST_KEY = _test_host_key()


def _stable_number(name: str, modulo: int) -> int:
    """Ids and addresses derive from the resource name, so two runs agree."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) % modulo


def _address(net: str, name: str) -> str:
    n = _stable_number(name, 254 * 254)
    return f"{net}.{n // 254 + 1}.{n % 254 + 1}"


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    inputs: dict
    dependencies: set[str] = field(default_factory=set)
    ignore_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False


def _unwrap(value):
    """Secrets arrive as {sig: ..., value: ...} in mock inputs: keep the value."""
    if isinstance(value, dict):
        if "4dabf18193072939515e22adb298388d" in value:
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


class FakeCloud(pulumi.runtime.Mocks):
    def __init__(self, nic_name: str = "ens6", existing: dict[str, dict] | None = None,
                 subnet_route_tables: list[str] | None = None) -> None:
        self.nic_name = nic_name
        # Route tables associated with an existing subnet (none: it uses the VPC's main table).
        self.subnet_route_tables = subnet_route_tables or []
        # name -> outputs a resource already has in the stack (an earlier `up`).
        self.existing = existing or {}
        self._lock = threading.Lock()
        self.resources: dict[str, Registration] = {}
        self.raw_inputs: dict[str, dict] = {}
        self.ids: dict[str, str] = {}  # name -> the id this cloud gave it
        self.custom_count = 0  # resources a provider would create (components excluded)
        self.invokes: list[str] = []  # function calls (lookups) the program made
        # (URN, the URNs its aliases name) of every registration, components included
        self.claims: list[tuple[str, list[str]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = _unwrap(args.inputs)
        with self._lock:
            self.raw_inputs[args.name] = args.inputs
            self.custom_count += bool(args.custom)
        state = dict(inputs)
        n = _stable_number(args.name, 1 << 48)
        kind = args.typ
        if kind == "aws:ec2/instance:Instance":
            state.update(privateIp=_address(PRIMARY_NET, args.name), publicIp=_address("198.51", args.name),
                         availabilityZone=inputs.get("availabilityZone") or "eu-west-1a")
        elif kind == "aws:ec2/networkInterface:NetworkInterface":
            mac = ":".join(f"{(n >> shift) & 0xff:02x}" for shift in (32, 24, 16, 8, 0))
            state.update(privateIp=_address(NIC_NET, args.name), macAddress=f"02:{mac}")
        elif kind == "aws:ec2/keyPair:KeyPair":
            state.update(keyName=args.name)
        elif kind == "command:remote:Command" and args.name.endswith("-address"):  # your own servers
            state.update(stdout=f"{self.nic_name} {_address(NIC_NET, args.name)}", stderr="")
        elif kind == "command:remote:Command":
            state.update(stdout=f"{self.nic_name}\n" if args.name.endswith("-nic") else "ok", stderr="")
        elif kind == "aws:s3/bucket:Bucket":
            name = f"{inputs.get('bucketPrefix', 'bucket-')}{n:012x}"
            state.update(bucket=name, arn=f"arn:aws:s3:::{name}")
        elif kind == "aws:iam/instanceProfile:InstanceProfile":
            state.update(name=f"{args.name}-{n:07x}", arn=f"arn:aws:iam::123456789012:instance-profile/{args.name}")
        elif kind == "aws:iam/role:Role":
            state.update(name=f"{args.name}-{n:07x}", arn=f"arn:aws:iam::123456789012:role/{args.name}")
        elif kind.endswith(":HostKeyPair"):
            state.update(public_key=HOST_KEY, private_key=HOST_PRIVATE_KEY)
        elif kind.endswith(":HostKeyPin"):
            state.update(key=inputs.get("configured") or inputs.get("launched") or HOST_KEY,
                         source="the fake cloud", fingerprint="SHA256:fake")
        elif kind.startswith("pulumi-python:dynamic"):
            state.update(path=f"/pegasus/{inputs.get('cluster_name')}", owner=inputs.get("owner"))
        state.update(self.existing.get(args.name, {}))
        resource_id = f"{args.name}-{n:017x}" if not kind.startswith("aws:ebs/volume") else f"vol-{n:017x}"
        with self._lock:
            self.ids[args.name] = resource_id
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        with self._lock:
            self.invokes.append(args.token)
        if args.token == "aws:ec2/getAmi:getAmi":
            return {"id": "ami-0123456789abcdef0", "architecture": "x86_64"}
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"names": ["eu-west-1a", "eu-west-1b"], "zoneIds": ["euw1-az1", "euw1-az2"]}
        if args.token == "aws:ec2/getSubnet:getSubnet":
            return {"id": args.args.get("id"), "availabilityZone": "eu-west-1b", "cidrBlock": "10.9.0.0/24"}
        if args.token == "aws:index/getRegion:getRegion":
            return {"id": "eu-west-1", "name": "eu-west-1", "region": "eu-west-1"}
        if args.token == "aws:ec2/getRouteTables:getRouteTables":
            main = any(f.get("name") == "association.main" for f in args.args.get("filters") or [])
            return {"id": "eu-west-1", "ids": ["rtb-0main0000000000"] if main else self.subnet_route_tables}
        if args.token == "aws:ec2/getVpc:getVpc":
            return {"id": args.args.get("id"), "cidrBlock": "10.9.0.0/16"}
        return {}


def _is_unknown(value) -> bool:
    return isinstance(value, Unknown) or value == rpc.UNKNOWN


class PreviewCloud(FakeCloud):
    """`pulumi preview` of a new stack, as the engine runs it: every value the
    cloud assigns (ids, addresses, MACs, a command's stdout) is unknown, and
    so is every input derived from one. The providers' input checks run on
    what is known, as pulumi-command 1.2.1 runs CopyToRemote's."""

    def __init__(self, nic_name: str = "ens6") -> None:
        super().__init__(nic_name)
        self.unknown_inputs: dict[str, set[str]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        unknown = {k for k, v in args.inputs.items() if _is_unknown(v)}
        with self._lock:
            self.unknown_inputs[args.name] = unknown
        # The providers' checks, as the local engine runs them (pulumi-command 1.2.1's
        # CopyToRemote source check, pulumi-aws's required inputs).
        failures = checks.check(args.typ, normalize(unwrap_secrets(dict(args.inputs))))
        if failures:
            raise ValueError(checks.failure_message(args.typ, args.name, failures))
        _, state = super().new_resource(args)
        given = {k for k in args.inputs if k not in unknown}
        return "", {k: (v if k in given else rpc.UNKNOWN) for k, v in state.items()}


class RecordingMonitor(MockMonitor):
    """The SDK's mock monitor, also recording each resource's dependencies."""

    def __init__(self, cloud: FakeCloud) -> None:
        super().__init__(cloud)
        self.cloud = cloud

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        aliases = alias_urns(request.aliases, name=request.name, type_=request.type, parent=request.parent,
                             make_urn=self.make_urn)
        with self.cloud._lock:
            self.cloud.claims.append((response.urn, aliases))
        if not request.custom:
            return response  # components only group; custom resources are what gets created
        deps = set(request.dependencies)
        for prop in request.propertyDependencies.values():
            deps.update(prop.urns)
        inputs = self.cloud.raw_inputs.get(request.name, {})
        with self.cloud._lock:
            assert request.name not in self.cloud.resources, f"two resources named {request.name}"
            self.cloud.resources[request.name] = Registration(
                type=request.type, name=request.name, urn=response.urn, inputs=_unwrap(inputs),
                dependencies=deps, ignore_changes=list(request.ignoreChanges),
                delete_before_replace=request.deleteBeforeReplace)
        return response
