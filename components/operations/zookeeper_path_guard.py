"""Guard of the cluster's ZooKeeper path, /pegasus/<clusterName>.

MetaServers keep the whole cluster state under their `cluster_root`,
/pegasus/<clusterName>, and create it if it is missing. Two clusters (or two
stacks) given the same name would silently share and corrupt that state. This
guard runs between "ZooKeeper is ready" and "MetaServers start":

- create: claims the path with an ownership stamp, JSON {"owner": <owner id>,
  "claim": <claim id>} as the node's data. An absent path is created; a path
  stamped by the same owner is adopted; an empty unstamped path is stamped;
  anything else (another owner's stamp, or unstamped with children) is refused
  unless `adopt` is set.
- delete: removes the path recursively (nothing above or beside it) unless
  `retain` is set, and only while the stamp still carries this resource's
  claim id: a replacement that adopted the path, or another stack that took it
  over, keeps it.
- access: the path's ACL is not ZooKeeper's open one (world:anyone:cdrwa): anyone
  may read it; only the `writers` (`ip` scheme: the MetaServers' hosts' addresses)
  and this guard (`digest` scheme: a secret it makes at create and keeps in its
  outputs, so it keeps access from wherever it connects, through any tunnel host)
  may create or delete children, write it or change the ACL. Pegasus 2.4 and 2.5
  authenticate to ZooKeeper in no way, so an address is all ZooKeeper can tell a
  MetaServer by; master's `[zookeeper] sasl_*` settings add SASL (see
  docs/operating.md). The nodes the MetaServers create below keep the ACL they give
  them (open). A stack deployed before this keeps the open ACL until its next update.

The provider is a Pulumi dynamic provider. The SDK pickles it with dill, and
dill pickles a class that lives in an importable module *by reference*
(`components.zookeeper_path_guard.ZooKeeperPathGuardProvider`): the dynamic
provider process imports this module at create, update, refresh and destroy,
so destroy runs the code checked out then. It finds it because the engine
starts that process (`python -m pulumi.dynamic`) in the program directory,
which `-m` puts first on sys.path; that holds while Pulumi.yaml sets no `main`
and PYTHONSAFEPATH is unset. Keep the module importable under this name, free
of side effects at import, and tolerant of outputs written by older versions.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional

import pulumi
import pulumi.dynamic
from pulumi.runtime import rpc
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NoAuthError, NodeExistsError, NoNodeError, NotEmptyError
from kazoo.security import ACL, Id, Permissions, make_digest_acl_credential
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from components.operations.provider_inputs import plain
from components.ssh.tunnel import TunnelSpec, ssh_tunnel

PEGASUS_ROOT = "/pegasus"
DEFAULT_TIMEOUT_SECONDS = 300
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CLAIM_ATTEMPTS = 5  # rounds of optimistic concurrency before giving up


class ZooKeeperUnreachable(RuntimeError):
    """The ensemble did not answer before the timeout."""


class PathClaimRefused(RuntimeError):
    """The cluster path belongs to someone else."""


# ---------------------------------------------------------------------------
# Pure ZooKeeper logic, given a started KazooClient.


def cluster_root(cluster_name: str) -> str:
    """/pegasus/<clusterName>, the MetaServers' `cluster_root`."""
    if not isinstance(cluster_name, str) or not _CLUSTER_NAME.fullmatch(cluster_name):
        raise ValueError(
            f"clusterName {cluster_name!r} cannot name a ZooKeeper node: use letters, digits, "
            "'.', '_' and '-', starting with a letter or digit"
        )
    return f"{PEGASUS_ROOT}/{cluster_name}"


def parse_servers(servers: str) -> list[tuple[str, int]]:
    """'ip:port,ip:port' -> [(ip, port), ...]; errors name the bad entry."""
    if not isinstance(servers, str) or not servers.strip():
        raise ValueError(f"servers: expected 'ip:port,ip:port', got {servers!r}")
    parsed = []
    for entry in servers.split(","):
        host, _, port = entry.strip().rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"servers: entry {entry!r} of {servers!r} is not 'host:port'")
        parsed.append((host, int(port)))
    return parsed


def ownership_stamp(owner: str, claim_id: str) -> bytes:
    return json.dumps({"owner": owner, "claim": claim_id}, sort_keys=True).encode()


def read_stamp(data: Optional[bytes]) -> Optional[dict]:
    """The stamp in a node's data, or None when the data is not one of our stamps."""
    try:
        stamp = json.loads((data or b"").decode())
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(stamp, dict) and isinstance(stamp.get("owner"), str):
        return stamp
    return None


