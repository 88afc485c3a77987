"""A small stand-in for the Pulumi engine between runs: up, preview, destroy.

    engine = Engine(cloud, tmp_path / "state.json", program=Path("__main__.py"),
                    project="pegasus", stack="e2e")
    exports = engine.up(config)           # raises DeploymentError on failure
    assert engine.last_run.operations == []   # after a second, unchanged up
    engine.destroy()

`up` runs the real program in-process under CloudMocks (see mock_cloud.py):
each registration is compared with the state and created, updated, replaced or
left alone; afterwards resources the program no longer registers, and the old
halves of replacements, are deleted in reverse registration order.

Where it knowingly differs from Pulumi's engine:
- State is keyed by type and resource name (mocks do not see parents), so two
  resources of one type may not share a name anywhere in the program.
- Dependencies are not recorded; the registration order stands in for them (the
  SDK registers a resource only after its dependencies). Deletes run one at a
  time in reverse of that order, where Pulumi runs independent deletes in
  parallel. After a failed run, resources created in it are ordered after the
  ones already in the state.
- Creates and updates run as the program registers them (in parallel when the
  program's dependencies allow, like Pulumi); after the first failure nothing
  new starts, the state keeps what was done (Pulumi's partial state), and no
  deletes run. Replaced resources left undeleted are deleted by the next
  successful `up` or by `destroy`.
- Of the resource options only `retainOnDelete` is honoured (read from the
  registration request, which mocks otherwise do not see): such a resource
  leaves the state at delete and stays in the cloud. No refresh, no import, no
  `protect`/`deleteBeforeReplace`; replacements are create-before-delete,
  except a dynamic provider asking for delete-before-replace.
- `preview` returns the planned operations; new resources' outputs are
  placeholders where Pulumi would show "unknown" values.
- Secrets are kept in plain text in the state file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

from pulumi.runtime.mocks import MockMonitor

from .mock_cloud import CloudMocks, Operation, RunLog
from .state import StackState, resource_key


class DeploymentError(Exception):
    """`up` or `destroy` failed; `failures` lists the failed operations."""

    def __init__(self, message: str, failures: list[Operation]):
        super().__init__(message)
        self.failures = failures


class _OptionsAwareMonitor(MockMonitor):
    """The SDK's mock monitor, also telling the mocks which resources are retainOnDelete."""

    def RegisterResource(self, request):
        if request.custom and request.retainOnDelete:
            self.mocks.retained.add(resource_key(request.type, request.name))
        return super().RegisterResource(request)


def _run_program(mocks, config, *, program, project, stack, secret_keys, preview):
    from tests.support.pulumi_program import run_program

    return run_program(mocks, config, program=program, project=project, stack=stack,
                       secret_keys=secret_keys, preview=preview, monitor=_OptionsAwareMonitor(mocks))


