"""The mock engine: real programs, real SSH, Pulumi's create/update/replace/delete rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.localcloud.engine import DeploymentError, Engine
from tests.e2e.localcloud.testing import skip_unless_local_cloud_possible

pytestmark = [pytest.mark.e2e, skip_unless_local_cloud_possible()]

PROGRAMS = Path(__file__).parent / "programs"
COMMANDS = "command:remote:Command"
URN = "urn:pulumi:test::demo::"


@pytest.fixture(scope="module")
def hosts(local_cloud):
    return [local_cloud.boot_machine("engine-a"), local_cloud.boot_machine("engine-b")]


@pytest.fixture
def demo(local_cloud, hosts, tmp_path, request):
    """An engine on the `commands` program, with its own state and host directory."""
    work_dir = f"/root/{request.node.name[:40]}"
    engine = Engine(local_cloud, tmp_path / "state.json", PROGRAMS / "commands" / "__main__.py",
                    project="demo", stack="test")
    config = {
        "demo:hosts": json.dumps([h.ip for h in hosts]),
        "demo:privateKey": local_cloud.keys.private_key,
        "demo:dir": work_dir,
        "demo:ledger": str(tmp_path / "ledger"),
    }
    engine.host_log = lambda: hosts[0].check(f"cat {work_dir}/log").splitlines()
    engine.ledger = lambda: (tmp_path / "ledger").read_text().splitlines()
    yield engine, config, work_dir
    try:
        engine.destroy()
    except DeploymentError:
        pass


def test_first_up_creates_everything_and_second_up_runs_nothing(demo):
    engine, config, _ = demo
    exports = engine.up(config)
    assert sorted(engine.last_run.names("create")) == sorted(
        ["marker-0", "marker-1", "copied", "reader", "ledger"])
    assert exports["reader"] == "first content"  # trailing newline trimmed, as the provider does
    assert exports["markers"] == ["marker-0", "marker-1"]
    assert engine.ledger() == ["create hello"]

    engine.up(config)
    assert engine.last_run.operations == []
    assert len(engine.last_run.unchanged) == 5
    assert engine.host_log() == ["create 1 hello"]  # marker-0 ran once


def test_trigger_change_replaces_create_before_delete(demo):
    engine, config, _ = demo
    engine.up(config)
    engine.up({**config, "demo:version": "2"})

    ops = engine.last_run.operations
    assert [(o.name, o.action) for o in ops if o.name == "marker-0"] == [
        ("marker-0", "replace"), ("marker-0", "delete-replaced")]
    assert engine.last_run.names("update") == []
    # The new one ran `create`; the old one's `delete` ran after it, at the end.
    assert engine.host_log() == ["create 1 hello", "create 2 hello", "delete 1"]


def test_other_input_change_runs_update(demo):
    engine, config, _ = demo
    engine.up(config)
    engine.up({**config, "demo:message": "changed"})

    assert sorted(engine.last_run.names("update")) == ["ledger", "marker-0", "marker-1"]
    assert engine.host_log() == ["create 1 hello", "update 1 changed"]
    assert engine.ledger() == ["create hello", "update changed"]


def test_copy_again_when_content_changes(demo, hosts):
    engine, config, work_dir = demo
    engine.up(config)
    exports = engine.up({**config, "demo:content": "second content\n"})
    assert hosts[0].check(f"cat {work_dir}/copied.txt") == "second content\n"
    assert exports["reader"] == "second content"
    assert engine.last_run.names("update", "command:remote:CopyToRemote") == ["copied"]


def test_removed_resource_is_deleted(demo, hosts):
    engine, config, work_dir = demo
    second_host_log = lambda: hosts[1].check(f"cat {work_dir}/log").splitlines()  # noqa: E731
    engine.up({**config, "demo:extra": "true"})
    assert "create extra" in second_host_log()

    engine.up(config)
    assert [(o.name, o.action) for o in engine.last_run.operations] == [("extra", "delete")]
    assert second_host_log()[-1] == "delete extra"
    assert f"{URN}{COMMANDS}::extra" not in engine.state.resources


def test_destroy_deletes_dependents_first_and_independent_ones_together(demo):
    engine, config, _ = demo
    engine.up(config)
    engine.destroy()

    ops = {op.name: op for op in engine.last_run.actions("delete")}
    assert sorted(ops) == ["copied", "ledger", "marker-0", "marker-1", "reader"]
    # A chain ledger -> reader -> copied -> markers: each after its dependents ended.
    for dependent, dependency in [("ledger", "reader"), ("reader", "copied"),
                                  ("copied", "marker-0"), ("copied", "marker-1")]:
        assert ops[dependent].ended <= ops[dependency].started, (dependent, dependency)
    # The two markers depend on nothing in common: deleted in one layer, in parallel.
    assert ops["marker-0"].overlaps(ops["marker-1"])
    assert engine.state.resources == {} and engine.state.order == []
    assert engine.host_log() == ["create 1 hello", "delete reader", "delete 1"]
    assert engine.ledger()[-1] == "delete hello"


def test_failing_command_fails_the_run_and_keeps_earlier_resources(demo):
    engine, config, _ = demo
    with pytest.raises(DeploymentError) as failure:
        engine.up({**config, "demo:fail": "true"})

    message = str(failure.value)
    assert "failing" in message and "status 3" in message
    assert "to-stdout" in message and "to-stderr" in message
    assert f"{URN}{COMMANDS}::reader" in engine.state.resources
    assert f"{URN}{COMMANDS}::failing" not in engine.state.resources
    assert "after failing" not in engine.host_log()
    # The next run without the failing command keeps what exists.
    engine.up(config)
    assert engine.last_run.names("create") == []


def test_environment_is_refused_by_stock_sshd(demo, hosts):
    engine, config, work_dir = demo
    with pytest.raises(DeploymentError) as failure:
        engine.up({**config, "demo:env": "true"})
    assert "could not set environment variable 'PEGASUS_VALUE'" in str(failure.value)
    rc, _, _ = hosts[0].ssh(f"test -e {work_dir}/env-seen")
    assert rc != 0, "the command must not have run"


def test_environment_named_by_accept_env_reaches_the_command(demo):
    engine, config, _ = demo
    engine.up({**config, "demo:lcEnv": "true"})
    record = engine.state.resources[f"{URN}{COMMANDS}::with-lc-env"]
    assert record["extras"]["stdout"] == "[accepted]"


def test_aws_program_gets_machines_disks_and_nics(local_cloud, tmp_path):
    engine = Engine(local_cloud, tmp_path / "state.json", PROGRAMS / "aws_machines" / "__main__.py",
                    project="demo", stack="aws")
    config = {"demo:publicKey": local_cloud.keys.public_key,
              "demo:privateKey": local_cloud.keys.private_key}
    try:
        exports = engine.up(config)
        assert exports["instanceId"].startswith("i-") and len(exports["instanceId"]) == 19
        assert exports["check"] == "1"  # by-id disk present, one link with the ENI's MAC
        machine = engine.machines[exports["instanceId"]]
        assert machine.ip == exports["privateIp"]
        assert exports["nicIp"] in machine.check("ip -4 -o addr")
        engine.up(config)
        assert engine.last_run.operations == []
    finally:
        engine.destroy()
    assert exports["instanceId"] not in engine.machines
    assert not local_cloud.volumes
