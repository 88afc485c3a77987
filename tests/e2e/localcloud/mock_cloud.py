"""CloudMocks: a `pulumi.runtime.Mocks` that performs each registration for real.

The SDK calls `new_resource` once per resource, from a thread pool, after the
resource's dependencies were registered. Here each call compares the
registration with the stack state and, like the engine's step generator, does
nothing (same inputs), creates, updates, or replaces (create now; the old one is
queued for deletion at the end of the run). The work itself (booting machines,
SSH commands, dynamic providers) is done by the resource types in
aws_resources.py, command_resources.py and dynamic_resources.py.

After the first failed operation no further create/update/replace is started
(as `pulumi up` stops scheduling new steps); registrations that need no work
still answer from the state so the program can finish.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pulumi

from . import aws_resources
from .command_resources import CopyToRemote, LocalCommand, RemoteCommand
from .dynamic_resources import DynamicResource
from .resource_type import REPLACE, REPLACE_DELETE_FIRST, SAME, UPDATE, ResourceType
from .state import StackState, resource_key
from .values import normalize, unwrap_secrets


@dataclass
class Operation:
    """One thing the engine did to one resource."""

    key: str
    type: str
    name: str
    action: str  # create | update | replace | delete | delete-replaced | (preview) ...
    started: float
    ended: float | None = None
    error: str | None = None
    detail: dict = field(default_factory=dict)

    def overlaps(self, other: "Operation") -> bool:
        return self.started < (other.ended or float("inf")) and other.started < (self.ended or float("inf"))


@dataclass
class RunLog:
    kind: str  # up | preview | destroy
    operations: list[Operation] = field(default_factory=list)
    invokes: list[tuple[str, dict]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failures: list[Operation] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, operation: Operation) -> None:
        with self.lock:
            self.operations.append(operation)

    def actions(self, action: str | None = None, type_: str | None = None) -> list[Operation]:
        return [op for op in self.operations
                if (action is None or op.action == action) and (type_ is None or op.type == type_)]

    def names(self, action: str | None = None, type_: str | None = None) -> list[str]:
        return [op.name for op in self.actions(action, type_)]


class SkippedAfterFailure(Exception):
    pass


class CloudMocks(pulumi.runtime.Mocks):
    def __init__(self, cloud, state: StackState, log: RunLog, *, preview: bool = False,
                 machines: dict | None = None):
        self.cloud = cloud
        self.state = state
        self.log = log
        self.preview = preview
        # instance id -> Machine; shared across runs by the engine.
        self.machines: dict[str, Any] = machines if machines is not None else {}
        self.registered: list[str] = []  # in the order registrations completed
        self.retained: set[str] = set()  # keys registered with retainOnDelete
        self._seen: set[str] = set()
        self._booting: set[str] = set()
        self.failed = threading.Event()
        self._lock = threading.Lock()
        self._types: dict[str, ResourceType] = {
            "command:remote:Command": RemoteCommand(),
            "command:remote:CopyToRemote": CopyToRemote(),
            "command:local:Command": LocalCommand(),
            "pulumi-python:dynamic:Resource": DynamicResource(),
        }

    # -- lookups used by the resource types --------------------------------
    def type_for(self, token: str) -> ResourceType:
        with self._lock:
            if token not in self._types:
                if token in aws_resources.RESOURCE_TYPES:
                    self._types[token] = aws_resources.RESOURCE_TYPES[token]()
                elif token.startswith("pulumi-python:dynamic"):  # also .../module:Name
                    self._types[token] = DynamicResource()
                elif token.startswith("aws:") or token.startswith("pulumi:providers:"):
                    self._types[token] = aws_resources.AwsGeneric(token)
                else:
                    raise NotImplementedError(
                        f"the local cloud does not know resource type {token}; "
                        "add it to tests/e2e/localcloud/mock_cloud.py")
            return self._types[token]

    def record_by_id(self, token: str, resource_id: str) -> dict | None:
        with self.state.lock:
            for record in self.state.resources.values():
                if record["type"] == token and record["id"] == resource_id:
                    return dict(record)
        return None

    def public_key_for(self, key_name: str) -> str | None:
        with self.state.lock:
            for record in self.state.resources.values():
                if record["type"] == "aws:ec2/keyPair:KeyPair" and record["extras"].get("keyName") == key_name:
                    return record["inputs"].get("publicKey")
        return None

    def machine_for(self, instance_id: str, resource_name: str):
        machine = self.machines.get(instance_id)
        if machine is None:
            raise ValueError(
                f"{resource_name}: instance {instance_id} is not running in this local cloud "
                "(state from another cloud? destroy with the engine that created it)")
        return machine

    def boot(self, base_name: str, keys: list[str]):
        """Boot a machine named after the resource (made unique: replacements overlap)."""
        with self._lock:
            name, n = base_name, 1
            while name in self.cloud.machines or name in self._booting:
                n += 1
                name = f"{base_name}-{n}"
            self._booting.add(name)
        try:
            return self.cloud.boot_machine(name, keys)
        finally:
            with self._lock:
                self._booting.discard(name)

    # -- Mocks -------------------------------------------------------------
    def call(self, args: pulumi.runtime.MockCallArgs):
        with self.log.lock:
            self.log.invokes.append((args.token, dict(args.args)))
        if args.token.startswith("aws:"):
            return aws_resources.invoke(args.token, dict(args.args))
        return {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if args.custom is False:  # a component resource: nothing to do
            return "", {}
        key = resource_key(args.typ, args.name)
        resource_type = self.type_for(args.typ)
        raw = unwrap_secrets(dict(args.inputs))
        inputs = normalize(raw)
        with self._lock:
            if key in self._seen:
                raise ValueError(
                    f"two resources of type {args.typ} are named {args.name!r}; the local "
                    "engine keys state by type and name, so names must be unique per type")
            self._seen.add(key)
        old = self.state.get(key)
        change = "create" if old is None else resource_type.diff(self, old, raw, inputs)
        if change == SAME:
            record = old
            record["inputs"] = inputs
            with self.log.lock:
                self.log.unchanged.append(key)
        elif self.preview:
            record = self._plan(key, args, resource_type, change, old, raw, inputs)
        else:
            record = self._apply(key, args, resource_type, change, old, raw, inputs)
        record["retain"] = key in self.retained
        if not self.preview:
            self.state.put(key, record)
        with self._lock:
            self.registered.append(key)
        return record["id"], resource_type.outputs(raw, record["extras"])

    # -- doing the work ----------------------------------------------------
    def _apply(self, key, args, resource_type, change, old, raw, inputs) -> dict:
        action = {"create": "create", UPDATE: "update", REPLACE: "replace",
                  REPLACE_DELETE_FIRST: "replace"}[change]
        operation = Operation(key, args.typ, args.name, action, time.time(),
                              detail=resource_type.describe(inputs))
        if self.failed.is_set():
            operation.ended, operation.error = time.time(), "skipped: an earlier resource failed"
            self.log.add(operation)
            raise SkippedAfterFailure(
                f"{args.typ} {args.name}: {action} not started because an earlier resource failed")
        self.log.add(operation)
        try:
            if change == REPLACE_DELETE_FIRST:
                resource_type.delete(self, old)
                self.state.remove(key)
            if change in ("create", REPLACE, REPLACE_DELETE_FIRST):
                if change == REPLACE:
                    # The old one stays (in the state, pending deletion) until the run ends.
                    self.state.add_pending_delete({**old, "key": key})
                resource_id, extras = resource_type.create(self, args.name, raw, inputs)
            else:
                resource_id, extras = old["id"], resource_type.update(self, old, raw, inputs)
        except Exception as error:
            if change == REPLACE:  # the old resource stays the live one
                self.state.drop_pending_delete({**old, "key": key})
            operation.error = str(error)
            self.failed.set()
            with self.log.lock:
                self.log.failures.append(operation)
            raise RuntimeError(f"{args.typ} {args.name}: {action} failed: {error}") from error
        finally:
            operation.ended = time.time()
        return {"type": args.typ, "name": args.name, "id": resource_id, "inputs": inputs,
                "extras": extras, "custom": True}

    def _plan(self, key, args, resource_type, change, old, raw, inputs) -> dict:
        action = "create" if change == "create" else {UPDATE: "update"}.get(change, "replace")
        now = time.time()
        self.log.add(Operation(key, args.typ, args.name, action, now, now,
                               detail=resource_type.describe(inputs)))
        if old is not None:
            return {**old, "inputs": inputs}
        return {"type": args.typ, "name": args.name, "id": f"preview-{args.name}",
                "inputs": inputs, "extras": {}, "custom": True}
