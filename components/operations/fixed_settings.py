"""Settings an existing cluster cannot change in place, held by the stack.

homeDir, appDir and clusterName name the data on every server and in
ZooKeeper; a ReplicaServer's data disks cannot shrink, nor become fewer,
without losing replicas (EBS replaces a volume made smaller). A shared-log
disk cannot be added or removed (what either would do to the shared log and
to the servers is in the message), a provisioned ZooKeeper ensemble keeps
its size, and the cluster stays on the ensemble that holds its state. A
Python dynamic resource keeps the values of the last `pulumi up` and its
check refuses a change, so `pulumi preview` fails with the key and the way
out before anything is touched (TiUP marks the same topology keys as not
editable). Growing the disks, or adding some, is allowed.

Which inputs it keeps, and how each may change, is declared with the keys
(components/spec/keys.py: FIXED, GROW_ONLY, SAME_ENSEMBLE). An input a stack
deployed by an older version does not hold yet is recorded by its next `up`.

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
SAME_ENSEMBLE = keys.state_names(keys.SAME_ENSEMBLE)


def _number(value: Any) -> int | None:
    """A count or size as the check receives it: Pulumi hands a dynamic provider every
    number as a float (a protobuf Value), the state of a new stack as an int."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _slog_disk(key: str, old: Any, new: Any, news: dict[str, Any]) -> str:
    # Since 2.4 a ReplicaServer writes its mutations to each replica's private log only
    # (src/rdsn/src/replica/replica_2pc.cpp at v2.4.0, "write private log synchronously",
    # apache/incubator-pegasus#1007); it replays a shared log at start, one an older release
    # left; 2.5 garbage-collects it (#1594) and master has none.
    if new:
        return (f"pegasus:{key} (servers.replica[].slogDisk on your own servers) was not set on this stack's "
                "servers: adding a shared-log disk moves every ReplicaServer's slog_dir onto it, and a server "
                "restarted there does not replay the shared log it leaves behind (before release 2.4 that log "
                "holds writes clients were told succeeded). From 2.4 on the ReplicaServers write nothing to a "
                "shared log, so the disk would stay empty. Remove it from the stack; to have one anyway, deploy "
                "a new stack with it and move the tables")
    return (f"pegasus:{key} (servers.replica[].slogDisk on your own servers) is set on this stack's servers: "
            "removing it detaches each ReplicaServer's shared-log volume, which AWS does by stopping the instance "
            "(stopInstanceBeforeDetaching), every ReplicaServer at once at the end of the `up`, and deletes the "
            "volume with any shared log left on it. Put it back. From release 2.4 on it holds nothing (the "
            "ReplicaServers write each replica's private log only): to pay less for it, change its type (gp3), "
            "which EBS does in place, with no restart; to be rid of it, deploy a new stack without it and move "
            "the tables")


def _zookeeper_count(key: str, old: Any, new: Any, news: dict[str, Any]) -> str:
    old, new = _number(old), _number(new)
    if not old or not new or old == new:
        return ""  # to or from an existing ensemble: zookeeper.servers says why not
    return (f"pegasus:{key} is {old} on this stack's ensemble, now {new}: ZooKeeper changes the members of an "
            "ensemble safely only by dynamic reconfiguration (`reconfig`, ZooKeeper 3.5+), which this program does "
            "not drive; restarting its servers with a new server list can form two majorities at once. Set it "
            f"back to {old}. To replace a failed server, `pulumi up --replace` its instance (the ensemble rolls, "
            "one server at a time, keeping its quorum); to change the size, deploy a new stack with it and move "
            "the tables")


EXPLAINED = {"slog_disk": _slog_disk, "zookeeper_count": _zookeeper_count}


def _servers(value: str) -> set[str]:
    return {server.strip() for server in value.split(",") if server.strip()}


def ensemble_problem(key: str, old: str, new: str, cluster_name: str) -> str:
    """Why the stack may not move to the ZooKeeper servers `new` ("" when provisioned), or ""."""
    root = f"/pegasus/{cluster_name}"
    if old and not new:
        return (f"pegasus:{key} is {old} on this stack, the ensemble that holds the cluster's state ({root}); "
                "without it the program would provision a new, empty ensemble, and the MetaServers restarting "
                f"onto it would find no cluster there. Set it back to {old}; to move the cluster, deploy a new "
                "stack and move the tables")
    if new and not old:
        return (f"pegasus:{key} now names an existing ensemble ({new}), but the cluster keeps its state ({root}) "
                "on the ensemble this stack provisioned: the MetaServers restarting onto the other one would find "
                "no cluster there, and the provisioned ensemble would be deleted with that state. Remove "
                f"{key}; to move the cluster, deploy a new stack on that ensemble and move the tables")
    if old and new and not _servers(old) & _servers(new):
        return (f"pegasus:{key} was {old}, now {new}: no server in common, so not the ensemble that holds the "
                f"cluster's state ({root}). List that ensemble's servers (one of them replaced is carried out: "
                "the path guard checks the new list reaches this cluster's path, then the MetaServers restart "
                "onto it one at a time); to move the cluster to another ensemble, deploy a new stack there and "
                "move the tables")
    return ""


def fixed_settings_problems(olds: dict[str, Any], news: dict[str, Any]) -> list[tuple[str, str]]:
    """(input, reason) for every change an existing cluster cannot take; none on a new stack."""
    if not olds:
        return []
    problems = []
    for name, key in FIXED.items():
        old, new = olds.get(name), news.get(name)
        if old is None or old == new:
            continue
        if name in EXPLAINED:
            reason = EXPLAINED[name](key, old, new, news)
            if reason:
                problems.append((name, reason))
            continue
        problems.append((name, f"pegasus:{key} is {old!r} on this stack's servers; changing it to {new!r} would "
                               f"strand their data (and the ZooKeeper path). Set it back to {old!r}; to move, "
                               "deploy a new stack and migrate the tables"))
    for name, key in NO_SHRINK.items():
        old, new = _number(olds.get(name)), _number(news.get(name))
        if old is None or new is None or new >= old:
            continue
        if name == "slog_disk_size_gib":
            if new:  # 0: no shared-log disk any more, which slog_disk refuses
                problems.append((name, f"pegasus:{key} was {old}, now {new}: EBS cannot make a volume smaller. "
                                       f"Set it back to at least {old}"))
            continue
        problems.append((name, f"pegasus:{key} was {old}, now {new}: disks cannot be made smaller or fewer "
                               "without losing the replicas on them. Set it back to at least "
                               f"{old}; to shrink, add ReplicaServers with the new disks, then remove "
                               "the old ones (scale in)"))
    for name, key in SAME_ENSEMBLE.items():
        old, new = olds.get(name), news.get(name)
        if isinstance(old, str) and isinstance(new, str):
            reason = ensemble_problem(key, old, new, str(news.get("cluster_name")))
            if reason:
                problems.append((name, reason))
    return problems


class FixedSettingsProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure(name, reason) for name, reason in fixed_settings_problems(_olds, news)]
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"fixed-settings-{props['cluster_name']}", outs=props)

    def diff(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = set(FIXED) | set(NO_SHRINK) | set(SAME_ENSEMBLE)
        changed = any(_olds.get(k) != news.get(k) for k in keys)
        return DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=news)


class FixedSettings(pulumi.dynamic.Resource, module="pegasus", name="FixedSettings"):
    """Holds clusterName, homeDir, appDir, the ReplicaServers' disks and the ZooKeeper ensemble of the last `up`."""

    def __init__(self, name: str, settings: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(FixedSettingsProvider(), name, dict(settings), opts)
