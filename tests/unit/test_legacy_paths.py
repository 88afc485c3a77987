"""Stacks deployed before the layers keep working: their pickled providers load and run.

tests/fixtures/legacy_providers/deca55f.json holds the `__provider` values that
the tree before the move (commit deca55f) wrote into every stack's state, and
that tree's module list. Pulumi unpickles a provider in a fresh interpreter
started in the project directory; these tests do the same, then run the
loaded providers' update and delete against the doubles the providers' own
tests use (a real sshd, staged-script doubles, a real ZooKeeper).
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import dill
import pytest
from pulumi.runtime._serialization import _deserialize

from components.legacy_paths import LEGACY_MODULES
from components.operations.cluster_health import ClusterHealthProvider
from components.operations.fixed_settings import FixedSettingsProvider
from components.operations.rolling_restart import RollingRestartProvider
from components.operations.zookeeper_path_guard import ZooKeeperPathGuardProvider
from tests.support.staged_scripts import StagedScripts

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURE = json.loads((PROJECT_DIR / "tests/fixtures/legacy_providers/deca55f.json").read_text())
NOW = {ClusterHealthProvider: "components.cluster_health.ClusterHealthProvider",
       FixedSettingsProvider: "components.fixed_settings.FixedSettingsProvider",
       RollingRestartProvider: "components.rolling_restart.RollingRestartProvider",
       ZooKeeperPathGuardProvider: "components.zookeeper_path_guard.ZooKeeperPathGuardProvider"}


def load(old_path: str):
    """As pulumi/dynamic/__main__.py does with the state's `__provider`."""
    serialized = FIXTURE["providers"][old_path]
    return _deserialize(lambda: dill.loads(base64.b64decode(serialized)))


def run_fresh(script: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], input=stdin, cwd=PROJECT_DIR, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_fixture_holds_every_provider_the_program_has():
    assert sorted(FIXTURE["providers"]) == sorted(NOW.values())


def test_each_old_provider_loads_in_a_fresh_interpreter_as_todays_class():
    script = """
        import base64, json, sys
        import dill
        from pulumi.runtime._serialization import _deserialize
        for old, serialized in json.loads(sys.stdin.read()).items():
            provider = _deserialize(lambda: dill.loads(base64.b64decode(serialized)))
            print(old, type(provider).__module__ + "." + type(provider).__qualname__)
        """
    finished = run_fresh(script, json.dumps(FIXTURE["providers"]))
    assert finished.returncode == 0, finished.stderr
    loaded = dict(line.split() for line in finished.stdout.splitlines())
    assert loaded == {old: f"{cls.__module__}.{cls.__qualname__}" for cls, old in NOW.items()}


def test_an_old_path_is_the_very_module_that_holds_the_code_now():
    for old, new in LEGACY_MODULES.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
    # the module keeps its own identity: what pickles next time is the new path
    assert importlib.import_module("components.rolling_restart").__name__ == "components.operations.rolling_restart"
    assert importlib.import_module("components.rolling_restart").__spec__.name == \
        "components.operations.rolling_restart"


def test_every_module_of_the_old_tree_still_imports():
    missing = [old for old in FIXTURE["modules"] if old not in LEGACY_MODULES and old != "components.spec"]
    assert missing == [], "add them to components/legacy_paths.py"
    spec = importlib.import_module("components.spec")
    assert callable(spec.build_spec) and issubclass(spec.SpecError, ValueError)


def test_the_old_fixed_settings_provider_checks_and_updates():
    provider = load("components.fixed_settings.FixedSettingsProvider")
    old = {"cluster_name": "c1", "home_dir": "/home/work", "app_dir": "/home/work/app/pegasus",
           "data_disk_count": 2, "data_disk_size_gib": 100}
    assert [f.property for f in provider.check(old, {**old, "home_dir": "/data"}).failures] == ["home_dir"]
    assert provider.update("fixed-settings-c1", old, {**old, "data_disk_size_gib": 200}).outs["data_disk_size_gib"] \
        == 200


