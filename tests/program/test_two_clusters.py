"""Two clusters in one program, one stack and one VPC: nothing of one collides with the other.

The program (programs/two_clusters) builds the stack's cluster as __main__.py
does and a second one beside it, as a user's own program would.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from components.resources.monitoring import MONITORING_HOST
from tests.program.fake_aws import FakeCloud, RecordingMonitor
from tests.support.pulumi_program import run_program, stack_config

PROGRAM = Path(__file__).parent / "programs" / "two_clusters" / "__main__.py"
SHARED_VPC = {"adminCidr": "203.0.113.0/24", "vpcId": "vpc-0a1b2c3d4e5f60718", "subnetId": "subnet-0a1b2c3d4e5f60718"}
# Inputs that name a thing in the AWS account (the others are named by the provider
# from the resource's name, unique with its URN).
PHYSICAL_NAMES = ("name", "namePrefix", "keyName", "bucket", "bucketPrefix", "roleName")
GUARD = "pulumi-python:dynamic/pegasus:ZooKeeperPathGuard"
# Named without the cluster by the stack's cluster, so that a new clusterName keeps their URN
# (ResourceNames.of_the_stack); they keep the URN they had under the cluster's name.
STACK_SCOPED = {"fixed-settings"}
# Made after the rename, under the cluster's name from the start: no old name to claim.
NEW_SINCE_THE_RENAME = (":HostKeyPair::", ":HostKeyPin::")


def two_clusters(base_config: dict, **second) -> FakeCloud:
    """The first cluster from base_config, the second from base_config with `second` laid over it;
    both in one existing VPC, where only the first makes the S3 gateway endpoint (AWS refuses two
    on one route table)."""
    overrides = {"clusterName": "c2", "network": {**SHARED_VPC, "s3Endpoint": "existing"}, **second}
    name = overrides.pop("name", None)
    config = {**stack_config("pegasus", {**base_config, "network": SHARED_VPC}),
              "second:overrides": json.dumps(overrides), **({"second:name": name} if name else {})}
    cloud = FakeCloud()
    run_program(cloud, config, program=PROGRAM, secret_keys=["pegasus:ssh"], monitor=RecordingMonitor(cloud))
    return cloud


def cluster_of(name: str) -> str:
    """The cluster a resource belongs to, by the start of its name."""
    return "c1" if name in STACK_SCOPED else name.split("-")[0]


def test_every_urn_is_unique_and_only_the_first_cluster_claims_old_names(base_config):
    cloud = two_clusters(base_config)
    claims = [(urn, aliases) for urn, aliases in cloud.claims if "::pulumi:pulumi:Stack::" not in urn]
    urns = [urn for urn, _ in claims]
    assert len(urns) == len(set(urns)) > 200
    assert {cluster_of(urn.rsplit("::", 1)[1]) for urn in urns} == {"c1", "c2"}
    # (the engine takes each resource's aliases as a set: pulumi-aws repeats its type aliases)
    aliases = Counter(alias for _, names in claims for alias in set(names))
    assert aliases and max(aliases.values()) == 1 and not set(aliases) & set(urns)
    # What was named from a host alone (`replica-0`, `replica-0-data1`) is now under the cluster.
    hosts = {r.inputs["tags"]["pegasus:node"] for r in cloud.resources.values() if r.type == "aws:ec2/instance:Instance"}
    renamed = 0
    for urn, names in claims:
        name = urn.rsplit("::", 1)[1]
        old_names = {n.rsplit("::", 1)[1] for n in names} - {name}  # not pulumi-aws's aliases of a type
        rest = name.removeprefix("c1-")
        # The monitoring's resources (issue 21) came after the renaming: they never had another name.
        born_named = rest.endswith("-node-exporter") or rest.startswith(MONITORING_HOST)
        if name in STACK_SCOPED:
            assert old_names == {f"c1-{name}"}, urn
        elif rest != name and not born_named and any(rest == h or rest.startswith(f"{h}-") for h in hosts) and \
                not any(kind in urn for kind in NEW_SINCE_THE_RENAME):
            assert old_names == {rest}, urn
            renamed += 1
        else:
            assert not old_names, urn  # the second cluster, and names that never changed, claim none
    assert renamed > 60


def test_no_physical_name_tag_or_zookeeper_path_is_shared(base_config):
    cloud = two_clusters(base_config)
    by_cluster: dict[str, list] = {"c1": [], "c2": []}
    for resource in cloud.resources.values():
        by_cluster[cluster_of(resource.name)].append(resource)

    def named(cluster: str) -> set:
        values = {(key, str(r.inputs[key])) for r in by_cluster[cluster] for key in PHYSICAL_NAMES if key in r.inputs}
        return values | {("Name", r.inputs["tags"]["Name"]) for r in by_cluster[cluster]
                         if "Name" in (r.inputs.get("tags") or {})}

    assert named("c1") and named("c2") and not named("c1") & named("c2")
    for cluster in ("c1", "c2"):
        assert {r.inputs["tags"]["pegasus:cluster"] for r in by_cluster[cluster] if r.inputs.get("tags")} == {cluster}
    guards = {r.name: r.inputs for r in cloud.resources.values() if r.type == GUARD}
    assert {g["cluster_name"] for g in guards.values()} == {"c1", "c2"}  # /pegasus/c1, /pegasus/c2
    # The stack's cluster keeps the stack's stamp on its path, as before.
    assert guards["c2-zookeeper-path"]["owner"] == guards["c1-zookeeper-path"]["owner"] + "/c2"
    assert [r.name for r in cloud.resources.values() if r.type == "aws:ec2/vpcEndpoint:VpcEndpoint"] == [
        "c1-s3-endpoint"]


def test_a_second_cluster_given_the_same_cluster_name_does_not_share_its_zookeeper_path(base_config):
    # Same clusterName and one ensemble would mean one /pegasus/<clusterName>: the
    # guard refuses a path another owner stamped, and the two owners differ.
    cloud = two_clusters(base_config, clusterName="c1", name="b", zookeeper={"servers": "10.9.0.10:2181"})
    guards = {r.name: r.inputs for r in cloud.resources.values() if r.type == GUARD}
    assert guards["b-zookeeper-path"]["cluster_name"] == guards["c1-zookeeper-path"]["cluster_name"] == "c1"
    assert guards["b-zookeeper-path"]["owner"] != guards["c1-zookeeper-path"]["owner"]
