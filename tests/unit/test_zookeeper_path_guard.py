"""The ZooKeeper path guard against a real ZooKeeper (and a real sshd for the tunnel).

ZooKeeper comes from the shared session fixture `zookeeper_server`
(tests/conftest.py); every test works under its own cluster name, so tests do
not see each other's nodes. The SSH tests start their own sshd (Debian package
openssh-server) on 127.0.0.1 with generated keys.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pulumi
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id, Permissions
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime._serialization import _serialize

from components.ssh import tunnel as ssh_tunnel_module
from components.ssh.tunnel import SshTunnelError, TunnelSpec, ssh_tunnel
from components.operations.zookeeper_path_guard import (
    PathClaimRefused,
    ZooKeeperPathGuard,
    ZooKeeperPathGuardArgs,
    ZooKeeperPathGuardProvider,
    ZooKeeperUnreachable,
    cluster_root,
    ownership_stamp,
    read_stamp,
    zookeeper_session,
)
from tests.support.ssh_server import SshServer
from tests.support.recording_mocks import RecordingMocks
from tests.support.zookeeper_server import free_port

PROJECT_DIR = Path(__file__).resolve().parents[2]
OWNER = "acme/pegasus/prod"
OTHER_OWNER = "acme/pegasus/staging"


# ---------------------------------------------------------------------------
# Helpers


@pytest.fixture()
def zk(zookeeper_client):
    return zookeeper_client


@pytest.fixture()
def cluster_name():
    return f"c-{uuid.uuid4().hex[:10]}"


def guard_props(cluster_name: str, servers: str, **overrides) -> dict:
    """Properties as the engine hands them to the provider (plain values)."""
    props = {
        "cluster_name": cluster_name,
        "servers": servers,
        "owner": OWNER,
        "retain": False,
        "adopt": False,
        "tunnel": None,
        "timeout_seconds": 30,
        "path": None,
        "claim_id": None,
    }
    props.update(overrides)
    return props


def create(props: dict):
    return ZooKeeperPathGuardProvider().create(props)


def delete(result, props: dict) -> None:
    """Delete the way the engine does: with the outputs of create."""
    ZooKeeperPathGuardProvider().delete(result.id, {**props, **result.outs})


def stamp_of(zk: KazooClient, path: str):
    data, _ = zk.get(path)
    return read_stamp(data)


# ---------------------------------------------------------------------------
# create


def test_create_on_absent_path_creates_node_with_owner_stamp(zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    assert not zk.exists(path)

    result = create(guard_props(cluster_name, zookeeper_server.hosts))

    assert zk.exists(path)
    stamp = stamp_of(zk, path)
    assert stamp == {"owner": OWNER, "claim": result.id}
    assert result.outs["path"] == path
    assert result.outs["owner"] == OWNER


def test_create_adopts_path_stamped_by_same_owner_and_keeps_its_contents(zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    zk.create(path, ownership_stamp(OWNER, "earlier-claim"), makepath=True)
    zk.create(f"{path}/apps/1", b"table", makepath=True)

    result = create(guard_props(cluster_name, zookeeper_server.hosts))

    assert stamp_of(zk, path) == {"owner": OWNER, "claim": result.id}
    assert zk.get(f"{path}/apps/1")[0] == b"table"


def test_create_stamps_an_empty_unstamped_path(zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    zk.create(path, b"", makepath=True)

    result = create(guard_props(cluster_name, zookeeper_server.hosts))

    assert stamp_of(zk, path) == {"owner": OWNER, "claim": result.id}


def test_create_refuses_a_path_of_another_owner_and_says_how_to_fix_it(zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    foreign = ownership_stamp(OTHER_OWNER, "their-claim")
    zk.create(path, foreign, makepath=True)
    zk.create(f"{path}/apps", b"", makepath=True)

    with pytest.raises(PathClaimRefused) as refused:
        create(guard_props(cluster_name, zookeeper_server.hosts))

    message = str(refused.value)
    assert path in message
    assert OTHER_OWNER in message
    assert "stale" in message and "LIVE" not in message
    assert "another clusterName" in message
    assert "adoptExistingPath: true" in message and "pegasus:zookeeper" in message
    assert f"zkCli.sh -server {zookeeper_server.hosts} deleteall {path}" in message
    assert zk.get(path)[0] == foreign, "a refused claim must not touch the stamp"


def test_create_refuses_an_unstamped_path_with_children_as_unknown_owner(zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    zk.create(f"{path}/apps", b"", makepath=True)

    with pytest.raises(PathClaimRefused) as refused:
        create(guard_props(cluster_name, zookeeper_server.hosts))

    assert "unknown owner" in str(refused.value)
    assert zk.get(path)[0] == b""


def test_refusal_says_live_when_a_metaserver_holds_the_lock(zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    zk.create(path, ownership_stamp(OTHER_OWNER, "their-claim"), makepath=True)
    zk.create(f"{path}/lock", b"", makepath=True)
    meta = KazooClient(hosts=zookeeper_server.hosts)  # stands in for a running MetaServer
    meta.start(timeout=30)
    try:
        meta.create(f"{path}/lock/meta-", b"10.0.0.5:34601", ephemeral=True, sequence=True)

        with pytest.raises(PathClaimRefused) as refused:
            create(guard_props(cluster_name, zookeeper_server.hosts))

        assert "LIVE" in str(refused.value)
        assert f"{path}/lock" in str(refused.value)
    finally:
        meta.stop()
        meta.close()


def test_adopt_takes_over_a_path_of_another_owner(zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    zk.create(path, ownership_stamp(OTHER_OWNER, "their-claim"), makepath=True)
    zk.create(f"{path}/apps/1", b"table", makepath=True)

    result = create(guard_props(cluster_name, zookeeper_server.hosts, adopt=True))

    assert stamp_of(zk, path) == {"owner": OWNER, "claim": result.id}
    assert zk.get(f"{path}/apps/1")[0] == b"table", "taking over keeps the cluster state"


def test_create_says_which_servers_never_answered():
    servers = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()

    with pytest.raises(ZooKeeperUnreachable) as unreachable:
        create(guard_props("c-unreachable", servers, timeout_seconds=2))

    assert servers in str(unreachable.value)
    assert "did not answer within 2s" in str(unreachable.value)
    assert time.monotonic() - started < 20


# ---------------------------------------------------------------------------
# delete


def test_delete_removes_the_cluster_subtree_and_nothing_beside_it(zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    props = guard_props(cluster_name, zookeeper_server.hosts)
    result = create(props)
    zk.create(f"{path}/apps/1/0", b"partition", makepath=True)
    zk.create(f"{path}/lock", b"", makepath=True)
    neighbours = [
        f"/pegasus/other-{cluster_name}/apps",  # another cluster
        f"/pegasus/{cluster_name}-suffix",  # a name that shares our prefix
        f"/pegasus-{cluster_name}",  # a root node that shares the prefix of /pegasus
    ]
    for node in neighbours:
        zk.create(node, b"keep", makepath=True)

    delete(result, props)

    assert not zk.exists(path)
    for node in neighbours:
        assert zk.get(node)[0] == b"keep", f"{node} must survive"
    assert zk.exists("/pegasus") and zk.exists("/zookeeper")


def test_delete_with_retain_keeps_the_path(zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    props = guard_props(cluster_name, zookeeper_server.hosts, retain=True)
    result = create(props)
    zk.create(f"{path}/apps", b"", makepath=True)

    delete(result, props)

    assert zk.exists(f"{path}/apps")


def test_delete_of_a_missing_path_is_fine(zookeeper_server, zk, cluster_name):
    props = guard_props(cluster_name, zookeeper_server.hosts)
    result = create(props)
    zk.delete(f"/pegasus/{cluster_name}", recursive=True)

    delete(result, props)  # no error

    assert not zk.exists(f"/pegasus/{cluster_name}")


def test_delete_after_a_replacement_keeps_the_path_the_new_claim_adopted(zookeeper_server, zk, cluster_name):
    """Create-before-delete replacement: the old resource's delete runs last."""
    path = f"/pegasus/{cluster_name}"
    old_props = guard_props(cluster_name, zookeeper_server.hosts)
    old = create(old_props)
    new_props = guard_props(cluster_name, zookeeper_server.hosts, timeout_seconds=31)
    new = create(new_props)  # same owner: adopted
    zk.create(f"{path}/apps", b"", makepath=True)

    delete(old, old_props)
    assert zk.exists(f"{path}/apps"), "the old claim must not delete what the new one holds"

    delete(new, new_props)
    assert not zk.exists(path)


