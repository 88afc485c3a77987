"""What `retainData` says it keeps, per kind of machines and of ZooKeeper ensemble (issue 20, item 12).

The MetaServers' tables live in ZooKeeper under /pegasus/<clusterName>; an
ensemble this stack runs takes them with it at destroy (remove_zookeeper.sh
removes its data, retained or not), so only an ensemble of your own keeps it.
"""

from __future__ import annotations

import copy

import pytest

from tests.program.test_own_servers import own_config  # noqa: F401  (a fixture)

EXTERNAL = {"servers": "10.9.0.5:2181,10.9.0.6:2181,10.9.0.7:2181"}


def notices(deploy, raw: dict, caplog) -> list[str]:
    caplog.set_level("INFO")
    deploy(raw)
    return [r.getMessage() for r in caplog.records if "retain" in r.getMessage()]


def test_with_a_provisioned_ensemble_it_says_the_path_goes_and_how_the_data_can_come_back(deploy, base_config,
                                                                                        caplog):
    [notice] = notices(deploy, {**base_config, "retainData": True}, caplog)
    assert notice.startswith("retainData is set: `pulumi destroy` keeps each ReplicaServer's data volumes")
    assert "The ZooKeeper path /pegasus/c1 is not kept" in notice and "(zookeeper.servers)" in notice
    assert "never attaches kept ones" in notice
    assert "recover_from_replica_server = true" in notice and "`recover -f <node list>`" in notice


def test_with_an_ensemble_of_your_own_it_says_the_path_stays_there(deploy, base_config, caplog):
    [notice] = notices(deploy, {**base_config, "retainData": True, "zookeeper": EXTERNAL}, caplog)
    assert f"/pegasus/c1 stays on your ZooKeeper ensemble ({', '.join(EXTERNAL['servers'].split(','))})" in notice
    assert "is not kept" not in notice


@pytest.mark.parametrize("zookeeper", ["provisioned", "external"])
def test_on_your_own_servers_it_says_the_directories_stay_and_an_up_starts_from_them(
        deploy, own_config, caplog, zookeeper):  # noqa: F811
    raw = copy.deepcopy(own_config)
    raw["retainData"] = True
    if zookeeper == "external":
        del raw["servers"]["zookeeper"]
        raw["zookeeper"] = EXTERNAL
    [notice] = notices(deploy, raw, caplog)
    assert "keeps on each ReplicaServer its data directories (<disk>/pegasus/c1)" in notice
    assert "removes the rest of what it made there" in notice
    assert "`pulumi up` again on the same servers" in notice
    assert ("is not kept" in notice) == (zookeeper == "provisioned")


def test_without_retain_data_nothing_is_said(deploy, base_config, caplog):
    assert notices(deploy, base_config, caplog) == []