@dataclass(frozen=True)
class PathState:
    path: str
    exists: bool
    stamp: Optional[dict] = None
    children: tuple[str, ...] = ()
    lock_holders: tuple[str, ...] = ()  # ephemeral children of <path>/lock: live MetaServers
    version: int = -1

    @property
    def owner(self) -> Optional[str]:
        return self.stamp["owner"] if self.stamp else None

    @property
    def looks_live(self) -> bool:
        return bool(self.lock_holders)


def inspect_path(client: KazooClient, path: str) -> PathState:
    try:
        data, stat = client.get(path)
        children = client.get_children(path)
    except NoNodeError:
        return PathState(path=path, exists=False)
    try:
        lock_holders = client.get_children(f"{path}/lock")
    except NoNodeError:
        lock_holders = []
    return PathState(
        path=path,
        exists=True,
        stamp=read_stamp(data),
        children=tuple(sorted(children)),
        lock_holders=tuple(sorted(lock_holders)),
        version=stat.version,
    )


def refusal_message(state: PathState, owner: str, servers: str) -> str:
    whose = f"owner {state.owner!r}" if state.owner else "an unknown owner (no ownership stamp)"
    if state.looks_live:
        liveness = (
            f"It looks LIVE: a MetaServer holds {state.path}/lock right now "
            f"({len(state.lock_holders)} lock node(s))."
        )
    else:
        liveness = f"No MetaServer holds {state.path}/lock right now (it looks stale)."
    contents = ", ".join(state.children[:10]) or "nothing"
    return (
        f"ZooKeeper path {state.path} on {servers} belongs to {whose}, not to {owner!r}; "
        f"it holds: {contents}. {liveness} A MetaServer started on it would take over "
        "that cluster's state. Either pick another clusterName, or, if this stack should "
        "take the path over, set `adoptExistingPath: true` in the stack config "
        "`pegasus:zookeeper`, or, if it is stale, remove it with "
        f"`zkCli.sh -server {servers.split(',')[0]} deleteall {state.path}` and run again."
    )


def other_ensemble_message(state: PathState, old_servers: str, new_servers: str, claim_id: str) -> str:
    found = (f"holds {state.path} for another claim ({state.stamp.get('claim') if state.stamp else 'unstamped'})"
             if state.exists else f"has no {state.path}")
    return (
        f"pegasus:zookeeper.servers changed from {old_servers} to {new_servers}, but that ensemble {found}: "
        f"it is not the one that holds this cluster's state (claim {claim_id}). Nothing was restarted. List "
        "the servers of the ensemble the cluster runs on (one of them replaced is fine: the MetaServers then "
        "restart onto the new list one at a time); to move a cluster to another ensemble, deploy a new stack "
        "and move the tables."
    )


def claim_path(
    client: KazooClient, path: str, owner: str, claim_id: str, *, adopt: bool, servers: str = ""
) -> str:
    """Stamp `path` for (owner, claim_id); return what was done, or raise PathClaimRefused.

    Returns "created", "adopted" (our own stamp), "stamped" (empty, unstamped)
    or "taken over" (adopt=True). Writes are version-checked so two stacks
    racing for the same path cannot both win.
    """
    stamp = ownership_stamp(owner, claim_id)
    for _ in range(_CLAIM_ATTEMPTS):
        try:
            client.create(path, stamp, makepath=True)
            return "created"
        except NodeExistsError:
            pass
        state = inspect_path(client, path)
        if not state.exists:
            continue  # removed between our create and get: try creating again
        if state.owner == owner:
            outcome = "adopted"
        elif state.stamp is None and not state.children:
            outcome = "stamped"
        elif adopt:
            outcome = "taken over"
        else:
            raise PathClaimRefused(refusal_message(state, owner, servers or "ZooKeeper"))
        try:
            client.set(path, stamp, version=state.version)
            return outcome
        except (BadVersionError, NoNodeError):
            continue  # someone wrote in between: look again
        except NoAuthError as error:
            raise PathClaimRefused(
                f"ZooKeeper path {path} on {servers or 'ZooKeeper'} is {outcome} by this stack's claim, but its "
                f"ACL admits another stack's path guard only ({state.owner or 'unstamped'}): that stack, or a lost "
                f"state, restricted it. A ZooKeeper super user can open it again (`setAcl {path} "
                "world:anyone:cdrwa` in zkCli.sh); then run pulumi up again"
            ) from error
    raise PathClaimRefused(
        f"ZooKeeper path {path} kept changing while claiming it ({_CLAIM_ATTEMPTS} attempts): "
        "another deployment is probably working on the same clusterName; stop it and run again"
    )


