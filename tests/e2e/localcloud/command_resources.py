"""pulumi-command resources: remote.Command, remote.CopyToRemote, local.Command.

Diff and update follow pulumi-command 1.2.1 with the engine's replaceOnChanges:
a change to `triggers` REPLACES the resource, whether or not `update` is given
(the SDK registers Command and CopyToRemote with replace_on_changes=["triggers[*]"];
see pulumi/pulumi-command#855): the new resource runs `create`, and the old one
runs its `delete` at the end of the run. Any other input change is an update:
`update` runs if given, else `create`. CopyToRemote copies again on update only
when the source's content or the remote path changed; it has no delete.
"""

from __future__ import annotations

import os
import secrets
import subprocess

from .remote_command import Connection, copy_to_remote, run_remote, RemoteCommandError
from .resource_type import REPLACE, SAME, UPDATE, ResourceType
from .values import without


def _previous(inputs: dict, extras: dict) -> tuple[str, str] | None:
    if inputs.get("addPreviousOutputInEnv") is False:
        return None
    return extras.get("stdout", ""), extras.get("stderr", "")


def _host(inputs: dict):
    connection = inputs.get("connection")  # unknown as a whole at preview when its host is
    return connection.get("host") if isinstance(connection, dict) else connection


def _triggers_diff(old: dict, inputs: dict) -> str:
    if old["inputs"] == inputs:
        return SAME
    if old["inputs"].get("triggers") != inputs.get("triggers"):
        return REPLACE
    return UPDATE


class RemoteCommand(ResourceType):
    computed_on_update = ("stdout", "stderr")

    def create(self, mocks, name, raw, inputs):
        extras = {"stdout": "", "stderr": ""}
        if inputs.get("create"):
            out, err = run_remote(Connection.from_inputs(inputs["connection"]), inputs["create"],
                                  environment=inputs.get("environment"), stdin=inputs.get("stdin"))
            extras = {"stdout": out, "stderr": err}
        return f"{name}{secrets.token_hex(4)}", extras

    def diff(self, mocks, old, raw, inputs):
        return _triggers_diff(old, inputs)

    def update(self, mocks, old, raw, inputs):
        script = inputs.get("update") or inputs.get("create")
        if not script:
            return old["extras"]
        out, err = run_remote(Connection.from_inputs(inputs["connection"]), script,
                              environment=inputs.get("environment"), stdin=inputs.get("stdin"),
                              previous=_previous(inputs, old["extras"]))
        return {"stdout": out, "stderr": err}

    def delete(self, mocks, record):
        inputs = record["inputs"]
        if inputs.get("delete"):
            run_remote(Connection.from_inputs(inputs["connection"]), inputs["delete"],
                       environment=inputs.get("environment"), stdin=inputs.get("stdin"),
                       previous=_previous(inputs, record["extras"]))

    def describe(self, inputs):
        return {"host": _host(inputs)}


class CopyToRemote(ResourceType):
    def create(self, mocks, name, raw, inputs):
        copy_to_remote(Connection.from_inputs(inputs["connection"]), inputs["source"],
                       inputs["remotePath"])
        return secrets.token_hex(4), {}

    def diff(self, mocks, old, raw, inputs):
        return _triggers_diff(old, inputs)

    def update(self, mocks, old, raw, inputs):
        before, after = old["inputs"], inputs
        if (before.get("source", {}).get("sha256") != after["source"].get("sha256")
                or before.get("remotePath") != after.get("remotePath")):
            copy_to_remote(Connection.from_inputs(after["connection"]), after["source"],
                           after["remotePath"])
        return {}

    def describe(self, inputs):
        return {"host": _host(inputs),
                "remotePath": inputs.get("remotePath")}


class LocalCommand(ResourceType):
    """command:local:Command: runs on this machine (interpreter default: /bin/sh -c)."""

    computed_on_update = ("stdout", "stderr")

    def _run(self, inputs: dict, script: str, previous: tuple[str, str] | None) -> dict:
        interpreter = inputs.get("interpreter") or ["/bin/sh", "-c"]
        env = {**os.environ, **(inputs.get("environment") or {})}
        if previous is not None:
            env["PULUMI_COMMAND_STDOUT"], env["PULUMI_COMMAND_STDERR"] = previous
        result = subprocess.run([*interpreter, script], capture_output=True, text=True,
                                input=inputs.get("stdin"), cwd=inputs.get("dir") or None, env=env)
        if result.returncode != 0:
            raise RemoteCommandError(
                f"exit status {result.returncode}: running {script!r}:\n"
                f"{result.stdout}{result.stderr}")
        trim = lambda s: s[:-1] if s.endswith("\n") else s  # noqa: E731
        return {"stdout": trim(result.stdout), "stderr": trim(result.stderr)}

    def create(self, mocks, name, raw, inputs):
        extras = {"stdout": "", "stderr": ""}
        if inputs.get("create"):
            extras = self._run(inputs, inputs["create"], None)
        return f"{name}{secrets.token_hex(4)}", extras

    def diff(self, mocks, old, raw, inputs):
        return _triggers_diff(old, inputs)

    def update(self, mocks, old, raw, inputs):
        script = inputs.get("update") or inputs.get("create")
        return self._run(inputs, script, _previous(inputs, old["extras"])) if script else old["extras"]

    def delete(self, mocks, record):
        inputs = record["inputs"]
        if inputs.get("delete"):
            self._run(inputs, inputs["delete"], _previous(inputs, record["extras"]))

    def outputs(self, raw, extras):
        return {**without(raw, "assetPaths", "archivePaths"), **extras}
