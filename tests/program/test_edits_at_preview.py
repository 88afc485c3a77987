"""Edits to a deployed stack, previewed by the local engine against that stack's state (issue 20).

Every edit must be either refused by the preview (naming the key and the
safe way) or carried out completely. The engine (tests/e2e/localcloud) runs
the providers' checks and diffs as `pulumi preview` does, on the state that
`seeded_engine` made from the unchanged stack deployed under mocks.
"""

from __future__ import annotations

import copy

import pytest

from tests.e2e.localcloud.engine import DeploymentError
from tests.program.test_program import with_
from tests.support.pulumi_program import stack_config
from tests.support.seeded_engine import seeded_engine

VOLUME = "aws:ebs/volume:Volume"
EXTERNAL = "10.9.0.5:2181,10.9.0.6:2181,10.9.0.7:2181"


@pytest.fixture
def deployed(tmp_path):
    """The engine on the state of `config` deployed; preview(config) previews an edit of it."""
    class Deployed:
        def __init__(self, config: dict):
            self.config = copy.deepcopy(config)
            self.engine = seeded_engine(config, tmp_path / "state.json")

        def preview(self, config: dict, replace=()):
            return self.engine.preview(stack_config("pegasus", config), replace=replace)

        def refusal(self, config: dict) -> str:
            with pytest.raises(DeploymentError) as error:
                self.preview(config)
            return str(error.value)
    return Deployed


def planned(log) -> dict[str, str]:
    return {op.name: op.action for op in log.operations}


def test_the_unchanged_stack_previews_only_its_every_up_checks(deployed, base_config):
    assert planned(deployed(base_config).preview(base_config)) == {"c1-health": "update", "c1-host-keys": "update"}


def test_a_new_cluster_name_is_refused_although_every_resource_is_named_under_it(deployed, base_config):
    stack = deployed(base_config)
    message = stack.refusal(with_(base_config, clusterName="c2"))
    assert "pegasus:clusterName is 'c1' on this stack's servers" in message and "Set it back to 'c1'" in message


@pytest.mark.parametrize("edit", ["added", "removed"])
def test_a_shared_log_disk_added_or_removed_is_refused(deployed, base_config, edit):
    with_slog = with_(base_config, replica={"slogDisk": {"type": "gp3", "sizeGiB": 50}})
    before, after = (base_config, with_slog) if edit == "added" else (with_slog, base_config)
    message = deployed(before).refusal(after)
    assert "pegasus:replica.slogDisk" in message and "shared log" in message


def test_a_shared_log_disk_changes_type_and_grows_in_place_without_a_restart(deployed, base_config):
    stack = deployed(with_(base_config, replica={"slogDisk": {"type": "io2", "sizeGiB": 50, "iops": 3000}}))
    plan = planned(stack.preview(with_(base_config, replica={"slogDisk": {"type": "gp3", "sizeGiB": 80}})))
    assert {plan[f"c1-replica-{i}-slog"] for i in range(3)} == {"update"}
    assert {plan[f"c1-replica-{i}-disks"] for i in range(3)} == {"update"}  # grows the file system
    assert "c1-rolling-restart" not in plan


def test_a_shared_log_disk_made_smaller_is_refused(deployed, base_config):
    stack = deployed(with_(base_config, replica={"slogDisk": {"type": "gp3", "sizeGiB": 80}}))
    message = stack.refusal(with_(base_config, replica={"slogDisk": {"type": "gp3", "sizeGiB": 50}}))
    assert "pegasus:replica.slogDisk.sizeGiB was 80, now 50" in message


def test_grown_data_disks_grow_each_file_system_and_restart_nothing(deployed, base_config):
    stack = deployed(base_config)
    plan = planned(stack.preview(with_(base_config, replica={"dataDisks": {"count": 2, "sizeGiB": 200}})))
    volumes = {f"c1-replica-{i}-data{d}" for i in range(3) for d in (1, 2)}
    assert {plan[v] for v in volumes} == {"update"}, "a volume grows in place, never replaced"
    # The disk script of each ReplicaServer runs again: it grows the file systems on the host.
    assert {plan[f"c1-replica-{i}-disks"] for i in range(3)} == {"update"}
    assert "c1-rolling-restart" not in plan and not [n for n, a in plan.items() if a in ("replace", "delete")]


