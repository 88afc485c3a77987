"""The cluster's rolling restart: its order, and the provider driving staged scripts over a real sshd.

The "servers" are two addresses of one sshd (127.0.0.1 and 127.0.0.2), and
the staged restart scripts are doubles (tests/support/staged_scripts.py); the
real script is tested in test_host_scripts.py and, on real machines, in the
end-to-end suite.
"""

from __future__ import annotations

import base64
import json
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


def probes_then(staged: StagedScripts) -> list[str]:
    """The runs of an update: every server probed first (in parallel: any order), then the rest."""
    runs = staged.runs()
    assert sorted(runs[:len(KEYS)]) == sorted(run_of(k, "probe") for k in KEYS), runs
    return runs[len(KEYS):]


def test_update_restarts_the_changed_servers_one_at_a_time_in_pegasus_order(sshd, staged):
    old = props(sshd, staged, records())
    new = props(sshd, staged, records(meta_0_collector="v2", replica_1_replica="v2", meta_1_meta="v2",
                                      meta_0_meta="v2"))

    result = RollingRestartProvider().update("id", {**old, "restarted": []}, new)

    assert probes_then(staged) == [run_of("replica-1/replica", "roll"), run_of("meta-0/meta", "roll"),
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

    assert probes_then(staged) == [run_of("replica-0/replica", "roll"), run_of("replica-1/replica", "roll")]
    message = str(failure.value)
    assert "replica-1/replica did not restart healthy" in message
    assert "Restarted before it: replica-0/replica" in message
    assert "not restarted: meta-0/meta, meta-1/meta, meta-0/collector" in message
    assert "replica roll on 127.0.0.2: output line" in message


def test_a_new_key_or_address_alone_restarts_nothing(sshd, staged):
    old = props(sshd, staged, records(), private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nold\n")
    new = props(sshd, staged, records())

    result = RollingRestartProvider().update("id", old, new)

    assert RollingRestartProvider().diff("id", old, new).changes is True
    assert result.outs["restarted"] == [] and probes_then(staged) == []


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
# A scale-in without the admin tools: the removal guard runs before any restart (issue 20)


def guard(staged: StagedScripts, status: int) -> str:
    """A double of the replica-removal guard: notes the servers it is asked about, answers `status`."""
    return (f'echo "guard $*" >>{staged.log}\n'
            'echo "replica-removal: ERROR: refusing to remove ReplicaServers: replica-2 (10.0.0.3:34801) '
            'still holds 4 replicas" >&2\n' if status else f'echo "guard $*" >>{staged.log}\n') + f"exit {status}\n"


def scale_in(sshd, staged: StagedScripts, status: int) -> tuple[dict, dict]:
    """Old: with replica-2; new: without it, and every other server's config changed."""
    old = props(sshd, staged, {**records(), "replica-2/replica": "v1"})
    old["hosts"] = {**HOSTS, "replica-2": "127.0.0.3"}
    old["replica_nodes"] = {"replica-0": "10.0.0.1:34801", "replica-1": "10.0.0.2:34801",
                            "replica-2": "10.0.0.3:34801"}
    new = props(sshd, staged, records("v2"))
    new["replica_nodes"] = {"replica-0": "10.0.0.1:34801", "replica-1": "10.0.0.2:34801"}
    new["removal_guard"] = guard(staged, status)
    return old, new


def test_a_scale_in_the_guard_refuses_is_refused_before_any_server_restarts(sshd, staged):
    old, new = scale_in(sshd, staged, 1)

    with pytest.raises(RollFailed) as failure:
        RollingRestartProvider().update("id", old, new)

    assert staged.runs() == ["guard replica-2=10.0.0.3:34801"]
    message = str(failure.value)
    assert "replica-2 (10.0.0.3:34801) still holds 4 replicas" in message
    assert "nothing was restarted" in message


def test_a_scale_in_the_guard_accepts_then_rolls_the_changed_servers(sshd, staged):
    old, new = scale_in(sshd, staged, 0)

    RollingRestartProvider().update("id", old, new)

    runs = staged.runs()
    assert runs[0] == "guard replica-2=10.0.0.3:34801"
    assert run_of("replica-0/replica", "roll") in runs[1:]


def test_without_a_scale_in_the_guard_is_not_asked(sshd, staged):
    old = props(sshd, staged, records())
    new = {**props(sshd, staged, records("v2")), "removal_guard": guard(staged, 1)}
    RollingRestartProvider().update("id", old, new)
    assert not [run for run in staged.runs() if run.startswith("guard")]


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
        "drain.begin restart ['10.0.1.1:34801', '10.0.1.2:34801']",
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
    assert calls == ["drain.begin restart ['10.0.1.1:34801']", "drain.drain 10.0.1.1:34801"] + \
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
        "drain.begin removal ['10.0.1.3:34801']", "drain.drain 10.0.1.3:34801", "drain.kill_partitions 10.0.1.3:34801", "192.0.2.9 stop",
        "drain.wait_unalive 10.0.1.3:34801 5.0", "drain.release_secondaries DEFAULT", "drain.wait_healthy 5.0",
        "drain.end",
        "127.0.0.1 meta force", "127.0.0.2 meta force", "127.0.0.1 meta deferred", "127.0.0.2 meta deferred"]


def test_the_replicaservers_a_stack_drops_are_found_from_its_records():
    from components.operations.rolling_restart import removed_replicas
    assert removed_replicas({"replica-2/replica": "a", "meta-0/meta": "m", "replica-0/replica": "a"},
                            {"replica-0/replica": "a", "meta-0/meta": "m"}) == ["replica-2/replica"]


# ---------------------------------------------------------------------------
# ReplicaServers in groups that share no partition (fakes, no SSH)

GROUP_HOSTS = {**{f"replica-{i}": f"10.0.0.{i + 1}" for i in range(6)}, "meta-0": "10.0.9.1", "meta-1": "10.0.9.2"}
GROUP_NODES = {f"replica-{i}": f"10.0.1.{i + 1}:34801" for i in range(6)}
MAP_SCRIPT = "print the partition map"
# As the engine hands numbers back: floats.
LIMITS = {"max_parallel": 3.0, "min_replicas": 2.0, "min_live": 3.0, "live_percentage": 50.0}


def map_output(placements: list[tuple[int, ...]], down: tuple[int, ...] = ()) -> str:
    """templates/partition_map.sh's line for partitions of stat on replica-<i> (the first, primary)."""
    name = lambda i: GROUP_NODES[f"replica-{i}"]  # noqa: E731
    replicas = {str(k): {"pidx": str(k), "primary": name(m[0]), "secondaries": "[" + ",".join(map(name, m[1:])) + "]"}
                for k, m in enumerate(placements)}
    answer = {"nodes": {"details": {n: {"address": n, "status": "UNALIVE" if int(n.split(".")[3].split(":")[0]) - 1
                                        in down else "ALIVE"} for n in GROUP_NODES.values()}},
              "apps": {"general_info": {"1": {"app_name": "stat", "status": "AVAILABLE"}}},
              "tables": {"stat": {"general": {"app_id": "1", "max_replica_count": "3"}, "replicas": replicas}},
              "resolved": {}}
    return "partition-map: " + json.dumps(answer)


class GroupSession(FakeSession):
    """Answers the map script with the next of `maps` (the last one again once they run out)."""

    def __init__(self, maps: list[str], fail: tuple[str, str] | None = None) -> None:
        super().__init__(fail)
        self.maps = list(maps)

    def run(self, host: str, command_line: str) -> ssh_session.SshResult:
        if command_line == MAP_SCRIPT:
            self.calls.append(f"{host} map")
            answer = self.maps.pop(0) if len(self.maps) > 1 else self.maps[0]
            return ssh_session.SshResult(host, 1 if answer.startswith("ERROR") else 0, answer)
        return super().run(host, command_line)


def group_roll(session: FakeSession, drain: FakeDrain | None = None, logs: list[str] | None = None,
               limits: dict = LIMITS) -> Roll:
    keys = [f"replica-{i}/replica" for i in range(6)] + ["meta-0/meta", "meta-1/meta"]
    return Roll(session, GROUP_HOSTS, "/app/staged", (logs if logs is not None else []).append,
                tools=TOOLS if drain else None, replica_nodes=GROUP_NODES, servers=keys,
                drain_factory=(lambda _shell: drain) if drain else None, roll=limits, map_script=MAP_SCRIPT,
                map_hosts=["meta-0", "meta-1"])


# stat's 4 partitions on 6 servers: 0 and 4 share none, nor 1 and 5, nor 2 and 3.
STAT = [(0, 1, 2), (3, 4, 5), (0, 3, 1), (2, 4, 5)]
REPLICAS = [f"replica-{i}/replica" for i in range(6)]


def phases(calls: list[str], phase: str) -> list[str]:
    """The hosts that ran `phase`, as "10.0.0.N"."""
    return [c.split()[0] for c in calls if c.endswith(f" {phase}")]


def test_without_tools_replicaservers_restart_in_groups_re_planned_before_each_group():
    # After the first group the partitions moved: 1 and 3 now share none, nor 2 and 5.
    moved = [(1, 2, 0), (1, 5, 4), (3, 2, 4), (3, 5, 0)]
    session, logs = GroupSession([map_output(STAT), map_output(moved)]), []
    done = group_roll(session, logs=logs).restart(REPLICAS + ["meta-1/meta"])
    calls = session.calls
    # Each group read the map first (on the first MetaServer host), then restarted at once.
    assert [c for c in calls if c.endswith(" map")] == ["10.0.9.1 map"] * 3
    first, second, third = (calls[i + 1:i + 3] for i, c in enumerate(calls) if c.endswith(" map"))
    assert sorted(first) == ["10.0.0.1 replica together", "10.0.0.5 replica together"]
    assert sorted(second) == ["10.0.0.2 replica together", "10.0.0.4 replica together"]
    assert sorted(third) == ["10.0.0.3 replica together", "10.0.0.6 replica together"]
    assert calls[-2:] == ["10.0.9.2 meta roll", "10.0.9.2 meta deferred"]
    assert done == ["replica-0/replica", "replica-4/replica", "replica-1/replica", "replica-3/replica",
                    "replica-2/replica", "replica-5/replica", "meta-1/meta"]
    assert "rolling restart: group of 2: replica-0/replica, replica-4/replica (plan: 6 ReplicaServers in 3 groups " \
           "(2, 2, 2) that share no partition, at most 3 at once (roll.maxParallel 3))" in logs


def test_with_tools_a_group_is_drained_together_restarted_and_checked_then_settings_go_back_once():
    calls: list[str] = []
    session = GroupSession([map_output(STAT)])
    session.calls = calls
    group_roll(session, FakeDrain(calls)).restart(REPLICAS)
    # One drain for the roll, recorded for all of its ReplicaServers; then a group at a time.
    assert calls[:2] == ["drain.begin restart ['10.0.1.1:34801', '10.0.1.2:34801', '10.0.1.3:34801', "
                         "'10.0.1.4:34801', '10.0.1.5:34801', '10.0.1.6:34801']", "10.0.9.1 map"]
    assert calls[2:4] == ["drain.drain 10.0.1.1:34801 10.0.1.5:34801", "drain.close 10.0.1.1:34801 10.0.1.5:34801"]
    assert sorted(calls[4:6]) == ["10.0.0.1 replica drained", "10.0.0.5 replica drained"]
    assert calls[6] == "drain.release_secondaries"
    assert sorted(calls[7:9]) == ["10.0.0.1 replica check", "10.0.0.5 replica check"]
    assert calls[9] == "10.0.9.1 map" and calls[-1] == "drain.end" and calls.count("drain.end") == 1


def test_a_failure_in_a_group_stops_the_roll_naming_restarted_failed_and_not_started():
    session = GroupSession([map_output(STAT)], fail=("10.0.0.2 replica", "together"))
    with pytest.raises(RollFailed) as failure:
        group_roll(session).restart(REPLICAS + ["meta-0/meta"])
    message = str(failure.value)
    assert "replica-1/replica did not restart healthy; the roll stopped at the group replica-1/replica, " \
           "replica-5/replica" in message
    assert "Restarted: replica-0/replica, replica-4/replica, replica-5/replica; failed: replica-1/replica; " \
           "not restarted: replica-2/replica, replica-3/replica, meta-0/meta" in message
    assert "--- replica-1/replica (10.0.0.2), exit 1:\nit failed" in message
    assert not phases(session.calls, "roll")  # nothing after the failed group


def test_a_group_that_cannot_be_drained_restarts_nothing_and_names_who_is_left():
    calls: list[str] = []
    session = GroupSession([map_output(STAT)])
    session.calls = calls
    with pytest.raises(RollFailed, match=r"replica-0/replica, replica-4/replica \(10.0.1.1:34801, 10.0.1.5:34801\) "
                       r"could not be drained before their restart; nothing was restarted on them. Restarted before "
                       r"them: none; not restarted: replica-1/replica, replica-2/replica, replica-3/replica, "
                       r"replica-5/replica"):
        group_roll(session, FakeDrain(calls, fail_on="close")).restart(REPLICAS)
    assert calls[-1] == "drain.end" and not phases(calls, "drained")


@pytest.mark.parametrize(("maps", "why"), [
    (["ERROR: no MetaServer answered /meta/nodes"], "the partition map could not be read (on meta-0: ERROR"),
    ([map_output([(0, 1, 2), (3, 4)])], "1 partitions are not fully healthy, e.g. stat partition 1.1 (2 of 3"),
])
def test_safety_first_one_server_at_a_time_saying_why(maps, why):
    session, logs = GroupSession(maps), []
    group_roll(session, logs=logs).restart(REPLICAS[:3])
    assert phases(session.calls, "roll") == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert not phases(session.calls, "together")
    assert any(line.startswith("rolling restart: group of 1: replica-0/replica (plan: 3 ReplicaServers one at a "
                               "time (roll.maxParallel 3): " + why) for line in logs), logs


def test_roll_max_parallel_1_reads_no_map_and_restarts_as_before():
    session = GroupSession([map_output(STAT)])
    group_roll(session, limits={**LIMITS, "max_parallel": 1}).restart(REPLICAS[:2])
    assert session.calls == ["10.0.0.1 replica roll", "10.0.0.2 replica roll"]


def test_the_preview_says_which_servers_restart_and_in_groups_of_at_most_n():
    old = {**{k: "v1" for k in REPLICAS}, "meta-0/meta": "m1"}
    new = {**{k: "v2" for k in REPLICAS[:4]}, **{k: "v1" for k in REPLICAS[4:]}, "meta-0/meta": "m2"}
    checked = RollingRestartProvider().check({"restart_records": old}, {"restart_records": new, "roll": LIMITS})
    assert checked.inputs["roll_plan"] == (
        "replica-0/replica, replica-1/replica, replica-2/replica, replica-3/replica: in groups of at most 3 "
        "ReplicaServers that share no partition (roll.maxParallel), planned from the partition map before each "
        "group; then one at a time: meta-0/meta")
    assert checked.inputs["restart_records"] == new
    nothing = RollingRestartProvider().check({"restart_records": new}, {"restart_records": new, "roll": LIMITS})
    assert nothing.inputs["roll_plan"] == ""
    # roll_plan alone is no change: an up with nothing to restart does not run the roll.
    assert RollingRestartProvider().diff("id", {**nothing.inputs, "roll_plan": "x"}, nothing.inputs).changes is False
