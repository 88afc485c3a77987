"""The health check at every up: the provider over a real sshd, with doubles of the scripts it runs.

The health check itself (templates/health_check.sh.j2) is tested in
test_host_scripts.py; here a stand-in script plays it (run as the real one is,
with the pass's seconds as $1), and the staged restart scripts are doubles
(tests/support/staged_scripts.py), so the tests see which server was asked
for its logs, its unit's state or what it runs.
"""

from __future__ import annotations

import base64
import time

import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime._serialization import _serialize

from components.operations import cluster_health, rolling_restart
from components.ssh import session as ssh_session
from components.operations.cluster_health import ClusterHealthProvider, ClusterUnhealthy, not_serving
from tests.support.staged_scripts import StagedScripts

HOSTS = {"meta-0": "127.0.0.1", "meta-1": "127.0.0.2", "replica-0": "127.0.0.1", "replica-1": "127.0.0.2"}
SERVERS = ["replica-0/replica", "replica-1/replica", "meta-0/meta", "meta-1/meta", "meta-0/collector"]
HEALTHY = "echo 'health-check: cluster healthy: 2 ReplicaServers ALIVE (...), tables: stat'"
UNHEALTHY = ("echo 'health-check: not serving: replica-1/replica meta-0/collector'; "
             "echo 'health-check: ERROR: the cluster is not healthy after 600s: replica-1/replica is UNALIVE' >&2; "
             "exit 1")


@pytest.fixture()
def staged(tmp_path):
    return StagedScripts(tmp_path, HOSTS)


def props(sshd, staged: StagedScripts, script: str, hosts=HOSTS, run: str = "run-1", wait_seconds: int = 0) -> dict:
    return {"run": run, "script": script, "check_hosts": ["meta-0", "meta-1"],
            "hosts": hosts, "staged_dir": str(staged.dir), "servers": SERVERS, "wait_seconds": wait_seconds,
            "rolling_restart": "c1-rolling-restart",
            "access": {"user": sshd.user, "port": sshd.port, "private_key": sshd.client_key_path.read_text(),
                       "bastion": None, "known_hosts": [sshd.pin("127.0.0.1"), sshd.pin("127.0.0.2")]}}


def test_a_healthy_cluster_reports_its_summary_and_fetches_no_logs(sshd, staged):
    result = ClusterHealthProvider().create(props(sshd, staged, HEALTHY))
    assert result.outs["report"] == "2 ReplicaServers ALIVE (...), tables: stat"
    assert not [run for run in staged.runs() if not run.endswith(" probe")]


def test_an_unhealthy_cluster_fails_with_the_logs_of_each_server_not_serving(sshd, staged):
    with pytest.raises(ClusterUnhealthy) as failure:
        ClusterHealthProvider().create(props(sshd, staged, UNHEALTHY))

    assert sorted(r for r in staged.runs() if r.endswith(" logs")) == ["127.0.0.1 collector logs",
                                                                       "127.0.0.2 replica logs"]
    message = str(failure.value)
    assert message.startswith("the cluster is not healthy; not serving: replica-1/replica, meta-0/collector")
    assert "replica-1/replica is UNALIVE" in message
    assert "--- replica-1/replica (127.0.0.2), its status, journal and log tail:" in message
    assert "replica logs on 127.0.0.2: output line" in message
    assert "collector logs on 127.0.0.1: output line" in message


def test_the_check_runs_on_the_next_metaserver_host_when_the_first_does_not_answer(sshd, staged, monkeypatch):
    monkeypatch.setattr(ssh_session, "DIAL_PAUSE_SECONDS", 0.1)
    hosts = {**HOSTS, "meta-0": "127.0.0.3"}  # nothing listens there
    result = ClusterHealthProvider().create(props(sshd, staged, HEALTHY, hosts=hosts))
    assert result.outs["report"].startswith("2 ReplicaServers ALIVE")


def test_no_metaserver_host_answering_fails_fast_with_the_way_out(sshd, staged, monkeypatch):
    monkeypatch.setattr(ssh_session, "DIAL_PAUSE_SECONDS", 0.1)
    hosts = {**HOSTS, "meta-0": "127.0.0.3", "meta-1": "127.0.0.4"}
    with pytest.raises(ClusterUnhealthy) as failure:
        ClusterHealthProvider().create(props(sshd, staged, HEALTHY, hosts=hosts))
    message = str(failure.value)
    assert "no MetaServer host answered SSH" in message and "meta-1 (127.0.0.4)" in message
    assert "pulumi up --replace" in message


def test_it_runs_at_every_up_as_an_update():
    provider = ClusterHealthProvider()
    old, new = {"run": "a", "report": "ok"}, {"run": "b"}
    diff = provider.diff("health", old, new)
    assert diff.changes is True and not diff.replaces
    assert provider.diff("health", old, {"run": "a"}).changes is False


