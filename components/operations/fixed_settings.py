"""Settings an existing cluster cannot change in place, held by the stack.

homeDir, appDir and clusterName name the data on every server and in
ZooKeeper; a ReplicaServer's data disks cannot shrink, nor become fewer,
without losing replicas (EBS replaces a volume made smaller). A Python
dynamic resource keeps the values of the last `pulumi up` and its check
refuses a change, so `pulumi preview` fails with the key and the way out
before anything is touched (TiUP marks the same topology keys as not
editable). Growing the disks, or adding some, is allowed.

Pulumi runs the provider from the project directory at preview, up and
destroy (see zookeeper_path_guard.py); keep this module's name.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ResourceProvider, UpdateResult

from components.spec import keys

# input -> the stack config key a user knows it by, from the keys' declarations
FIXED = keys.state_names(keys.FIXED)
NO_SHRINK = keys.state_names(keys.GROW_ONLY)


def fixed_settings_problems(olds: dict[str, Any], news: dict[str, Any]) -> list[tuple[str, str]]:
    """(input, reason) for every change an existing cluster cannot take; none on a new stack."""
    if not olds:
        return []
    problems = []
    for name, key in FIXED.items():
        if olds.get(name) is not None and olds.get(name) != news.get(name):
            problems.append((name, f"pegasus:{key} is {olds[name]!r} on this stack's servers; changing it to "
                                   f"{news.get(name)!r} would strand their data (and the ZooKeeper path). Set it "
                                   f"back to {olds[name]!r}; to move, deploy a new stack and migrate the tables"))
    for name, key in NO_SHRINK.items():
        old, new = olds.get(name), news.get(name)
        if isinstance(old, int) and isinstance(new, int) and new < old:
            problems.append((name, f"pegasus:{key} was {old}, now {new}: disks cannot be made smaller or fewer "
                                   "without losing the replicas on them. Set it back to at least "
                                   f"{old}; to shrink, add ReplicaServers with the new disks, then remove "
                                   "the old ones (scale in)"))
    return problems


class FixedSettingsProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure(name, reason) for name, reason in fixed_settings_problems(_olds, news)]
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"fixed-settings-{props['cluster_name']}", outs=props)

    def diff(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = set(FIXED) | set(NO_SHRINK)
        changed = any(_olds.get(k) != news.get(k) for k in keys)
        return DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=news)


class FixedSettings(pulumi.dynamic.Resource, module="pegasus", name="FixedSettings"):
    """Holds clusterName, homeDir, appDir and the ReplicaServers' disks of the last `up`."""

    def __init__(self, name: str, settings: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(FixedSettingsProvider(), name, dict(settings), opts)
