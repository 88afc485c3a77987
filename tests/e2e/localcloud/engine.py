"""A small stand-in for the Pulumi engine between runs: up, preview, destroy.

    engine = Engine(cloud, tmp_path / "state.json", program=Path("__main__.py"),
                    project="pegasus", stack="e2e")
    exports = engine.up(config)                 # previews first; DeploymentError on failure
    assert engine.last_run.operations == []     # after a second, unchanged up
    engine.up(config, replace=["c1-replica-0"]) # `pulumi up --replace <urn or name>`
    engine.reboot("c1-replica-0")               # an instance, by resource name or id
    engine.destroy()

`up` first runs a preview (as `pulumi up` does), then runs the real program
in-process under CloudMocks (mock_cloud.py): each registration is checked
(checks.py), compared with the state and created, updated, replaced or left
alone; afterwards resources the program no longer registers, and the old halves
of replacements, are deleted, dependents first, independent ones in parallel
(deletes.py). `up` returns only when every operation it started has ended.

State is keyed by URN (registration.py). Resource options honoured:
`ignoreChanges`, `replaceOnChanges`, `deleteBeforeReplace`, `retainOnDelete`,
`dependsOn`/`parent` (for delete order), and `aliases` as pulumi/pulumi v3.259.0
takes them (pkg/resource/deploy/step_generator.go, getOldResource): the old
state is looked up by URN, then by each alias; what an alias found is the
resource's, kept under its new URN and not deleted; two resources claiming one
old URN, or an alias naming a URN registered in the run, fail the run.

Where it knowingly differs from Pulumi's engine:
- deleteBeforeReplace deletes only the resource itself first; Pulumi also
  replaces the dependents that would be left pointing at a deleted resource.
- ignoreChanges works on top-level input names and on one key of a map
  (`tags["k"]`); other paths ignore the whole input (`a.b` ignores all of `a`).
- After the first failure nothing new starts and no deletes run; the state
  keeps what was done (Pulumi's partial state). Replaced resources left
  undeleted are deleted by the next successful `up` or by `destroy`.
- No refresh, no import, no `protect`; secrets are plain text in the state file.
- Aliases: a child does not inherit its parent's (the engine's generateAliases
  multiplies them out), and an alias with its own parent, stack or project is
  refused (tests/support/alias_urns.py).
- The firewall (security groups) and private DNS follow the state after each
  change (network_policy.py), not the AWS API's eventual consistency.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from . import deletes
from .mock_cloud import CloudMocks, Operation, RunLog
from .network_policy import NetworkPolicy
from .registration import OptionsAwareMonitor
from .state import StackState


class DeploymentError(Exception):
    """`up`, `preview` or `destroy` failed; `failures` lists the failed operations."""

    def __init__(self, message: str, failures: list[Operation]):
        super().__init__(message)
        self.failures = failures


def _run_program(mocks, config, *, program, project, stack, secret_keys, preview):
    from tests.support.pulumi_program import run_program

    return run_program(mocks, config, program=program, project=project, stack=stack,
                       secret_keys=secret_keys, preview=preview, monitor=OptionsAwareMonitor(mocks))


class Engine:
    def __init__(self, cloud, state_path: Path, program: Path, *, project: str = "pegasus",
                 stack: str = "e2e", secret_keys: tuple[str, ...] = (), aws: bool = True):
        """`aws=False`: no AWS at all (your own servers): an AWS resource or lookup fails the run."""
        self.cloud = cloud
        self.aws = aws
        self.state = StackState(state_path)
        self.program = Path(program)
        self.project = project
        self.stack = stack
        self.secret_keys = list(secret_keys)
        self.machines: dict[str, Any] = {}  # instance id -> Machine, across runs
        self.history: list[RunLog] = []
        self.applications: dict[str, list[str]] = {}  # machine name -> its security group ids
        self.policy = NetworkPolicy(cloud, self.state, self.machines, self.applications)

    @property
    def last_run(self) -> RunLog:
        return self.history[-1]

    def reload(self) -> None:
        """Read the state file again: another process ran on it (an `up` that was killed)."""
        self.state = StackState(self.state.path)
        self.policy = NetworkPolicy(self.cloud, self.state, self.machines, self.applications)

    def _mocks(self, log: RunLog, *, preview: bool = False, replace: Iterable[str] = ()) -> CloudMocks:
        return CloudMocks(self.cloud, self.state, log, preview=preview, machines=self.machines,
                          replace=replace, on_change=None if preview else self.policy.changed, aws=self.aws,
                          applications=self.applications)

    def _run(self, mocks: CloudMocks, config: Mapping[str, str], preview: bool):
        return _run_program(mocks, dict(config), program=self.program, project=self.project,
                            stack=self.stack, secret_keys=self.secret_keys, preview=preview)

    # -- up / preview -------------------------------------------------------
    def up(self, config: Mapping[str, str], replace: Iterable[str] = ()) -> dict:
        """`pulumi up [--replace X ...]`: preview, then update. Returns the exports."""
        replace = list(replace)
        self.preview(config, replace=replace)
        log = RunLog("up")
        self.history.append(log)
        old_order = list(self.state.order)
        mocks = self._mocks(log, replace=replace)
        program_error: Exception | None = None
        exports: dict = {}
        try:
            exports = self._run(mocks, config, preview=False)
        except Exception as error:  # reported below together with failed operations
            program_error = error
        finally:
            mocks.wait_idle()  # the SDK may give up while other registrations still run
        if log.failures or program_error is not None:
            kept = [key for key in old_order if key in self.state.resources]
            self.state.set_order(kept + [k for k in mocks.registered if k not in kept])
            raise DeploymentError(self._failure_message("up", log, program_error), log.failures)
        self._delete_leftovers(log, set(mocks.registered))
        self.state.set_order(mocks.registered)
        return exports

    def preview(self, config: Mapping[str, str], replace: Iterable[str] = ()) -> RunLog:
        """What `up` would do, without doing it (deletes included); cloud-assigned
        outputs are unknown. Raises DeploymentError when a check or the program fails."""
        log = RunLog("preview")
        self.history.append(log)
        replace = list(replace)
        mocks = self._mocks(log, preview=True, replace=replace)
        try:
            log.exports = self._run(mocks, config, preview=True)
        except Exception as error:
            raise DeploymentError(self._failure_message("preview", log, error), log.failures) from error
        missing = set(replace) - mocks.replace_matched
        if missing:
            raise DeploymentError(f"preview failed: --replace {sorted(missing)} matches no resource "
                                  "of the program", [])
        registered = set(mocks.registered) | set(mocks.aliased)  # found through an alias: kept
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
        mocks = self._mocks(log)
        work = [("delete-replaced", r) for r in self.state.pending_deletes]
        work += [("delete", {**self.state.get(k), "key": k}) for k in self.state.order
                 if k in self.state.resources]
        self._delete_all(mocks, log, work, before_delete)

    # -- machines -------------------------------------------------------------
    def machine(self, instance: str):
        """The Machine of an instance, by instance id or Instance resource name/URN."""
        if instance in self.machines:
            return self.machines[instance]
        for urn in self.state.find(instance):
            record = self.state.resources[urn]
            if record["type"] == "aws:ec2/instance:Instance" and record["id"] in self.machines:
                return self.machines[record["id"]]
        raise KeyError(f"no running instance {instance!r} in this engine's state")

    def launch_application(self, name: str, group_ids: list[str]):
        """An application's instance that its owner launches outside this stack (as with
        `aws ec2 run-instances --security-group-ids ...`): the groups' rules count its
        address among their members. Its own inbound is not filtered here (its own
        groups would let its owner in)."""
        machine = self.cloud.boot_machine(name)
        self.applications[machine.name] = list(group_ids)
        self.policy.refresh_firewalls()
        return machine

    def terminate_application(self, machine) -> None:
        self.applications.pop(machine.name, None)
        self.cloud.terminate(machine)
        self.policy.refresh_firewalls()

    def reboot(self, instance: str) -> None:
        """Reboot an instance (as `aws ec2 reboot-instances`): disks, NICs and firewall stay."""
        self.cloud.reboot_machine(self.machine(instance))

    # -- deleting -----------------------------------------------------------
    def _delete_leftovers(self, log: RunLog, registered: set[str]) -> None:
        work = [("delete-replaced", r) for r in self.state.pending_deletes]
        work += [("delete", {**self.state.get(k), "key": k}) for k in self.state.order
                 if k not in registered and k in self.state.resources]
        self._delete_all(self._mocks(log), log, work, None)

    def _delete_all(self, mocks: CloudMocks, log: RunLog, work: list[tuple[str, dict]],
                    before_delete: Callable[[dict], None] | None) -> None:
        records = [{**record, "urn": record.get("urn") or record["key"], "_action": action}
                   for action, record in work]

        def delete(record: dict) -> None:
            if before_delete is not None and record["_action"] == "delete":
                before_delete({k: v for k, v in record.items() if k != "_action"})
            self._delete(mocks, log, {k: v for k, v in record.items() if k != "_action"},
                         record["_action"])

        errors = deletes.run_layers(records, delete)
        if errors:
            raise DeploymentError(f"{log.kind}: {errors[0]}", log.failures) from errors[0]

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
            with log.lock:
                log.failures.append(operation)
            raise RuntimeError(f"deleting {record['type']} {record['name']} failed: {error}") from error
        finally:
            operation.ended = time.time()
        if action == "delete-replaced":
            self.state.drop_pending_delete(record)
        else:
            self.state.remove(record["key"])
        self.policy.changed(record["type"])

    @staticmethod
    def _failure_message(kind: str, log: RunLog, program_error: Exception | None) -> str:
        lines = [f"{kind} failed:"]
        for operation in log.failures:
            lines.append(f"  {operation.type} {operation.name}: {operation.action} failed: "
                         f"{operation.error}")
        if program_error is not None and not log.failures:
            lines.append(f"  the program raised {type(program_error).__name__}: {program_error}")
        return "\n".join(lines)
