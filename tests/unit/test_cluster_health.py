"""The health check at every up: the provider over a real sshd, with doubles of the scripts it runs.

The health check itself (templates/health_check.sh.j2) is tested in
test_host_scripts.py; here a stand-in command line plays it, and the staged
restart scripts are doubles (tests/support/staged_scripts.py), so the tests
see which server was asked for its logs.
"""

from __future__ import annotations

import base64
import shlex

import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime._serialization import _serialize

from components.ssh import session as ssh_session
from components.operations.cluster_health import ClusterHealthProvider, ClusterUnhealthy, not_serving
from tests.support.staged_scripts import StagedScripts

HOSTS = {"meta-0": "127.0.0.1", "meta-1": "127.0.0.2", "replica-0": "127.0.0.1", "replica-1": "127.0.0.2"}
HEALTHY = "echo 'health-check: cluster healthy: 2 ReplicaServers ALIVE (...), tables: stat'"
UNHEALTHY = ("echo 'health-check: not serving: replica-1/replica meta-0/collector'; "
             "echo 'health-check: ERROR: the cluster is not healthy after 600s: replica-1/replica is UNALIVE' >&2; "
             "exit 1")


@pytest.fixture()
def staged(tmp_path):
    return StagedScripts(tmp_path, HOSTS)


def props(sshd, staged: StagedScripts, script: str, hosts=HOSTS, run: str = "run-1") -> dict:
    return {"run": run, "script": f"bash -c {shlex.quote(script)}", "check_hosts": ["meta-0", "meta-1"],
            "hosts": hosts, "staged_dir": str(staged.dir),
            "access": {"user": sshd.user, "port": sshd.port, "private_key": sshd.client_key_path.read_text(),
                       "bastion": None, "known_hosts": [sshd.pin("127.0.0.1"), sshd.pin("127.0.0.2")]}}


def test_a_healthy_cluster_reports_its_summary_and_fetches_no_logs(sshd, staged):
    result = ClusterHealthProvider().create(props(sshd, staged, HEALTHY))
    assert result.outs["report"] == "2 ReplicaServers ALIVE (...), tables: stat"
    assert staged.runs() == []


def test_an_unhealthy_cluster_fails_with_the_logs_of_each_server_not_serving(sshd, staged):
    with pytest.raises(ClusterUnhealthy) as failure:
        ClusterHealthProvider().create(props(sshd, staged, UNHEALTHY))

    assert sorted(staged.runs()) == ["127.0.0.1 collector logs", "127.0.0.2 replica logs"]
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