def test_a_provisioned_ensemble_keeps_its_size(deployed, base_config):
    message = deployed(base_config).refusal(with_(base_config, zookeeper={"count": 5}))
    assert "pegasus:zookeeper.count is 3 on this stack's ensemble" in message and "reconfig" in message


@pytest.mark.parametrize("direction", ["to an external ensemble", "to a provisioned one"])
def test_moving_between_a_provisioned_and_an_external_ensemble_is_refused(deployed, base_config, direction):
    provisioned, external = base_config, with_(base_config, zookeeper={"servers": EXTERNAL})
    before, after = (provisioned, external) if direction == "to an external ensemble" else (external, provisioned)
    message = deployed(before).refusal(after)
    assert "pegasus:zookeeper.servers" in message and "/pegasus/c1" in message


def test_an_external_ensemble_moved_to_other_servers_is_refused(deployed, base_config):
    stack = deployed(with_(base_config, zookeeper={"servers": EXTERNAL}))
    message = stack.refusal(with_(base_config, zookeeper={"servers": "10.8.0.1:2181,10.8.0.2:2181,10.8.0.3:2181"}))
    assert "pegasus:zookeeper.servers" in message and "no server in common" in message


def test_an_external_ensemble_with_one_server_replaced_rolls_the_metaservers_onto_the_new_list(
        deployed, base_config):
    stack = deployed(with_(base_config, zookeeper={"servers": EXTERNAL}))
    plan = planned(stack.preview(with_(base_config, zookeeper={"servers": EXTERNAL.replace("10.9.0.6", "10.9.0.8")})))
    # The path guard checks the new list reaches the ensemble that holds this cluster's path
    # (an update: a replacement would release the path on the old list at the end).
    assert plan["c1-zookeeper-path"] == "update"
    assert plan["c1-rolling-restart"] == "update"
    assert not [n for n, a in plan.items() if a in ("replace", "delete")]


def test_replacing_a_zookeeper_server_rolls_the_ensemble_instead_of_restarting_it_at_once(
        deployed, base_config):
    plan = planned(deployed(base_config).preview(base_config, replace=["c1-zk-1"]))
    assert plan["c1-zk-1"] == "replace"
    # The other servers' zoo.cfg is staged; the ZooKeeper roll restarts them one at a time.
    assert plan["c1-zookeeper-roll"] == "update"
    assert plan["c1-zookeeper-path"] == "update"


def test_fewer_or_smaller_data_disks_are_refused(deployed, base_config):
    # Pulumi hands a dynamic provider its numbers as floats: the check must still compare them.
    stack = deployed(with_(base_config, replica={"dataDisks": {"count": 3, "sizeGiB": 200}}))
    message = stack.refusal(with_(base_config, replica={"dataDisks": {"count": 2, "sizeGiB": 100}}))
    assert "pegasus:replica.dataDisks.count was 3, now 2" in message
    assert "pegasus:replica.dataDisks.sizeGiB was 200, now 100" in message


def test_a_new_metaserver_starts_before_the_roll_tells_the_others_of_it(deployed, deploy, base_config):
    stack = deployed(with_(base_config, meta={"count": 2}))
    plan = planned(stack.preview(base_config))
    assert plan["c1-meta-2-meta"] == "create" and plan["c1-rolling-restart"] == "update"
    assert not [n for n, a in plan.items() if a in ("replace", "delete")]
    # Its first start (with the whole list) comes before the roll restarts the others onto that list.
    assert "c1-meta-2-meta" in deploy(base_config).ancestors("c1-rolling-restart")


def test_a_dropped_metaserver_goes_only_after_the_others_rolled_onto_the_shorter_list(deployed, base_config):
    plan = planned(deployed(base_config).preview(with_(base_config, meta={"count": 2})))
    assert plan["c1-rolling-restart"] == "update"
    # Deletes come last in a deployment: meta-2 stops (stop_role) once no server lists it.
    assert plan["c1-meta-2-meta"] == "delete" and plan["c1-meta-2"] == "delete"
    assert not [n for n, a in plan.items() if a == "replace"]