def test_the_servers_named_are_read_from_the_check_in_roll_order():
    output = ("health-check: ERROR: x\nhealth-check: not serving: meta-1/meta replica-10/replica\n"
              "health-check: not serving: replica-2/replica meta-1/meta\n")
    assert not_serving(output) == ["replica-2/replica", "replica-10/replica", "meta-1/meta"]


def test_provider_serializes_by_reference_to_its_module():
    serialized, _ = _serialize(True, serialize_provider, ClusterHealthProvider())
    raw = base64.b64decode(serialized)
    assert b"components.operations.cluster_health" in raw and b"ClusterHealthProvider" in raw


# --- waiting, and what it waits for (issue 20, items 8, 10 and 11) -------------------

# Plays the check on the MetaServer host: each pass waits its $1 seconds (at most 5),
# counts itself, and finds replica-1 serving from the pass named in ready-at (never).
PASSES = """
sleep "${1:-5}"
count=$(( $(cat __DIR__/passes 2>/dev/null || echo 0) + 1 )); echo "$count" >__DIR__/passes
if (( count >= $(cat __DIR__/ready-at 2>/dev/null || echo 1000) )); then
  echo 'health-check: cluster healthy: 2 ReplicaServers ALIVE (...), tables: stat'; exit 0
fi
echo 'health-check: not serving: replica-1/replica'
echo "health-check: ERROR: the cluster is not healthy after $(( ${2:-0} + ${1:-5} ))s: replica-1/replica is UNALIVE" >&2
exit 1
"""


def passes(tmp_path) -> str:
    return PASSES.replace("__DIR__", str(tmp_path))


def test_a_server_whose_unit_systemd_gave_up_on_fails_the_wait_at_once_with_its_logs(
        sshd, staged, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster_health, "PASS_SECONDS", 1)
    staged.exit_with("replica-1/replica", "unit-state", 4)
    started = time.monotonic()
    with pytest.raises(ClusterUnhealthy) as failure:
        ClusterHealthProvider().create(props(sshd, staged, passes(tmp_path), wait_seconds=600))
    assert time.monotonic() - started < 30
    message = str(failure.value)
    assert "not serving: replica-1/replica" in message and "Down for good" in message
    assert "replica unit-state on 127.0.0.2: output line" in message  # what its host said of its unit
    assert "replica logs on 127.0.0.2: output line" in message  # and its logs
    assert "127.0.0.2 replica unit-state" in staged.runs()


def test_a_server_still_starting_is_waited_for_in_passes(sshd, staged, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster_health, "PASS_SECONDS", 1)
    (tmp_path / "ready-at").write_text("3")  # its unit is starting (unit-state 0): it serves at the third pass
    result = ClusterHealthProvider().create(props(sshd, staged, passes(tmp_path), wait_seconds=60))
    assert result.outs["report"].startswith("2 ReplicaServers ALIVE")
    assert staged.runs().count("127.0.0.2 replica unit-state") == 2
    assert (tmp_path / "passes").read_text().strip() == "3"


def test_the_wait_ends_at_its_deadline_naming_what_it_waited_for(sshd, staged, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster_health, "PASS_SECONDS", 1)
    started = time.monotonic()
    with pytest.raises(ClusterUnhealthy) as failure:
        ClusterHealthProvider().create(props(sshd, staged, passes(tmp_path), wait_seconds=3))
    assert 3 <= time.monotonic() - started < 20
    assert int((tmp_path / "passes").read_text()) >= 2
    message = str(failure.value)
    assert "not serving: replica-1/replica" in message and "Down for good" not in message
    assert "the cluster is not healthy after" in message
    assert "replica logs on 127.0.0.2: output line" in message


def test_a_serving_server_that_does_not_run_its_staged_files_fails_the_check_by_name(sshd, staged):
    staged.exit_with("replica-0/replica", "probe", 3)
    with pytest.raises(ClusterUnhealthy) as failure:
        ClusterHealthProvider().create(props(sshd, staged, HEALTHY))
    message = str(failure.value)
    assert message.startswith("these servers serve, but not with the files staged for them: replica-0/replica.")
    assert "pulumi up --replace <URN of c1-rolling-restart>" in message
    assert "replica probe on 127.0.0.1: output line" in message
    assert sorted(r for r in staged.runs() if r.endswith(" probe")) == sorted(
        f"{HOSTS[k.partition('/')[0]]} {k.partition('/')[2]} probe" for k in SERVERS)


def test_with_the_admin_tools_every_up_first_puts_back_what_an_interrupted_drain_changed(
        sshd, staged, monkeypatch):
    order = []
    monkeypatch.setattr(rolling_restart, "put_back_interrupted",
                        lambda shell, records, log: order.append(f"put back {records.directory}"))
    tools = {"host": "meta-0", "dir": "/app/tools/t", "meta_list": "127.0.0.1:34601", "release": "2.5.0"}
    result = ClusterHealthProvider().update("health", {}, {**props(sshd, staged, HEALTHY), "tools": tools})
    assert order == [f"put back {staged.dir}/drains"]
    assert result.outs["report"].startswith("2 ReplicaServers ALIVE")
