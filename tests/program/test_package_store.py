"""The package store (issue 10): uploaded once per stack to a private, encrypted bucket,
read by each Pegasus server with its own role through an S3 gateway endpoint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from components.resources.package_store import bucket_prefix
from tests.program.fake_aws import FakeCloud
from tests.program.test_program import COPY, INSTANCE, with_

BUCKET = "aws:s3/bucket:Bucket"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
PROFILE = "aws:iam/instanceProfile:InstanceProfile"
STORE_TYPES = (BUCKET, OBJECT, ENDPOINT, ROLE, ROLE_POLICY, PROFILE,
               "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
               "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
               "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
PEGASUS_HOSTS = {"meta-0", "meta-1", "meta-2", "replica-0", "replica-1", "replica-2"}


def _one(d, token):
    found = d.of_type(token)
    assert len(found) == 1, (token, [r.name for r in found])
    return found[0]


def test_the_bucket_is_private_encrypted_and_goes_with_the_stack(deploy, base_config):
    d = deploy(base_config)
    bucket = _one(d, BUCKET)
    assert bucket.inputs["forceDestroy"] is True  # destroy (retainData too) leaves no package behind
    assert bucket.inputs["bucketPrefix"] == "pegasus-c1-"
    block = _one(d, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(block.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                 "restrictPublicBuckets"))
    ownership = _one(d, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert ownership.inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    encryption = _one(d, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    package = _one(d, OBJECT)
    assert package.inputs["serverSideEncryption"] == "AES256"
    assert package.inputs["checksumAlgorithm"] == "SHA256"  # S3 refuses a corrupted upload
    assert package.inputs["bucket"] == block.inputs["bucket"] == encryption.inputs["bucket"]
    # The object is written only once the bucket is private and encrypted.
    assert {block.name, ownership.name, encryption.name} <= d.ancestors(package.name)


def test_bucket_names_are_made_of_what_s3_allows():
    assert bucket_prefix("Prod_KV") == "pegasus-prod-kv-"
    assert len(bucket_prefix("x" * 64)) <= 37 and bucket_prefix("x" * 64).endswith("-")


def test_one_object_per_stack_named_after_the_build(deploy, base_config):
    d = deploy(with_(base_config, replica={"count": 5}))
    package = _one(d, OBJECT)
    path = Path(base_config["package"])
    assert package.inputs["key"] == f"packages/{hashlib.sha256(path.read_bytes()).hexdigest()}/{path.name}"
    assert d.count(COPY) == 0, "in s3 mode no package crosses SSH"


def test_a_new_package_is_one_new_object_under_the_same_resource(deploy, base_config, other_package):
    before = _one(deploy(base_config), OBJECT)
    after = _one(deploy(with_(base_config, package=str(other_package))), OBJECT)
    assert after.urn == before.urn  # one resource: Pulumi replaces it (a new key), deleting the old object
    assert after.inputs["key"] != before.inputs["key"]
    assert after.inputs["key"].endswith("/pegasus-server-2.5.1-1234abc-glibc2.17-release.tar.gz")


def test_the_role_reads_only_the_package_prefix_of_its_bucket(deploy, base_config):
    d = deploy(base_config)
    trust = json.loads(_one(d, ROLE).inputs["assumeRolePolicy"])
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ec2.amazonaws.com"}]
    policy = json.loads(_one(d, ROLE_POLICY).inputs["policy"])
    bucket = _one(d, BUCKET)
    bucket_arn = f"arn:aws:s3:::{bucket.inputs['bucketPrefix']}"
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "s3:GetObject"
    assert statement["Resource"].startswith(bucket_arn) and statement["Resource"].endswith("/packages/*")
    assert "*" not in statement["Resource"][:-1]  # no wildcard but the prefix's
    assert _one(d, PROFILE).inputs["role"].startswith("c1-server-role")


def test_every_pegasus_server_carries_the_profile_and_zookeeper_none(deploy, base_config):
    d = deploy(base_config)
    profile = _one(d, PROFILE)
    for instance in d.of_type(INSTANCE):
        if instance.inputs["tags"]["pegasus:node"] in PEGASUS_HOSTS:
            assert instance.inputs["iamInstanceProfile"].startswith("c1-server-profile"), instance.name
            assert profile.urn in instance.dependencies
        else:  # ZooKeeper hosts read no package: least privilege
            assert not instance.inputs.get("iamInstanceProfile"), instance.name
    assert {i.name for i in d.of_type(INSTANCE) if i.inputs.get("iamInstanceProfile")} == {
        f"c1-{h}" for h in PEGASUS_HOSTS}


def test_the_endpoint_sits_on_the_servers_route_table(deploy, base_config):
    private = _one(deploy(base_config), ENDPOINT)
    assert private.inputs["vpcEndpointType"] == "Gateway"
    assert private.inputs["serviceName"] == "com.amazonaws.eu-west-1.s3"
    [table] = private.inputs["routeTableIds"]
    assert table.startswith("c1-private-routes-")
    public = _one(deploy(with_(base_config, network={"adminCidr": "203.0.113.0/24", "publicAddresses": True})),
                  ENDPOINT)
    assert [t.split("-routes-")[0] for t in public.inputs["routeTableIds"]] == ["c1-public"]


def test_an_existing_subnet_gets_the_endpoint_on_its_own_table_else_the_main_one(deploy, base_config):
    existing = with_(base_config, network={"adminCidr": "203.0.113.0/24", "vpcId": "vpc-0123456789abcdef0",
                                           "subnetId": "subnet-0123456789abcdef0"})
    main = _one(deploy(existing), ENDPOINT)
    assert main.inputs["routeTableIds"] == ["rtb-0main0000000000"] and main.inputs["vpcId"] == "vpc-0123456789abcdef0"
    own = _one(deploy(existing, cloud=FakeCloud(subnet_route_tables=["rtb-0subnet00000000"])), ENDPOINT)
    assert own.inputs["routeTableIds"] == ["rtb-0subnet00000000"]


def test_an_existing_vpc_may_keep_its_own_s3_endpoint(deploy, base_config):
    d = deploy(with_(base_config, network={"adminCidr": "203.0.113.0/24", "vpcId": "vpc-0123456789abcdef0",
                                           "subnetId": "subnet-0123456789abcdef0", "s3Endpoint": "existing"}))
    assert d.count(ENDPOINT) == 0  # AWS refuses a second one on the same route table
    assert d.count(OBJECT) == 1 and d.count(PROFILE) == 1
    assert {"c1-package", "c1-package-read"} <= d.ancestors("c1-replica-0-package")


def test_each_server_fetches_the_package_itself_after_the_store_is_ready(deploy, base_config):
    d = deploy(base_config)
    bucket = _one(d, BUCKET)
    for host in PEGASUS_HOSTS:
        package = d.resources[f"c1-{host}-package"]
        script = package.inputs["create"]
        assert "fetch-package" in script and "install-package" in script
        assert f"https://{bucket.inputs['bucketPrefix']}" in script and ".s3.eu-west-1.amazonaws.com/packages/" in script
        assert f"host='{host} (c1-{host}-" in script  # the host and its instance: a new instance fetches again
        assert {"c1-package", "c1-package-read", "c1-s3-endpoint", "c1-server-profile"} <= d.ancestors(package.name)
        assert f"c1-{host}-package-upload" not in d.resources


def test_direct_upload_keeps_the_ssh_copy_and_makes_no_store(deploy, base_config):
    d = deploy(with_(base_config, packageDelivery="upload"))
    uploads = {r.name for r in d.of_type(COPY)}
    assert uploads == {f"c1-{h}-package-upload" for h in PEGASUS_HOSTS}
    for token in STORE_TYPES:
        assert d.count(token) == 0, token
    assert not [i.name for i in d.of_type(INSTANCE) if i.inputs.get("iamInstanceProfile")]
    for host in PEGASUS_HOSTS:
        script = d.resources[f"c1-{host}-package"].inputs["create"]
        assert "fetch-package" not in script and "install-package" in script


def test_a_preview_of_a_new_stack_fetches_with_what_is_known_later(preview, base_config):
    p = preview(base_config)
    assert not [r for r in p.resources.values() if r.type == COPY]
    # The bucket's name is the cloud's answer: the fetch script is unknown until then.
    assert "create" in p.cloud.unknown_inputs["c1-replica-0-package"]
    # The object's source is the local file, known at preview.
    assert "source" not in p.cloud.unknown_inputs["c1-package"]
