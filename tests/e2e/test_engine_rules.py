"""The engine's own rules: preview before up, unknowns, provider checks, URNs and
resource options (ignoreChanges, deleteBeforeReplace, --replace, aliases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.localcloud.engine import DeploymentError, Engine
from tests.e2e.localcloud.testing import skip_unless_local_cloud_possible

pytestmark = [pytest.mark.e2e, skip_unless_local_cloud_possible()]

PROGRAM = Path(__file__).parent / "programs" / "engine_rules" / "__main__.py"
URN = "urn:pulumi:rules::demo::"
LOCAL = "command:local:Command"


@pytest.fixture
def rules(local_cloud, tmp_path):
    engine = Engine(local_cloud, tmp_path / "state.json", PROGRAM, project="demo", stack="rules")
    ledger = tmp_path / "ledger"
    ledger.touch()
    engine.ledger = lambda: ledger.read_text().splitlines()
    yield engine, {"demo:ledger": str(ledger)}
    try:
        engine.destroy()
    except DeploymentError:
        pass


def test_up_previews_first_with_the_clouds_outputs_unknown(rules):
    engine, config = rules
    exports = engine.up(config)
    preview, up = engine.history[-2], engine.history[-1]
    assert (preview.kind, up.kind) == ("preview", "up")
    # In the preview the new VPC's id and ARN were unknown, its inputs known...
    assert preview.exports["vpcId"] is None and preview.exports["vpcArnKnown"] is None
    assert preview.exports["vpcCidr"] == "10.0.0.0/16"
    assert preview.exports["echo"] is None and preview.exports["usesId"] is None
    # ...and an input built from an unknown reached the provider as unknown.
    assert preview.unknown_inputs == {f"{URN}{LOCAL}::uses-id": ["create"]}
    assert all(op.action == "create" for op in preview.operations)
    # The up itself knows everything.
    assert exports["vpcId"].startswith("vpc-") and exports["vpcArnKnown"] is True
    assert exports["echo"] == "1" and exports["usesId"] == exports["vpcId"]


def test_an_update_makes_a_commands_stdout_unknown_and_keeps_other_outputs(rules):
    engine, config = rules
    engine.up(config)
    preview = engine.preview({**config, "demo:tag": "2"})
    assert preview.exports["echo"] is None  # updated: recomputed by the provider
    assert preview.exports["vpcId"].startswith("vpc-")  # unchanged: known
    assert preview.unknown_inputs == {}
    assert engine.last_run.kind == "preview" and engine.ledger().count("create outer") == 1


def test_copy_to_remote_with_an_unknown_source_fails_the_preview_and_the_up(rules):
    engine, config = rules
    with pytest.raises(DeploymentError) as failure:
        engine.up({**config, "demo:badCopy": "true"})
    message = str(failure.value)
    assert message.startswith("preview failed")
    assert "command:remote:CopyToRemote resource 'upload'" in message
    assert "either asset or archive must be set" in message
    assert engine.history[-1].kind == "preview"  # the up never started
    assert engine.state.resources == {} and engine.ledger() == []


def test_state_is_keyed_by_urn_with_the_parent_chain(rules):
    engine, config = rules
    engine.up(config)
    urns = set(engine.state.resources)
    assert f"{URN}demo:index:Group$aws:ec2/vpc:Vpc::group-vpc" in urns
    assert f"{URN}demo:index:Group${LOCAL}::same" in urns and f"{URN}{LOCAL}::same" in urns
    inner = engine.state.resources[f"{URN}demo:index:Group${LOCAL}::same"]
    assert inner["parent"] == f"{URN}demo:index:Group::group"
    uses_id = engine.state.resources[f"{URN}{LOCAL}::uses-id"]
    assert f"{URN}demo:index:Group$aws:ec2/vpc:Vpc::group-vpc" in uses_id["dependencies"]


def test_ignore_changes_keeps_the_old_inputs_in_diff_and_state(rules):
    engine, config = rules
    engine.up(config)
    engine.up({**config, "demo:tag": "2"})
    assert "ignored" not in engine.last_run.names()
    record = engine.state.get_by_name(LOCAL, "ignored")
    assert "create ignored 1" in record["inputs"]["create"]
    # One key of a map (`tags["at-launch"]`): the rest of the map is updated.
    tagged = engine.state.get_by_name("aws:ec2/vpc:Vpc", "tagged")
    assert tagged["inputs"]["tags"] == {"changing": "2", "at-launch": "1"}
    assert "tagged" in engine.last_run.names("update")


def test_delete_before_replace_deletes_first_and_the_default_creates_first(rules):
    engine, config = rules
    engine.up(config)
    engine.up({**config, "demo:tag": "2"})
    log = engine.ledger()
    assert log.index("delete delete-first") < log.index("create delete-first 2")
    assert log.index("create create-first 2") < log.index("delete create-first")


def test_replace_by_name_or_urn_as_pulumi_up_replace(rules):
    engine, config = rules
    engine.up(config)
    engine.up(config, replace=["same", f"{URN}demo:index:Group${LOCAL}::same"])
    replaced = {(op.type, op.name, op.action) for op in engine.last_run.operations}
    assert (LOCAL, "same", "replace") in replaced and (LOCAL, "same", "delete-replaced") in replaced
    assert sum(1 for op in engine.last_run.operations if op.action == "replace") == 2
    assert engine.ledger().count("create outer") == 2 and engine.ledger().count("delete outer") == 1
    with pytest.raises(DeploymentError, match="matches no resource"):
        engine.up(config, replace=["no-such-resource"])


def test_a_renamed_resource_with_an_alias_to_its_old_name_is_updated_in_place(rules):
    engine, config = rules
    engine.up(config)
    old, new = f"{URN}{LOCAL}::aliased", f"{URN}{LOCAL}::aliased-new"
    created = engine.state.get(old)
    engine.up({**config, "demo:renamed": "true", "demo:tag": "2"})
    preview, up = engine.history[-2], engine.history[-1]
    for run in (preview, up):
        assert [(op.name, op.action) for op in run.operations if "aliased" in op.name] == [("aliased-new", "update")]
    assert engine.ledger().count("create aliased") == 1 and "update aliased 2" in engine.ledger()
    assert "delete aliased" not in engine.ledger()
    assert old not in engine.state.resources and engine.state.resources[new]["id"] == created["id"]
    engine.up({**config, "demo:renamed": "true", "demo:tag": "2"})
    assert engine.last_run.operations == []


def test_two_resources_with_an_alias_to_one_old_resource_fail(rules):
    engine, config = rules
    engine.up(config)
    with pytest.raises(DeploymentError, match="Duplicate resource alias '.*::aliased' applied to resource"):
        engine.up({**config, "demo:renamed": "true", "demo:twin": "true"})
    assert engine.history[-1].kind == "preview"  # the up never started
    assert f"{URN}{LOCAL}::aliased" in engine.state.resources and "delete aliased" not in engine.ledger()