GUARD_USER = "pegasus-path-guard"


def path_acl(writers: list[str], guard_secret: str) -> list[ACL]:
    """Anyone reads; the `writers` (ip scheme: an address or addr/bits) and the guard
    (digest scheme) change anything."""
    return ([ACL(Permissions.READ, Id("world", "anyone")),
             ACL(Permissions.ALL, Id("digest", make_digest_acl_credential(GUARD_USER, guard_secret)))]
            + [ACL(Permissions.ALL, Id("ip", w)) for w in writers])


def restrict_path(client: KazooClient, path: str, writers: list[str], guard_secret: str) -> str:
    """Sets the ACL of `path` (the client must have authenticated as the guard, or the
    path must still be open); returns what was done."""
    acl = path_acl(writers, guard_secret)
    try:
        current = client.get_acls(path)[0]
    except NoNodeError:
        return "absent"
    if sorted(map(str, current)) == sorted(map(str, acl)):
        return "unchanged"
    try:
        client.set_acls(path, acl)
    except NoAuthError as error:
        raise PathClaimRefused(
            f"cannot set the ACL of {path}: it admits neither this stack's path guard nor its address "
            f"({current}); another stack, or a lost state, restricted it. A ZooKeeper super user can reset it "
            f"(`setAcl {path} world:anyone:cdrwa` in zkCli.sh), then run pulumi up again"
        ) from error
    return "restricted"


def restamp_path(client: KazooClient, path: str, owner: str, claim_id: str) -> bool:
    """Rewrite the owner in our own stamp (e.g. after a stack rename); False if not ours."""
    try:
        data, stat = client.get(path)
    except NoNodeError:
        return False
    stamp = read_stamp(data)
    if not stamp or stamp.get("claim") != claim_id:
        return False
    client.set(path, ownership_stamp(owner, claim_id), version=stat.version)
    return True


def release_path(client: KazooClient, path: str, claim_id: str) -> str:
    """Remove `path` recursively if its stamp still carries `claim_id`.

    Returns "deleted", "absent", or "kept: <why>" when the path now belongs to
    someone else (never remove a path we do not hold).
    """
    try:
        data, _ = client.get(path)
    except NoNodeError:
        return "absent"
    stamp = read_stamp(data)
    if not stamp or stamp.get("claim") != claim_id:
        holder = f"owner {stamp['owner']!r} (claim {stamp.get('claim')})" if stamp else "an unstamped owner"
        return f"kept: {path} is now held by {holder}, not by claim {claim_id}"
    try:
        client.delete(path, recursive=True)
    except NotEmptyError as error:
        raise RuntimeError(
            f"could not delete {path}: nodes keep appearing under it ({error!r}); a MetaServer "
            "is probably still running on it: stop the cluster's MetaServers and run again"
        ) from error
    return "deleted"


# ---------------------------------------------------------------------------
# Reaching the ensemble: directly or through an SSH tunnel.


@contextlib.contextmanager
def zookeeper_session(
    servers: str, tunnel: Optional[Mapping[str, Any]], timeout_seconds: float
) -> Iterator[KazooClient]:
    """A started KazooClient; tunnel and client are closed when the block exits."""
    deadline = time.monotonic() + float(timeout_seconds)
    targets = parse_servers(servers)
    with contextlib.ExitStack() as cleanup:
        route = "directly"
        hosts = ",".join(f"{host}:{port}" for host, port in targets)
        if tunnel:
            spec = TunnelSpec.from_dict(tunnel)
            route = spec.describe()
            local = cleanup.enter_context(ssh_tunnel(spec, targets, timeout_seconds=timeout_seconds))
            hosts = ",".join(f"{host}:{port}" for host, port in local)
        client = KazooClient(
            hosts=hosts,
            timeout=10.0,
            connection_retry=KazooRetry(max_tries=-1, delay=0.5, max_delay=5.0),
        )
        try:
            client.start(timeout=max(1.0, deadline - time.monotonic()))
        except KazooTimeoutError as error:
            raise ZooKeeperUnreachable(
                f"ZooKeeper ensemble {servers} (reached {route}) did not answer within "
                f"{timeout_seconds}s. Check that ZooKeeper runs on those servers "
                "(`echo srvr | nc <ip> <port>` must answer), that the network path allows the "
                "client port, or raise timeoutSeconds if the ensemble is still booting."
            ) from error
        cleanup.callback(client.close)
        cleanup.callback(client.stop)
        yield client