def test_delete_keeps_a_path_another_stack_took_over(zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    props = guard_props(cluster_name, zookeeper_server.hosts)
    ours = create(props)
    create(guard_props(cluster_name, zookeeper_server.hosts, owner=OTHER_OWNER, adopt=True))

    delete(ours, props)

    assert stamp_of(zk, path)["owner"] == OTHER_OWNER


# ---------------------------------------------------------------------------
# diff, update, check


def outputs_of(cluster_name: str, **overrides) -> dict:
    props = guard_props(cluster_name, "10.0.0.1:2181,10.0.0.2:2181", **overrides)
    return {**props, "path": f"/pegasus/{cluster_name}", "claim_id": "abc"}


def test_diff_replaces_on_cluster_name_and_updates_on_servers_change():
    provider = ZooKeeperPathGuardProvider()
    olds = outputs_of("c1")

    renamed = provider.diff("abc", olds, guard_props("c2", olds["servers"]))
    moved = provider.diff("abc", olds, guard_props("c1", "10.0.0.9:2181"))

    assert renamed.changes and renamed.replaces == ["cluster_name"]
    assert renamed.delete_before_replace is False
    # A replacement would claim the path anew on the new list, then release it on the old one.
    assert moved.changes and moved.replaces == []


def test_diff_updates_in_place_on_retain_adopt_tunnel_or_timeout_change():
    provider = ZooKeeperPathGuardProvider()
    olds = outputs_of("c1")
    tunnel = {"host": "1.2.3.4", "user": "admin", "port": 22, "private_key": "k", "bastion": None}
    for change in ({"retain": True}, {"adopt": True}, {"tunnel": tunnel}, {"timeout_seconds": 60}):
        result = provider.diff("abc", olds, guard_props("c1", olds["servers"], **change))
        assert result.changes, change
        assert result.replaces == [], change


def test_diff_reports_no_change_when_inputs_match_outputs():
    olds = outputs_of("c1")
    news = guard_props("c1", olds["servers"], timeout_seconds=30.0)  # numbers come back as floats
    assert ZooKeeperPathGuardProvider().diff("abc", olds, news).changes is False


def test_update_changes_state_without_touching_zookeeper(zk, zookeeper_server, cluster_name):
    path = f"/pegasus/{cluster_name}"
    props = guard_props(cluster_name, zookeeper_server.hosts)
    created = create(props)
    before = zk.get(path)[1].mzxid

    updated = ZooKeeperPathGuardProvider().update(
        created.id, created.outs, guard_props(cluster_name, zookeeper_server.hosts, retain=True, adopt=True)
    )

    assert updated.outs["retain"] is True and updated.outs["path"] == path
    assert updated.outs["claim_id"] == created.id
    assert zk.get(path)[1].mzxid == before


def test_new_servers_of_the_same_ensemble_keep_the_claim(zk, zookeeper_server, cluster_name):
    # One ensemble listed another way (as when one of its servers was replaced).
    created = create(guard_props(cluster_name, zookeeper_server.hosts))
    same = zookeeper_server.hosts.replace("127.0.0.1", "localhost")

    updated = ZooKeeperPathGuardProvider().update(created.id, created.outs, guard_props(cluster_name, same))

    assert updated.outs["servers"] == same and updated.outs["claim_id"] == created.id
    assert stamp_of(zk, f"/pegasus/{cluster_name}") == {"owner": OWNER, "claim": created.id}


@pytest.mark.parametrize("found", ["no path", "another claim"])
def test_new_servers_without_this_claim_are_another_ensemble_and_refused(zk, zookeeper_server, cluster_name, found):
    path = f"/pegasus/{cluster_name}"
    created = create(guard_props(cluster_name, zookeeper_server.hosts))
    if found == "no path":
        zk.delete(path, recursive=True)
    else:
        zk.set(path, ownership_stamp(OWNER, "the-claim-of-another-deployment"))
    other = zookeeper_server.hosts.replace("127.0.0.1", "localhost")

    with pytest.raises(PathClaimRefused) as refused:
        ZooKeeperPathGuardProvider().update(created.id, created.outs, guard_props(cluster_name, other))

    message = str(refused.value)
    assert "pegasus:zookeeper.servers changed from" in message and "Nothing was restarted" in message
    assert ("has no " + path if found == "no path" else "another claim") in message
    assert not zk.exists(path) if found == "no path" else zk.exists(path)


def test_update_of_owner_restamps_our_path(zk, zookeeper_server, cluster_name):
    path = f"/pegasus/{cluster_name}"
    created = create(guard_props(cluster_name, zookeeper_server.hosts))

    ZooKeeperPathGuardProvider().update(
        created.id, created.outs, guard_props(cluster_name, zookeeper_server.hosts, owner="acme/pegasus/renamed")
    )

    assert stamp_of(zk, path) == {"owner": "acme/pegasus/renamed", "claim": created.id}


# ---------------------------------------------------------------------------
# the path's ACL (issue 19: the path was created open to anyone)


def anonymous(zookeeper_server) -> KazooClient:
    client = KazooClient(hosts=zookeeper_server.hosts)
    client.start(timeout=30)
    return client


def test_the_path_is_written_only_by_its_writers_and_its_guard(zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    props = guard_props(cluster_name, zookeeper_server.hosts, writers=["10.9.9.9", "10.8.0.0/16"])
    created = create(props)
    acl = {(str(a.id.scheme), str(a.id.id), a.perms) for a in zk.get_acls(path)[0]}
    assert ("world", "anyone", Permissions.READ) in acl  # anyone may read (no write, no ACL change)
    assert {("ip", "10.9.9.9", Permissions.ALL), ("ip", "10.8.0.0/16", Permissions.ALL)} <= acl
    assert [a for a in acl if a[0] == "digest" and a[1].startswith("pegasus-path-guard:")]
    assert len(acl) == 4 and created.outs["guard_secret"]
    # This test's own client comes from 127.0.0.1: it reads, and may change nothing.
    other = anonymous(zookeeper_server)
    try:
        assert stamp_of(other, path)["claim"] == created.id
        with pytest.raises(NoAuthError):
            other.create(f"{path}/apps", b"")
        with pytest.raises(NoAuthError):
            other.set(path, b"mine now")
        with pytest.raises(NoAuthError):
            other.set_acls(path, [ACL(Permissions.ALL, Id("world", "anyone"))])
    finally:
        other.stop()
        other.close()
    # A MetaServer at one of the writers' addresses creates its nodes below (here: 127.0.0.1 as a writer).
    ZooKeeperPathGuardProvider().update(created.id, created.outs,
                                        guard_props(cluster_name, zookeeper_server.hosts, writers=["127.0.0.1"]))
    meta = anonymous(zookeeper_server)
    try:
        meta.create(f"{path}/lock", b"")
    finally:
        meta.stop()
        meta.close()
    # The guard itself (by its secret, from wherever it connects) still removes it all at destroy.
    delete(created, props)
    assert not zk.exists(path)


def test_a_stack_deployed_before_gets_the_acl_at_its_next_update(zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    old = create(guard_props(cluster_name, zookeeper_server.hosts))  # no writers: as before this version
    assert zk.get_acls(path)[0] == [ACL(Permissions.ALL, Id("world", "anyone"))]
    news = guard_props(cluster_name, zookeeper_server.hosts, writers=["10.9.9.9"])
    assert ZooKeeperPathGuardProvider().diff(old.id, old.outs, news).changes
    updated = ZooKeeperPathGuardProvider().update(old.id, old.outs, news)
    assert updated.outs["guard_secret"] and ("ip", "10.9.9.9") in {
        (a.id.scheme, a.id.id) for a in zk.get_acls(path)[0]}
    ZooKeeperPathGuardProvider().delete(old.id, {**news, **updated.outs})
    assert not zk.exists(path)


def test_another_stack_cannot_take_over_a_restricted_path_even_with_adopt(zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    first = create(guard_props(cluster_name, zookeeper_server.hosts, writers=["10.9.9.9"]))
    with pytest.raises(PathClaimRefused) as refused:
        create(guard_props(cluster_name, zookeeper_server.hosts, owner="acme/other/prod", adopt=True,
                           writers=["10.9.9.9"]))
    assert "ACL admits another stack's path guard" in str(refused.value) and "setAcl" in str(refused.value)
    assert stamp_of(zk, path)["claim"] == first.id
    delete(first, guard_props(cluster_name, zookeeper_server.hosts))


def test_check_reports_bad_names_servers_and_tunnels_by_property():
    news = guard_props("bad/name", "10.0.0.1", tunnel={"host": "h", "user": "u", "private_key": "/path/key"})
    failures = {f.property: f.reason for f in ZooKeeperPathGuardProvider().check({}, news).failures}

    assert set(failures) == {"cluster_name", "servers", "tunnel"}
    assert "bad/name" in failures["cluster_name"]
    assert "'10.0.0.1'" in failures["servers"]
    assert "private_key" in failures["tunnel"]


def test_check_accepts_good_and_unknown_values():
    news = guard_props("c1", rpc.UNKNOWN)
    assert ZooKeeperPathGuardProvider().check({}, news).failures == []


def test_cluster_root_rejects_names_that_would_escape_pegasus():
    assert cluster_root("prod-1") == "/pegasus/prod-1"
    for bad in ("", "..", "a/b", "../zookeeper", " x", "prod\n"):  # a whole match: no trailing newline
        with pytest.raises(ValueError):
            cluster_root(bad)


# ---------------------------------------------------------------------------
# Pickling with the SDK's own serializer


def test_provider_serializes_by_reference_to_this_module():
    serialized, contains_secrets = _serialize(True, serialize_provider, ZooKeeperPathGuardProvider())
    raw = base64.b64decode(serialized)

    assert contains_secrets is False
    assert b"components.operations.zookeeper_path_guard" in raw and b"ZooKeeperPathGuardProvider" in raw
    # Deterministic: the same provider serializes the same way (no diff noise).
    assert serialize_provider(ZooKeeperPathGuardProvider()) == serialized


def test_unpickled_provider_deletes_in_a_fresh_interpreter_like_the_dynamic_provider(
    zookeeper_server, zk, cluster_name
):
    """The engine's dynamic provider process (python -m pulumi.dynamic, cwd = project) unpickles
    the provider from the state and calls delete with the outputs."""
    props = guard_props(cluster_name, zookeeper_server.hosts)
    result = create(props)
    serialized = serialize_provider(ZooKeeperPathGuardProvider())
    outputs = {**props, **result.outs, "__provider": serialized}
    script = textwrap.dedent(
        """
        import base64, json, sys
        import dill
        from pulumi.runtime._serialization import _deserialize
        outputs = json.loads(sys.stdin.read())
        provider = _deserialize(lambda: dill.loads(base64.b64decode(outputs["__provider"])))
        provider.delete(outputs["claim_id"], outputs)
        print(type(provider).__module__, type(provider).__name__)
        """
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    finished = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(outputs),
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split() == ["components.operations.zookeeper_path_guard", "ZooKeeperPathGuardProvider"]
    assert not zk.exists(f"/pegasus/{cluster_name}")


# ---------------------------------------------------------------------------
# The resource registers the tunnel (private key included) as a secret


@pulumi.runtime.test
def test_resource_registers_tunnel_and_provider_as_secrets():
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="pegasus", stack="test", preview=False)
    tunnel = {"host": "1.2.3.4", "user": "admin", "port": 22, "private_key": "-----BEGIN KEY-----", "bastion": None}
    guard = ZooKeeperPathGuard(
        "zk-path",
        ZooKeeperPathGuardArgs(cluster_name="c1", servers="10.0.0.1:2181", owner=OWNER, tunnel=tunnel),
    )

    def check(values):
        path, owner, urn = values
        assert owner == OWNER
        registered = [args for args in mocks.registered if args.name == "zk-path"]
        assert len(registered) == 1
        inputs = registered[0].inputs
        assert registered[0].typ == "pulumi-python:dynamic/pegasus:ZooKeeperPathGuard"
        assert rpc.is_rpc_secret(inputs["tunnel"])
        assert rpc.unwrap_rpc_secret(inputs["tunnel"])["private_key"] == "-----BEGIN KEY-----"
        assert rpc.is_rpc_secret(inputs["__provider"])
        assert inputs["cluster_name"] == "c1" and not rpc.is_rpc_secret(inputs["cluster_name"])

    return pulumi.Output.all(guard.path, guard.owner, guard.urn).apply(check)


# ---------------------------------------------------------------------------
# SSH tunnel through a real sshd


def test_tunnel_forwards_to_zookeeper_and_cleans_up(sshd, zookeeper_server, monkeypatch):
    made = []
    real_mkdtemp = ssh_tunnel_module.tempfile.mkdtemp
    monkeypatch.setattr(
        ssh_tunnel_module.tempfile, "mkdtemp", lambda **kw: made.append(real_mkdtemp(**kw)) or made[-1]
    )
    target = ("127.0.0.1", zookeeper_server.port)

    with ssh_tunnel(TunnelSpec.from_dict(sshd.tunnel()), [target], timeout_seconds=60) as local:
        (local_host, local_port), = local
        assert local_host == "127.0.0.1" and local_port != zookeeper_server.port
        key_file = Path(made[0]) / "id_key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        with socket.create_connection((local_host, local_port), timeout=5) as sock:
            sock.sendall(b"srvr")
            assert b"Zookeeper version" in sock.recv(4096)

    assert not Path(made[0]).exists(), "the key and known_hosts must be removed"
    with pytest.raises(OSError):
        socket.create_connection((local_host, local_port), timeout=2).close()


def test_guard_claims_and_releases_through_the_tunnel(sshd, zookeeper_server, zk, cluster_name):
    path = f"/pegasus/{cluster_name}"
    props = guard_props(cluster_name, zookeeper_server.hosts, tunnel=sshd.tunnel())

    result = create(props)
    assert stamp_of(zk, path) == {"owner": OWNER, "claim": result.id}

    delete(result, props)
    assert not zk.exists(path)


def test_guard_goes_through_a_bastion(sshd, zookeeper_server, zk, cluster_name):
    # The same sshd plays the bastion (127.0.0.1) and the forwarding host (127.0.0.2):
    # ssh refuses a jump host equal to the destination.
    bastion = {"host": "127.0.0.1", "user": sshd.user, "port": sshd.port}
    props = guard_props(
        cluster_name, zookeeper_server.hosts, tunnel=sshd.tunnel(host="127.0.0.2", bastion=bastion)
    )

    logins_before = sshd.accepted_logins()

    result = create(props)

    assert stamp_of(zk, f"/pegasus/{cluster_name}")["claim"] == result.id
    assert sshd.accepted_logins() - logins_before == 2, "one login on the bastion, one on the host"
    delete(result, props)


def test_tunnel_waits_for_a_host_that_is_still_booting(sshd, zookeeper_server, tmp_path):
    late = SshServer(tmp_path / "late").prepare()
    late.client_key_path = sshd.client_key_path  # authorize the same client key
    (late.work_dir / "authorized_keys").write_text((sshd.work_dir / "client_key.pub").read_text())
    starter = threading.Timer(4.0, late.start, kwargs={"wait": False})
    starter.start()
    try:
        started = time.monotonic()
        with zookeeper_session(zookeeper_server.hosts, late.tunnel(), timeout_seconds=60) as client:
            assert client.exists("/zookeeper")
        assert time.monotonic() - started >= 3.5
    finally:
        starter.cancel()
        starter.join()
        late.stop()


def test_tunnel_with_an_unauthorized_key_fails_with_the_ssh_error(sshd, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    spec = TunnelSpec.from_dict(sshd.tunnel(private_key=(tmp_path / "stranger").read_text()))

    with pytest.raises(SshTunnelError) as failed:
        with ssh_tunnel(spec, [("127.0.0.1", 2181)], timeout_seconds=5):
            pass

    assert f"@127.0.0.1:{sshd.port}" in str(failed.value)
    assert "Permission denied" in str(failed.value)


def test_tunnel_spec_errors_name_the_key():
    with pytest.raises(ValueError, match=r"tunnel\.bastion\.user"):
        TunnelSpec.from_dict(
            {"host": "h", "user": "u", "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----", "bastion": {"host": "b"}}
        )
    assert "PRIVATE KEY" not in repr(
        TunnelSpec.from_dict({"host": "h", "user": "u", "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----"})
    )