HOSTS = {"replica-0": "127.0.0.1", "replica-1": "127.0.0.2", "meta-0": "127.0.0.1", "meta-1": "127.0.0.2"}


def access(sshd) -> dict:
    """As this version's program gives it: an update's inputs are always the running program's."""
    return {"user": sshd.user, "port": sshd.port, "private_key": sshd.client_key_path.read_text(), "bastion": None,
            "known_hosts": [sshd.pin("127.0.0.1"), sshd.pin("127.0.0.2")]}


def test_the_old_rolling_restart_provider_rolls_a_change_and_deletes(sshd, tmp_path):
    staged = StagedScripts(tmp_path, HOSTS)
    provider = load("components.rolling_restart.RollingRestartProvider")
    old = {"restart_records": {"replica-0/replica": "v1", "replica-1/replica": "v1"}, "hosts": HOSTS,
           "staged_dir": str(staged.dir), "access": access(sshd), "restarted": []}
    new = {**old, "restart_records": {"replica-0/replica": "v1", "replica-1/replica": "v2"}}

    result = provider.update("rolling-restart", old, new)

    assert result.outs["restarted"] == ["replica-1/replica"]
    # Every server asked what it runs (in parallel), then the changed one rolled.
    assert sorted(staged.runs()[:2]) == ["127.0.0.1 replica probe", "127.0.0.2 replica probe"]
    assert staged.runs()[2:] == ["127.0.0.2 replica roll"]
    assert provider.delete("rolling-restart", result.outs) is None


def test_the_old_health_provider_checks_the_cluster_and_deletes(sshd, tmp_path):
    staged = StagedScripts(tmp_path, HOSTS)
    provider = load("components.cluster_health.ClusterHealthProvider")
    props = {"run": "2", "script": "echo 'health-check: cluster healthy: 2 ReplicaServers ALIVE'",
             "check_hosts": ["meta-0", "meta-1"], "hosts": HOSTS, "staged_dir": str(staged.dir),
             "access": access(sshd)}

    result = provider.update("health", {**props, "run": "1"}, props)

    assert result.outs["report"] == "2 ReplicaServers ALIVE"
    assert provider.delete("health", result.outs) is None


def test_the_old_zookeeper_guard_deletes_the_path_in_a_fresh_interpreter(zookeeper_server, zookeeper_client):
    cluster_name = f"c-{uuid.uuid4().hex[:10]}"
    props = {"cluster_name": cluster_name, "servers": zookeeper_server.hosts, "owner": "acme/pegasus/dev",
             "retain": False, "adopt": False, "tunnel": None, "timeout_seconds": 30, "path": None, "claim_id": None}
    created = ZooKeeperPathGuardProvider().create(props)
    assert zookeeper_client.exists(f"/pegasus/{cluster_name}")
    outputs = {**props, **created.outs,
               "__provider": FIXTURE["providers"]["components.zookeeper_path_guard.ZooKeeperPathGuardProvider"]}
    script = """
        import base64, json, sys
        import dill
        from pulumi.runtime._serialization import _deserialize
        outputs = json.loads(sys.stdin.read())
        provider = _deserialize(lambda: dill.loads(base64.b64decode(outputs["__provider"])))
        provider.delete(outputs["claim_id"], outputs)
        """

    finished = run_fresh(script, json.dumps(outputs))

    assert finished.returncode == 0, finished.stderr
    assert not zookeeper_client.exists(f"/pegasus/{cluster_name}")


@pytest.mark.parametrize("old", sorted(LEGACY_MODULES))
def test_no_old_path_is_also_a_file(old):
    """An old path answered by a file of its own would shadow the table (and hold stale code)."""
    assert not (PROJECT_DIR / (old.replace(".", "/") + ".py")).exists()