# ---------------------------------------------------------------------------
# The dynamic provider.

_REPLACE_KEYS = ("cluster_name",)
# Changing these rewrites the state only; `owner` also re-stamps the node, new `writers`
# re-write its ACL, and new `servers` must reach the ensemble that holds this claim.
_UPDATE_KEYS = ("servers", "owner", "retain", "adopt", "tunnel", "timeout_seconds", "writers", "__provider")


def _settings(props: Mapping[str, Any]) -> dict:
    props = plain(dict(props))
    timeout = props.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS
    return {
        "cluster_name": props["cluster_name"],
        "servers": props["servers"],
        "owner": props.get("owner") or "",
        "retain": bool(props.get("retain")),
        "adopt": bool(props.get("adopt")),
        "tunnel": props.get("tunnel") or None,
        "timeout_seconds": int(timeout),
        # Older states have no writers: their path keeps the open ACL until an update sets it.
        "writers": sorted(set(props.get("writers") or [])),
    }


def _authenticate(client: KazooClient, secret: str | None) -> None:
    if secret:
        client.add_auth("digest", f"{GUARD_USER}:{secret}")


class ZooKeeperPathGuardProvider(pulumi.dynamic.ResourceProvider):
    """create/diff/update/delete of the claim on /pegasus/<clusterName>.

    Holds no state of its own: everything comes from the resource's properties,
    which the outputs echo so that delete (given outputs only) has them.
    """

    def check(self, _olds: dict, news: dict) -> pulumi.dynamic.CheckResult:
        failures = []
        values = plain(dict(news))
        for key, validate in (("cluster_name", cluster_root), ("servers", parse_servers)):
            value = values.get(key)
            if isinstance(value, str) and value != rpc.UNKNOWN:
                try:
                    validate(value)
                except ValueError as error:
                    failures.append(pulumi.dynamic.CheckFailure(key, str(error)))
        timeout = values.get("timeout_seconds")
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout <= 0:
            failures.append(pulumi.dynamic.CheckFailure("timeout_seconds", f"must be positive, got {timeout}"))
        tunnel = values.get("tunnel")
        if isinstance(tunnel, Mapping) and rpc.UNKNOWN not in json.dumps(tunnel, default=str):
            try:
                TunnelSpec.from_dict(tunnel)
            except ValueError as error:
                failures.append(pulumi.dynamic.CheckFailure("tunnel", str(error)))
        return pulumi.dynamic.CheckResult(news, failures)

    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        settings = _settings(props)
        path = cluster_root(settings["cluster_name"])
        claim_id = uuid.uuid4().hex
        secret = secrets.token_urlsafe(24) if settings["writers"] else None
        with zookeeper_session(settings["servers"], settings["tunnel"], settings["timeout_seconds"]) as client:
            _authenticate(client, secret)
            outcome = claim_path(
                client, path, settings["owner"], claim_id, adopt=settings["adopt"], servers=settings["servers"]
            )
            if secret:
                restrict_path(client, path, settings["writers"], secret)
        if outcome == "taken over":
            pulumi.log.warn(f"took over ZooKeeper path {path} (adoptExistingPath is set)")
        return pulumi.dynamic.CreateResult(claim_id, {**settings, "path": path, "claim_id": claim_id,
                                                      "guard_secret": secret})

    def diff(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.DiffResult:
        olds, news = plain(dict(olds)), plain(dict(news))
        replaces = [key for key in _REPLACE_KEYS if olds.get(key) != news.get(key)]
        updates = [key for key in _UPDATE_KEYS if olds.get(key) != news.get(key)]
        return pulumi.dynamic.DiffResult(
            changes=bool(replaces or updates),
            replaces=replaces,
            delete_before_replace=False,
        )

    def update(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.UpdateResult:
        old, new = _settings(olds), _settings(news)
        path = olds.get("path") or cluster_root(new["cluster_name"])
        claim_id = olds.get("claim_id") or _id
        if new["servers"] != old["servers"]:
            # A server of the ensemble replaced, or the list written another way: the same
            # ensemble, holding this claim. Another ensemble would give the MetaServers an
            # empty cluster root as they restart onto it (and a replacement of this resource
            # would remove the path from the old one): refused before anything restarts.
            with zookeeper_session(new["servers"], new["tunnel"], new["timeout_seconds"]) as client:
                state = inspect_path(client, path)
            if not state.stamp or state.stamp.get("claim") != claim_id:
                raise PathClaimRefused(other_ensemble_message(state, old["servers"], new["servers"], claim_id))
        secret = olds.get("guard_secret") or (secrets.token_urlsafe(24) if new["writers"] else None)
        access_changed = new["writers"] != old["writers"] or secret != olds.get("guard_secret")
        if new["owner"] != old["owner"] or access_changed:
            with zookeeper_session(new["servers"], new["tunnel"], new["timeout_seconds"]) as client:
                _authenticate(client, olds.get("guard_secret"))
                if not restamp_path(client, path, new["owner"], claim_id):
                    pulumi.log.warn(f"{path} is no longer ours (claim {claim_id}); its stamp and ACL were left "
                                    "as they are")
                elif access_changed and secret:
                    restrict_path(client, path, new["writers"], secret)
        return pulumi.dynamic.UpdateResult({**new, "path": path, "claim_id": claim_id, "guard_secret": secret})

    def delete(self, _id: str, props: dict) -> None:
        settings = _settings(props)
        path = props.get("path") or cluster_root(settings["cluster_name"])
        if settings["retain"]:
            pulumi.log.info(f"keeping ZooKeeper path {path} on {settings['servers']} (retain is set)")
            return
        claim_id = props.get("claim_id") or _id
        try:
            with zookeeper_session(settings["servers"], settings["tunnel"], settings["timeout_seconds"]) as client:
                _authenticate(client, props.get("guard_secret"))
                outcome = release_path(client, path, claim_id)
        except ZooKeeperUnreachable as error:
            raise ZooKeeperUnreachable(
                f"{error} To finish the destroy without removing {path} (e.g. the ensemble is "
                "gone for good), remove this resource from the state with `pulumi state delete <urn>`."
            ) from error
        if outcome.startswith("kept"):
            pulumi.log.warn(outcome)


# ---------------------------------------------------------------------------
# The resource.


@dataclass
class ZooKeeperPathGuardArgs:
    cluster_name: pulumi.Input[str]
    servers: pulumi.Input[str]  # "ip:port,ip:port"
    owner: pulumi.Input[str]  # default_owner_id()
    retain: pulumi.Input[bool] = False
    adopt: pulumi.Input[bool] = False
    # None, or {host, user, port, private_key, bastion: {host, user, port} | None}
    tunnel: Optional[pulumi.Input[Mapping[str, Any]]] = None
    timeout_seconds: pulumi.Input[int] = DEFAULT_TIMEOUT_SECONDS
    # Who may write the path beside the guard itself (ip scheme): the MetaServers' hosts' addresses.
    writers: Optional[pulumi.Input[list]] = None


def default_owner_id() -> str:
    """'<organization>/<project>/<stack>' of the running program ('' organization if none)."""
    try:
        organization = pulumi.get_organization() or ""
    except Exception:  # older SDKs or engines without organizations
        organization = ""
    return f"{organization}/{pulumi.get_project()}/{pulumi.get_stack()}"


class ZooKeeperPathGuard(pulumi.dynamic.Resource, module="pegasus", name="ZooKeeperPathGuard"):
    """Claims /pegasus/<clusterName> for this stack before MetaServers start.

    Make the MetaServers depend on it, and it on the ZooKeeper ensemble being
    ready, so destroy stops the MetaServers before the path is removed.
    """

    path: pulumi.Output[str]
    owner: pulumi.Output[str]

    def __init__(
        self, name: str, args: ZooKeeperPathGuardArgs, opts: Optional[pulumi.ResourceOptions] = None
    ) -> None:
        props = {
            "cluster_name": args.cluster_name,
            "servers": args.servers,
            "owner": args.owner,
            "retain": args.retain,
            "adopt": args.adopt,
            # The whole tunnel (private key included) is a secret in inputs and outputs.
            "tunnel": pulumi.Output.secret(args.tunnel) if args.tunnel is not None else None,
            "timeout_seconds": args.timeout_seconds,
            "writers": args.writers,
            "path": None,
            "claim_id": None,
            "guard_secret": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["tunnel", "guard_secret"]))
        super().__init__(ZooKeeperPathGuardProvider(), name, props, opts)
