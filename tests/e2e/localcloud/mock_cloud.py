"""CloudMocks: a `pulumi.runtime.Mocks` that performs each registration for real.

The SDK calls `new_resource` once per resource, from a thread pool, after the
resource's dependencies were registered. Here each call runs the provider's
input check (checks.py), compares the registration with the stack state and,
like the engine's step generator, does nothing (same inputs), creates, updates,
or replaces (create now and delete the old one at the end of the run, or delete
first with deleteBeforeReplace). The engine's part of the diff
(replaceOnChanges, --replace, ignoreChanges) is read from the registration
request (registration.py). The work itself (booting machines, SSH commands,
dynamic providers) is done by the resource types in aws_resources.py,
command_resources.py and dynamic_resources.py.

In preview nothing is done: new resources get an empty id and their inputs as
outputs, so whatever the cloud would assign is unknown to the program.

After the first failed operation no further create/update/replace is started
(as `pulumi up` stops scheduling new steps); registrations that need no work
still answer from the state so the program can finish.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pulumi

from pulumi.runtime.rpc import UNKNOWN

from . import aws_resources, checks
from .command_resources import CopyToRemote, LocalCommand, RemoteCommand
from .dynamic_resources import DynamicResource
from .resource_type import REPLACE, REPLACE_DELETE_FIRST, SAME, UPDATE, ResourceType
from .registration import Registration, current_registration
from .state import StackState
from .values import normalize, unknown_paths, unwrap_secrets


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
    # urn -> input paths that were unknown (pulumi.output.Unknown) when registered
    unknown_inputs: dict[str, list[str]] = field(default_factory=dict)
    exports: dict = field(default_factory=dict)  # a preview's exports (None where unknown)
    failures: list[Operation] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)  # instances an update stopped and started
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


class NotAWS(Exception):
    """An AWS resource or lookup where the stack lists its own servers."""


class CloudMocks(pulumi.runtime.Mocks):
    def __init__(self, cloud, state: StackState, log: RunLog, *, preview: bool = False,
                 machines: dict | None = None, replace=(), on_change=None, aws: bool = True,
                 applications: dict | None = None):
        self.cloud = cloud
        # machine name -> security group ids: instances launched outside the stack (Engine.launch_application)
        self.applications: dict[str, list[str]] = applications if applications is not None else {}
        self.aws = aws  # False: any AWS resource or lookup fails (a stack of your own servers)
        self.state = state
        self.log = log
        self.preview = preview
        # instance id -> Machine; shared across runs by the engine.
        self.machines: dict[str, Any] = machines if machines is not None else {}
        self.registered: list[str] = []  # in the order registrations completed
        self.replace = set(replace)  # URNs or names to replace (`pulumi up --replace`)
        self.replace_matched: set[str] = set()
        self.aliased: dict[str, str] = {}  # old URN -> the URN of the resource whose alias found it
        self.on_change = on_change  # called with a type token after a resource changed
        self._running = 0
        self._idle = threading.Condition()
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
        if not self.aws and token.startswith(("aws:", "pulumi:providers:aws")):
            raise NotAWS(f"the program registered {token} in a scenario without AWS")
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

    def boot(self, base_name: str, keys: list[str], user_data: str | None = None):
        """Boot a machine named after the resource (made unique: replacements overlap)."""
        with self._lock:
            name, n = base_name, 1
            while name in self.cloud.machines or name in self._booting:
                n += 1
                name = f"{base_name}-{n}"
            self._booting.add(name)
        try:
            return self.cloud.boot_machine(name, keys, user_data=user_data)
        finally:
            with self._lock:
                self._booting.discard(name)

    # -- Mocks -------------------------------------------------------------
    def call(self, args: pulumi.runtime.MockCallArgs):
        with self.log.lock:
            self.log.invokes.append((args.token, dict(args.args)))
        if args.token.startswith("aws:"):
            if not self.aws:
                raise NotAWS(f"the program called {args.token} in a scenario without AWS")
            return aws_resources.invoke(args.token, dict(args.args))
        return {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if args.custom is False:  # a component resource: nothing to do
            return "", {}
        # Counted from here to the state's record: a run that fails waits (wait_idle) until
        # every operation under way is done and recorded, as Pulumi's engine records the
        # steps that were running when another failed; destroy then finds them.
        with self._idle:
            self._running += 1
        try:
            return self._new_resource(args)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _new_resource(self, args: pulumi.runtime.MockResourceArgs):
        reg = current_registration() or Registration(urn=f"{args.typ}::{args.name}", parent="", custom=True)
        urn = reg.urn
        resource_type = self.type_for(args.typ)
        raw = unwrap_secrets(dict(args.inputs))  # unknown inputs arrive as pulumi.output.Unknown
        unknown = unknown_paths(raw)
        if unknown:
            with self.log.lock:
                self.log.unknown_inputs[urn] = unknown
        with self._lock:
            if urn in self._seen:
                # The engine's words (pkg/resource/deploy/source_eval.go).
                raise ValueError(f"Duplicate resource URN '{urn}'; try giving it a unique name")
            self._seen.add(urn)
        inputs = normalize(raw)
        failures = checks.check(args.typ, inputs)
        if failures:
            self._fail(urn, args, "check", checks.failure_message(args.typ, args.name, failures))
        old = self._old_state(urn, reg.aliases)
        if old is not None and reg.ignore_changes:
            raw, inputs = ignore_changes(old, raw, inputs, reg.ignore_changes)
        change = "create" if old is None else resource_type.diff(self, old, raw, inputs)
        if old is not None:
            change = self._engine_rules(urn, args.name, reg, old, inputs, change)
        record_extra = {"urn": urn, "name": args.name, "parent": reg.parent, "dependencies": reg.dependencies,
                        "retain": reg.retain_on_delete}
        if change == SAME:
            record = {**old, "inputs": inputs, **record_extra}
            with self.log.lock:
                self.log.unchanged.append(urn)
            outputs = resource_type.outputs(raw, record["extras"])
            resource_id = record["id"]
        elif self.preview:
            if old is None:
                try:
                    resource_type.check_new(self, inputs)
                except Exception as error:
                    self._fail(urn, args, "check", f"{args.typ} {args.name}: {error}")
            resource_id, outputs = self._plan(urn, args, resource_type, change, old, raw, inputs)
            record = None
        else:
            record = {**self._apply(urn, args, resource_type, change, old, raw, inputs), **record_extra}
            outputs = resource_type.outputs(raw, record["extras"])
            resource_id = record["id"]
        if record is not None and not self.preview:
            self.state.put(urn, record)
            if change != SAME and self.on_change is not None:
                self.on_change(args.typ)
        with self._lock:
            self.registered.append(urn)
        return resource_id, outputs

    def _old_state(self, urn: str, aliases: list[str]) -> dict | None:
        """The resource's state: under its URN, else under the first of its aliases that has one,
        with the engine's refusals (pulumi/pulumi v3.259.0, pkg/resource/deploy/step_generator.go,
        getOldResource; diag 2016 and 2008 in sdk/go/common/diag/errors.go). An up then keeps
        that state under the new URN, so the old one is not deleted as a leftover."""
        with self._lock:
            if urn in self.aliased:
                raise ValueError(f"Duplicate resource URN '{urn}' conflicting with alias on resource "
                                 f"with URN '{self.aliased[urn]}'")
        old = self.state.get(urn)
        if old is not None:
            return old
        for alias in aliases:
            old = self.state.get(alias)
            if old is None:
                continue
            with self._lock:
                claimed = urn if alias in self._seen else self.aliased.get(alias)
                if claimed is not None:
                    raise ValueError(f"Duplicate resource alias '{alias}' applied to resource with URN "
                                     f"'{urn}' conflicting with resource with URN '{claimed}'")
                self.aliased[alias] = urn
            if not self.preview:
                self.state.rename(alias, urn)
            return old
        return None

    def _engine_rules(self, urn, name, reg, old, inputs, change):
        """What the engine adds to the provider's diff: replaceOnChanges, --replace,
        deleteBeforeReplace (pkg/resource/deploy/step_generator.go)."""
        if change == UPDATE and reg.replace_on_changes:
            changed = {k for k in set(old["inputs"]) | set(inputs) if old["inputs"].get(k) != inputs.get(k)}
            roots = {p.split(".")[0].split("[")[0] for p in reg.replace_on_changes}
            if "*" in roots or changed & roots:
                change = REPLACE
        if urn in self.replace or name in self.replace:
            with self._lock:
                self.replace_matched.add(urn if urn in self.replace else name)
            change = REPLACE
        if change == REPLACE and reg.delete_before_replace:
            change = REPLACE_DELETE_FIRST
        return change

    def _fail(self, urn, args, action, message):
        now = time.time()
        operation = Operation(urn, args.typ, args.name, action, now, now, error=message)
        self.log.add(operation)
        with self.log.lock:
            self.log.failures.append(operation)
        self.failed.set()
        raise RuntimeError(message)

    def wait_idle(self, timeout: float | None = None) -> None:
        """Return once no operation started by this run is still going."""
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0, timeout)

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
        with self._idle:
            self._running += 1
        try:
            if change == REPLACE_DELETE_FIRST:
                resource_type.delete(self, old)
                self.state.remove(key)
                if self.on_change is not None:
                    self.on_change(args.typ)
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
            with self._idle:
                self._running -= 1
                self._idle.notify_all()
        return {"type": args.typ, "name": args.name, "id": resource_id, "inputs": inputs,
                "extras": extras, "custom": True}

    def _plan(self, key, args, resource_type, change, old, raw, inputs) -> tuple[str, dict]:
        """Log the planned step; return the id and outputs a preview shows.

        As the engine does in a dry run: a new resource (or the new half of a
        replacement) gets an empty id and only its inputs as outputs, so every
        output the cloud assigns is unknown (the SDK resolves missing outputs and
        UNKNOWN as unknown in preview, pulumi/runtime/rpc.py resolve_properties);
        an update keeps the old outputs except those the provider recomputes."""
        action = "create" if change == "create" else {UPDATE: "update"}.get(change, "replace")
        now = time.time()
        self.log.add(Operation(key, args.typ, args.name, action, now, now,
                               detail={**resource_type.describe(inputs), **resource_type.planned(old, raw)}))
        if change == UPDATE:
            outputs = resource_type.outputs(raw, old["extras"])
            outputs.update({k: UNKNOWN for k in resource_type.computed_on_update})
            return old["id"], outputs
        return "", {k: v for k, v in raw.items() if k != "__provider"}


_MAP_KEY = re.compile(r'(?P<name>[A-Za-z0-9_]+)\["(?P<key>[^"]+)"\]')


def ignore_changes(old: dict, raw: dict, inputs: dict, paths: list[str]) -> tuple[dict, dict]:
    """The listed inputs keep their old values, in the diff and in the state: top-level names,
    and one key of a map (`tags["k"]`: the old value, or none when the old map had none, as the
    engine's processIgnoreChanges does); other paths (`a.b`, `a[0]`) ignore all of `a`, coarser
    than the engine's property paths."""
    raw, inputs = dict(raw), dict(inputs)
    for path in paths:
        entry = _MAP_KEY.fullmatch(path)
        if entry is not None and isinstance(inputs.get(entry["name"]), dict):
            old_map = old["inputs"].get(entry["name"]) or {}
            for values in (raw, inputs):
                kept = dict(values.get(entry["name"]) or {})
                if entry["key"] in old_map:
                    kept[entry["key"]] = old_map[entry["key"]]
                else:
                    kept.pop(entry["key"], None)
                values[entry["name"]] = kept
            continue
        name = path.split(".")[0].split("[")[0]
        if name == "*":
            return dict(old["inputs"]), dict(old["inputs"])
        if name in old["inputs"]:
            raw[name] = inputs[name] = old["inputs"][name]
        else:
            raw.pop(name, None)
            inputs.pop(name, None)
    return raw, inputs