class Engine:
    def __init__(self, cloud, state_path: Path, program: Path, *, project: str = "pegasus",
                 stack: str = "e2e", secret_keys: tuple[str, ...] = ()):
        self.cloud = cloud
        self.state = StackState(state_path)
        self.program = Path(program)
        self.project = project
        self.stack = stack
        self.secret_keys = list(secret_keys)
        self.machines: dict[str, Any] = {}  # instance id -> Machine, across runs
        self.history: list[RunLog] = []

    @property
    def last_run(self) -> RunLog:
        return self.history[-1]

    # -- up / preview -------------------------------------------------------
    def up(self, config: Mapping[str, str]) -> dict:
        log = RunLog("up")
        self.history.append(log)
        old_order = list(self.state.order)
        mocks = CloudMocks(self.cloud, self.state, log, machines=self.machines)
        program_error: Exception | None = None
        exports: dict = {}
        try:
            exports = _run_program(mocks, dict(config), program=self.program, project=self.project,
                                   stack=self.stack, secret_keys=self.secret_keys, preview=False)
        except Exception as error:  # reported below together with failed operations
            program_error = error
        if log.failures or program_error is not None:
            kept = [key for key in old_order if key in self.state.resources]
            self.state.set_order(kept + [k for k in mocks.registered if k not in kept])
            raise DeploymentError(self._failure_message("up", log, program_error), log.failures)
        self._delete_leftovers(log, old_order, set(mocks.registered))
        self.state.set_order(mocks.registered)
        return exports

    def preview(self, config: Mapping[str, str]) -> RunLog:
        """What `up` would do, without doing it (deletes included)."""
        log = RunLog("preview")
        self.history.append(log)
        mocks = CloudMocks(self.cloud, self.state, log, preview=True, machines=self.machines)
        _run_program(mocks, dict(config), program=self.program, project=self.project,
                     stack=self.stack, secret_keys=self.secret_keys, preview=True)
        registered = set(mocks.registered)
        for key in reversed(self.state.order):
            if key not in registered:
                record = self.state.resources[key]
                now = time.time()
                log.add(Operation(key, record["type"], record["name"], "delete", now, now))
        return log

    # -- destroy ------------------------------------------------------------
    def destroy(self, before_delete: Callable[[dict], None] | None = None) -> None:
        """Delete everything; `before_delete(record)` lets a test look before each delete."""
        log = RunLog("destroy")
        self.history.append(log)
        mocks = CloudMocks(self.cloud, self.state, log, machines=self.machines)
        for record in list(reversed(self.state.pending_deletes)):
            self._delete(mocks, log, record, "delete-replaced")
        for key in list(reversed(self.state.order)):
            record = self.state.get(key)
            if record is not None:
                if before_delete is not None:
                    before_delete(record)
                self._delete(mocks, log, {**record, "key": key}, "delete")

    # -- deleting -----------------------------------------------------------
    def _delete_leftovers(self, log: RunLog, old_order: list[str], registered: set[str]) -> None:
        mocks = CloudMocks(self.cloud, self.state, log, machines=self.machines)
        position = {key: i for i, key in enumerate(old_order)}
        work = [(position.get(r["key"], -1), "delete-replaced", r) for r in self.state.pending_deletes]
        for key in old_order:
            if key not in registered and key in self.state.resources:
                work.append((position[key], "delete", {**self.state.get(key), "key": key}))
        # Reverse registration order; a replaced resource's old half goes where it stood.
        work.sort(key=lambda item: item[0], reverse=True)
        for _, action, record in work:
            self._delete(mocks, log, record, action)

    def _delete(self, mocks: CloudMocks, log: RunLog, record: dict, action: str) -> None:
        if record.get("retain") and action == "delete":
            now = time.time()
            log.add(Operation(record["key"], record["type"], record["name"], "retain", now, now))
            self.state.remove(record["key"])
            return
        operation = Operation(record["key"], record["type"], record["name"], action, time.time())
        resource_type = mocks.type_for(record["type"])
        operation.detail = resource_type.describe(record["inputs"])
        log.add(operation)
        try:
            resource_type.delete(mocks, record)
        except Exception as error:
            operation.error = str(error)
            log.failures.append(operation)
            raise DeploymentError(
                f"{log.kind}: deleting {record['type']} {record['name']} failed: {error}",
                log.failures) from error
        finally:
            operation.ended = time.time()
        if action == "delete-replaced":
            self.state.drop_pending_delete(record)
        else:
            self.state.remove(record["key"])

    @staticmethod
    def _failure_message(kind: str, log: RunLog, program_error: Exception | None) -> str:
        lines = [f"{kind} failed:"]
        for operation in log.failures:
            lines.append(f"  {operation.type} {operation.name}: {operation.action} failed: "
                         f"{operation.error}")
        if program_error is not None and not log.failures:
            lines.append(f"  the program raised {type(program_error).__name__}: {program_error}")
        return "\n".join(lines)
