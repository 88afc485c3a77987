"""A drain recorded on the MetaServer host while it changes settings (issue 20, item 10).

A `pulumi up` killed during a drain never puts the MetaServer's settings back;
the next drain must not take what it left for the originals, and an `up` with
nothing to roll must still mend it. Through the admin shell double against a
stand-in cluster (test_admin_shell.py's fixtures), records in a local directory.
"""

from __future__ import annotations

import json
import uuid

import pytest

from components.operations.admin_shell import AdminShell
from components.operations.drain_record import DrainRecordError, DrainRecords, drain_key
from components.operations.replica_drain import ADD_SECONDARY_MAX, ASSIGN_DELAY, FLOW_CONTROL, Drain, Timeouts, \
    put_back_interrupted
from tests.unit.test_admin_shell import Cluster, install_tools, run_local


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    return install_tools(tmp_path_factory.mktemp("tools"), "2.5.0")


@pytest.fixture
def cluster(tmp_path, zookeeper_server, zookeeper_client):
    """A stand-in cluster of one MetaServer and four ReplicaServers on loopback."""
    name = f"drain-record-{uuid.uuid4().hex[:8]}"
    standin = Cluster(tmp_path, zookeeper_server.hosts, name)
    try:
        standin.start()
        yield standin
    finally:
        standin.stop()
        zookeeper_client.delete(f"/pegasus/{name}", recursive=True)


@pytest.fixture
def shell(tools, cluster):
    return AdminShell(run_local, str(tools), cluster.meta_list)


def settings(shell: AdminShell, leader: str) -> dict[str, str]:
    return {"level": shell.get_meta_level(),
            **{name: shell.setting(leader, name) for name in (ASSIGN_DELAY, FLOW_CONTROL, ADD_SECONDARY_MAX)}}


def drain_with_records(shell: AdminShell, records: DrainRecords, lines: list[str]) -> Drain:
    return Drain(shell, lines.append, Timeouts(migrate_seconds=20, downgrade_seconds=20, poll_seconds=0.3),
                 records=records)


@pytest.fixture
def records(tmp_path) -> DrainRecords:
    return DrainRecords(run_local, str(tmp_path / "staged" / "drains"))


def operators_settings(shell: AdminShell, leader: str) -> dict[str, str]:
    """What an operator runs with, other than the drain's own values: balancing on
    (`lively`) and the add-secondary flow control off."""
    shell.set_meta_level("lively")
    shell.set_setting(leader, FLOW_CONTROL, "false")
    return settings(shell, leader)


def test_a_drain_records_what_it_found_before_it_changes_anything_and_forgets_it_once_back(
        shell, cluster, records):
    leader, lines = cluster.meta_list, []
    before = operators_settings(shell, leader)
    drain = drain_with_records(shell, records, lines)
    drain.begin("restart", [cluster.node(1), cluster.node(0)])
    [(key, record)] = records.load().items()
    assert key == drain_key("restart", [cluster.node(0), cluster.node(1)])
    assert record["saved"] == {"level": "lively", FLOW_CONTROL: "false", ASSIGN_DELAY: "DEFAULT",
                               ADD_SECONDARY_MAX: "DEFAULT"}
    assert record["leader"] == leader and record["nodes"] == sorted([cluster.node(0), cluster.node(1)])
    assert settings(shell, leader)["level"] == "steady"
    assert drain.end() == []
    assert records.load() == {}
    assert settings(shell, leader) == {**before, ASSIGN_DELAY: "600000", ADD_SECONDARY_MAX: "20"}


def test_the_next_drain_puts_back_what_a_killed_one_left_and_never_takes_it_for_the_originals(
        shell, cluster, records):
    leader, lines = cluster.meta_list, []
    before = operators_settings(shell, leader)
    killed = drain_with_records(shell, records, lines)
    killed.begin("restart", [cluster.node(0)])
    killed.drain(cluster.node(0))  # ...and the `pulumi up` running it is killed here: no end()
    left = settings(shell, leader)
    assert left == {"level": "steady", FLOW_CONTROL: "true", ASSIGN_DELAY: "180000000", ADD_SECONDARY_MAX: "0"}

    again = drain_with_records(shell, records, lines)
    again.begin("restart", [cluster.node(0), cluster.node(1)])
    assert again.saved["level"] == "lively" and again.saved[FLOW_CONTROL] == "false"
    assert list(records.load()) == [drain_key("restart", [cluster.node(0), cluster.node(1)])]
    again.release_secondaries()
    assert again.end() == []
    assert settings(shell, leader) == {**before, ASSIGN_DELAY: "600000", ADD_SECONDARY_MAX: "20"}
    assert any("a drain interrupted earlier had changed" in line for line in lines)


def test_an_up_with_nothing_to_roll_puts_back_what_a_killed_drain_left(shell, cluster, records):
    leader, lines = cluster.meta_list, []
    before = operators_settings(shell, leader)
    drain_with_records(shell, records, lines).begin("removal", [cluster.node(3)])  # killed after begin

    assert put_back_interrupted(shell, records, lines.append) == [drain_key("removal", [cluster.node(3)])]
    assert records.load() == {}
    assert settings(shell, leader) == {**before, ASSIGN_DELAY: "600000", ADD_SECONDARY_MAX: "20"}
    assert put_back_interrupted(shell, records, lines.append) == []  # nothing left to do


class LeaderMoved:
    """A shell whose leader is another MetaServer than the record's, which does not answer."""

    def __init__(self) -> None:
        self.done: list[str] = []

    def leader(self) -> str:
        return "10.0.0.2:34601"

    def calls(self, node, commands):
        return [None for _ in commands]

    def set_setting(self, node, name, value):
        self.done.append(f"set {node} {name} {value}")

    def set_meta_level(self, level):
        self.done.append(f"level {level}")


def test_the_settings_of_a_metaserver_that_no_longer_answers_are_not_waited_for(records):
    records.save("restart-x", {"purpose": "restart", "nodes": ["10.0.1.1:34801"], "leader": "10.0.0.1:34601",
                               "started": "2024-01-01T00:00:00Z",
                               "saved": {"level": "lively", ASSIGN_DELAY: "DEFAULT", FLOW_CONTROL: "false"}})
    shell, lines = LeaderMoved(), []
    put_back_interrupted(shell, records, lines.append)  # type: ignore[arg-type]
    # A MetaServer reads its config.ini when it starts again; the level is the cluster's.
    assert shell.done == ["level lively"]
    assert records.load() == {}
    assert "10.0.0.1:34601, whose settings an interrupted drain changed, does not answer" in lines[0]


def test_a_record_that_does_not_parse_is_an_error_not_an_absence(records, tmp_path):
    directory = tmp_path / "staged" / "drains"
    directory.mkdir(parents=True)
    (directory / "restart-x.json").write_text("{half a record")
    with pytest.raises(DrainRecordError, match="restart-x.json on the MetaServer host does not parse"):
        records.load()
    (directory / "restart-x.json").write_text(json.dumps({"purpose": "restart"}))
    with pytest.raises(DrainRecordError, match="holds no saved settings"):
        records.load()
