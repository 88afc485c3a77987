"""The local engine (tests/e2e/localcloud/engine.py) on the state of a stack deployed under mocks.

A preview needs a previous state to compare with: what a deployed stack holds.
`seeded_engine` runs the program once under the program tests' FakeCloud and
keeps every custom resource as the engine keeps it after an `up` (URN as the
engine builds it, inputs in the engine's form, the cloud's outputs), so that
the engine's preview of a changed config runs the providers' checks and diffs
against that state, as `pulumi preview` does, without any machine. Only a
preview can run on it: nothing here can create or delete anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pulumi

from tests.e2e.localcloud import aws_resources
from tests.e2e.localcloud.engine import Engine
from tests.e2e.localcloud.registration import OptionsAwareMonitor, current_registration
from tests.e2e.localcloud.state import StackState
from tests.e2e.localcloud.values import normalize, unwrap_secrets
from tests.program.fake_aws import FakeCloud
from tests.support.pulumi_program import PROGRAM, run_program, stack_config

STACK = "test"
SECRET_KEYS = ("pegasus:ssh",)


class _StateRecorder(FakeCloud):
    """FakeCloud that also writes down each custom resource as the engine's state holds it."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, dict] = {}
        self.order: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        resource_id, outputs = super().new_resource(args)
        registration = current_registration()
        if args.custom and registration is not None:
            record = {"urn": registration.urn, "type": args.typ, "name": args.name, "id": resource_id,
                      "inputs": normalize(unwrap_secrets(dict(args.inputs))),
                      "extras": normalize(unwrap_secrets(dict(outputs))), "custom": True,
                      "parent": registration.parent, "dependencies": registration.dependencies,
                      "retain": registration.retain_on_delete}
            with self._lock:
                self.records[registration.urn] = record
                self.order.append(registration.urn)
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        # The engine's answers (its region, zone and AMI), so that its preview sees the same values.
        return aws_resources.invoke(args.token, dict(args.args)) if args.token.startswith("aws:") else {}


def seeded_engine(config: Mapping, state_path: Path) -> Engine:
    """An engine whose state is the stack `config` (pegasus:* values, unflattened) deployed."""
    recorder = _StateRecorder()
    run_program(recorder, stack_config("pegasus", config), stack=STACK, secret_keys=list(SECRET_KEYS),
                monitor=OptionsAwareMonitor(recorder))
    state = StackState(state_path)
    for urn in recorder.order:
        state.put(urn, recorder.records[urn])
    return Engine(None, state_path, PROGRAM, project="pegasus", stack=STACK, secret_keys=SECRET_KEYS)
