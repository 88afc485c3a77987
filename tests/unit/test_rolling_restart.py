"""The cluster's rolling restart: its order, and the provider driving staged scripts over a real sshd.

The "servers" are two addresses of one sshd (127.0.0.1 and 127.0.0.2), and
the staged restart scripts are doubles (tests/support/staged_scripts.py); the
real script is tested in test_host_scripts.py and, on real machines, in the
end-to-end suite.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pulumi
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime._serialization import _serialize

from components.ssh import session as ssh_session
from components.operations.rolling_restart import (
    Roll,
    RollFailed,
    RollingRestart,
    RollingRestartArgs,
    RollingRestartProvider,
    changed_servers,
    restart_steps,
    roll_position,
)
from components.ssh.known_hosts import Pin
from components.ssh.session import SSH_FAILED, SshSession
from tests.support.recording_mocks import RecordingMocks
from tests.support.staged_scripts import StagedScripts
from tests.support.zookeeper_server import free_port

# Two addresses of one sshd; a role runs at most once per address, so a run names its server.
HOSTS = {"replica-0": "127.0.0.1", "replica-1": "127.0.0.2", "meta-0": "127.0.0.1", "meta-1": "127.0.0.2"}
KEYS = ["replica-0/replica", "replica-1/replica", "meta-0/meta", "meta-1/meta", "meta-0/collector"]


# ---------------------------------------------------------------------------
# Order


def test_roll_order_is_replicas_then_metas_then_the_collector_by_index():
    keys = ["meta-0/collector", "meta-1/meta", "replica-10/replica", "meta-0/meta", "replica-2/replica"]
    assert sorted(keys, key=roll_position) == [
        "replica-2/replica", "replica-10/replica", "meta-0/meta", "meta-1/meta", "meta-0/collector"]


def test_only_servers_whose_record_changed_restart_not_new_or_removed_ones():
    old = {"replica-0/replica": "a", "replica-1/replica": "a", "replica-3/replica": "a", "meta-0/meta": "m"}
    new = {"replica-1/replica": "b", "replica-0/replica": "a", "replica-4/replica": "b", "meta-0/meta": "m2"}
    assert changed_servers(old, new) == ["replica-1/replica", "meta-0/meta"]


def test_the_metaservers_get_a_deferred_pass_after_the_last_of_them_before_the_collector():
    assert restart_steps(["meta-0/collector", "meta-1/meta", "replica-1/replica", "meta-0/meta"]) == [
        ("replica-1/replica", "roll"), ("meta-0/meta", "roll"), ("meta-1/meta", "roll"),
        ("meta-0/meta", "deferred"), ("meta-1/meta", "deferred"), ("meta-0/collector", "roll")]
    assert restart_steps(["replica-0/replica"]) == [("replica-0/replica", "roll")]


# ---------------------------------------------------------------------------
# The provider over a real sshd


def run_of(key: str, phase: str) -> str:
    host, _, role = key.partition("/")
    return f"{HOSTS[host]} {role} {phase}"


@pytest.fixture()
def staged(tmp_path):
    return StagedScripts(tmp_path, HOSTS)


def props(sshd, staged: StagedScripts, records: dict[str, str], **access) -> dict:
    return {"restart_records": records, "hosts": HOSTS, "staged_dir": str(staged.dir),
            "access": {"user": sshd.user, "port": sshd.port, "private_key": sshd.client_key_path.read_text(),
                       "bastion": None, "known_hosts": [sshd.pin("127.0.0.1"), sshd.pin("127.0.0.2")], **access}}


def records(value: str = "v1", **changed: str) -> dict[str, str]:
    return {key: changed.get(key.replace("/", "_").replace("-", "_"), value) for key in KEYS}


def test_update_restarts_the_changed_servers_one_at_a_time_in_pegasus_order(sshd, staged):
    old = props(sshd, staged, records())
    new = props(sshd, staged, records(meta_0_collector="v2", replica_1_replica="v2", meta_1_meta="v2",
                                      meta_0_meta="v2"))

    result = RollingRestartProvider().update("id", {**old, "restarted": []}, new)

    assert staged.runs() == [run_of("replica-1/replica", "roll"), run_of("meta-0/meta", "roll"),
                             run_of("meta-1/meta", "roll"), run_of("meta-0/meta", "deferred"),
                             run_of("meta-1/meta", "deferred"), run_of("meta-0/collector", "roll")]
    assert result.outs["restarted"] == ["replica-1/replica", "meta-0/meta", "meta-1/meta", "meta-0/collector"]
    assert result.outs["restart_records"] == new["restart_records"]


def test_a_failed_restart_stops_the_roll_and_says_where_it_stopped(sshd, staged):
    old = props(sshd, staged, records())
    new = props(sshd, staged, records("v2"))
    staged.exit_with("replica-1/replica", "roll", 1)

    with pytest.raises(RollFailed) as failure:
        RollingRestartProvider().update("id", old, new)

    assert staged.runs() == [run_of("replica-0/replica", "roll"), run_of("replica-1/replica", "roll")]
    message = str(failure.value)
    assert "replica-1/replica did not restart healthy" in message
    assert "Restarted before it: replica-0/replica" in message
    assert "not restarted: meta-0/meta, meta-1/meta, meta-0/collector" in message
    assert "replica roll on 127.0.0.2: output line" in message


def test_a_new_key_or_address_alone_restarts_nothing_and_opens_no_connection(sshd, staged):
    old = props(sshd, staged, records(), private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nold\n")
    new = props(sshd, staged, records())
    logins = sshd.accepted_logins()

    result = RollingRestartProvider().update("id", old, new)

    assert RollingRestartProvider().diff("id", old, new).changes is True
    assert result.outs["restarted"] == [] and staged.runs() == []
    assert sshd.accepted_logins() == logins


def test_create_restarts_only_servers_whose_probe_says_so_then_checks_every_server(sshd, staged):
    staged.exit_with("replica-1/replica", "probe", 3)
    staged.exit_with("meta-1/meta", "probe", 3)

    result = RollingRestartProvider().create(props(sshd, staged, records()))

    runs = staged.runs()
    probes, restarts, checks = runs[:len(KEYS)], runs[len(KEYS):len(KEYS) + 3], runs[len(KEYS) + 3:]
    assert sorted(probes) == sorted(run_of(k, "probe") for k in KEYS)  # in parallel: any order
    assert restarts == [run_of("replica-1/replica", "roll"), run_of("meta-1/meta", "roll"),
                        run_of("meta-1/meta", "deferred")]
    assert sorted(checks) == sorted(run_of(k, "check") for k in KEYS)
    assert result.outs["restarted"] == ["replica-1/replica", "meta-1/meta"]


def test_create_fails_naming_every_server_that_does_not_pass_its_check(sshd, staged):
    staged.exit_with("replica-0/replica", "check", 1)
    staged.exit_with("meta-0/collector", "check", 1)

    with pytest.raises(RollFailed) as failure:
        RollingRestartProvider().create(props(sshd, staged, records()))

    message = str(failure.value)
    assert message.startswith("these servers did not pass their check: replica-0/replica, meta-0/collector")
    assert "--- replica-0/replica (127.0.0.1), exit 1:\nreplica check on 127.0.0.1: output line" in message


def test_a_probe_that_fails_stops_everything_before_any_restart(sshd, staged):
    staged.exit_with("replica-0/replica", "probe", 3)
    staged.exit_with("meta-0/meta", "probe", 1)

    with pytest.raises(RollFailed, match="could not ask these servers whether a restart is due: meta-0/meta"):
        RollingRestartProvider().create(props(sshd, staged, records()))

    assert not [r for r in staged.runs() if not r.endswith(" probe")]


# ---------------------------------------------------------------------------
# The SSH session


def test_session_reports_exit_status_and_output_and_removes_its_private_files(sshd, monkeypatch):
    made = []
    real_mkdtemp = ssh_session.tempfile.mkdtemp
    monkeypatch.setattr(ssh_session.tempfile, "mkdtemp", lambda **kw: made.append(real_mkdtemp(**kw)) or made[-1])

    with SshSession(user=sshd.user, private_key=sshd.client_key_path.read_text(), port=sshd.port,
                    known_hosts=(Pin.from_dict(sshd.pin("127.0.0.2")),)) as session:
        assert stat.S_IMODE(os.stat(made[0]).st_mode) == 0o700
        result = session.run("127.0.0.2", "echo out; echo err >&2; exit 7")

    assert (result.returncode, result.output.split()) == (7, ["out", "err"])
    assert not Path(made[0]).exists()


def test_session_dials_again_when_the_connection_fails_then_gives_up(sshd, monkeypatch):
    monkeypatch.setattr(ssh_session, "DIAL_PAUSE_SECONDS", 0.1)
    with SshSession(user=sshd.user, private_key=sshd.client_key_path.read_text(), port=free_port(),
                    known_hosts=()) as session:
        result = session.run("127.0.0.1", "true", dials=3)
    assert result.returncode == SSH_FAILED
    assert "Connection refused" in result.output


# ---------------------------------------------------------------------------
# Registration and pickling


def test_provider_serializes_by_reference_to_its_module():
    serialized, contains_secrets = _serialize(True, serialize_provider, RollingRestartProvider())
    raw = base64.b64decode(serialized)
    assert contains_secrets is False
    assert b"components.operations.rolling_restart" in raw and b"RollingRestartProvider" in raw


@pulumi.runtime.test
def test_the_private_key_is_a_secret_and_the_records_are_readable():
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="pegasus", stack="test", preview=False)
    restart = RollingRestart("c1-rolling-restart", RollingRestartArgs(
        restart_records={"replica-0/replica": "package p\n"}, hosts={"replica-0": "10.0.0.5"},
        staged_dir="/home/work/app/pegasus/staged",
        access={"user": "admin", "port": 22, "private_key": "-----BEGIN KEY-----", "bastion": None}))

    def check(_urn):
        inputs = next(a for a in mocks.registered if a.name == "c1-rolling-restart").inputs
        assert rpc.is_rpc_secret(inputs["access"])
        assert rpc.unwrap_rpc_secret(inputs["access"])["private_key"] == "-----BEGIN KEY-----"
        assert inputs["restart_records"] == {"replica-0/replica": "package p\n"}

    return restart.urn.apply(check)


# ---------------------------------------------------------------------------
# With the admin tools: drains around each ReplicaServer, removals (fakes, no SSH)


class FakeSession:
    """Records each command line's host and phase (or `systemctl stop`); fails as told."""

    def __init__(self, fail: tuple[str, str] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def run(self, host: str, command_line: str) -> ssh_session.SshResult:
        if "systemctl stop" in command_line:
            self.calls.append(f"{host} stop")
            return ssh_session.SshResult(host, 0, "")
        role = next(r for r in ("replica", "meta", "collector") if f"/{r}.restart.sh" in command_line)
        phase = command_line.split(".restart.sh' ")[1].split()[0] if ".restart.sh' " in command_line else \
            command_line.split(".restart.sh ")[1].split()[0]
        self.calls.append(f"{host} {role} {phase}")
        failed = self.fail == (f"{host} {role}", phase)
        return ssh_session.SshResult(host, 1 if failed else 0, "it failed" if failed else "")


class FakeDrain:
    def __init__(self, calls: list[str], fail_on: str = "", end_fails: bool = False) -> None:
        self.calls, self.fail_on, self.end_fails = calls, fail_on, end_fails

    def __getattr__(self, name):
        def record(*args):
            self.calls.append(" ".join([f"drain.{name}", *map(str, args)]))
            if name == self.fail_on:
                from components.operations.replica_drain import DrainFailed
                raise DrainFailed(f"{name} failed")
            return ["assign_delay_ms: no answer"] if name == "end" and self.end_fails else []
        return record


TOOLS = {"host": "meta-0", "dir": "/app/tools/t", "meta_list": "10.0.0.1:34601", "release": "2.5.0",
         "wait_seconds": 5}
NODES = {"replica-0": "10.0.1.1:34801", "replica-1": "10.0.1.2:34801", "replica-2": "10.0.1.3:34801"}


def tools_roll(session: FakeSession, drain: FakeDrain, removed_hosts=None) -> Roll:
    return Roll(session, HOSTS, "/app/staged", lambda _: None, tools=TOOLS, replica_nodes=NODES, servers=KEYS,
                removed_hosts=removed_hosts, drain_factory=lambda _shell: drain)


def test_with_tools_each_replicaserver_is_drained_before_its_restart_and_settings_go_back_once():
    session, calls = FakeSession(), []
    session.calls = calls
    done = tools_roll(session, FakeDrain(calls)).restart(["meta-1/meta", "replica-1/replica", "replica-0/replica"])
    assert calls == [
        "drain.begin restart",
        "drain.drain 10.0.1.1:34801", "drain.close 10.0.1.1:34801", "127.0.0.1 replica drained",
        "drain.release_secondaries", "127.0.0.1 replica check",
        "drain.drain 10.0.1.2:34801", "drain.close 10.0.1.2:34801", "127.0.0.2 replica drained",
        "drain.release_secondaries", "127.0.0.2 replica check",
        "drain.end",
        "127.0.0.2 meta roll", "127.0.0.2 meta deferred"]
    assert done == ["replica-0/replica", "replica-1/replica", "meta-1/meta"]


def test_a_failed_restart_stops_the_roll_and_the_settings_still_go_back():
    session, calls = FakeSession(fail=("127.0.0.1 replica", "drained")), []
    session.calls = calls
    with pytest.raises(RollFailed, match="replica-0/replica did not restart healthy"):
        tools_roll(session, FakeDrain(calls)).restart(["replica-0/replica", "replica-1/replica", "meta-0/meta"])
    assert calls[-1] == "drain.end" and not any("meta" in c for c in calls)


@pytest.mark.parametrize("step", ["drain", "close"])
def test_a_drain_that_fails_restarts_nothing_and_settings_go_back(step):
    session, calls = FakeSession(), []
    session.calls = calls
    with pytest.raises(RollFailed, match="could not be drained before its restart; nothing was restarted"):
        tools_roll(session, FakeDrain(calls, fail_on=step)).restart(["replica-0/replica"])
    assert calls == ["drain.begin restart", "drain.drain 10.0.1.1:34801"] + \
        (["drain.close 10.0.1.1:34801"] if step == "close" else []) + ["drain.end"]


def test_settings_that_cannot_be_put_back_fail_a_roll_that_otherwise_worked():
    session, calls = FakeSession(), []
    session.calls = calls
    with pytest.raises(RollFailed, match="could not put back the MetaServer settings"):
        tools_roll(session, FakeDrain(calls, end_fails=True)).restart(["replica-0/replica"])


def test_a_removed_replicaserver_is_drained_stopped_and_waited_for_then_the_metaservers_restart():
    session, calls = FakeSession(), []
    session.calls = calls
    roll = tools_roll(session, FakeDrain(calls), removed_hosts={"replica-2": "192.0.2.9"})
    roll.restart([], removed=["replica-2/replica"])
    assert calls == [
        "drain.begin removal", "drain.drain 10.0.1.3:34801", "drain.kill_partitions 10.0.1.3:34801", "192.0.2.9 stop",
        "drain.wait_unalive 10.0.1.3:34801 5.0", "drain.release_secondaries DEFAULT", "drain.wait_healthy 5.0",
        "drain.end",
        "127.0.0.1 meta force", "127.0.0.2 meta force", "127.0.0.1 meta deferred", "127.0.0.2 meta deferred"]


def test_the_replicaservers_a_stack_drops_are_found_from_its_records():
    from components.operations.rolling_restart import removed_replicas
    assert removed_replicas({"replica-2/replica": "a", "meta-0/meta": "m", "replica-0/replica": "a"},
                            {"replica-0/replica": "a", "meta-0/meta": "m"}) == ["replica-2/replica"]
