"""S3, IAM and the S3 gateway endpoint, played by the local cloud with real effects.

Buckets, their settings and objects are made in moto's S3, roles, role
policies and instance profiles in moto's IAM (aws_services.py), from the
program's inputs as the AWS provider would send them; the metadata service
hands an instance its profile's role credentials (instance_metadata.py), and
S3 judges them by the role's policy. A gateway endpoint has no API here: it
opens the machines' route to S3 (vpc_routes.py, through network_policy.py).

Names as the provider makes them: a bucket from `bucketPrefix` gets a unique
suffix (26 characters, as terraform-provider-aws's id.PrefixedUniqueId); a
role, role policy or profile without a `name` gets Pulumi's auto-name
(`<resource name>-<7 hex>`). Replacements: a new bucket name, object key or
bucket, role or profile name replaces (as ForceNew in the provider); the
rest updates in place. A bucket is deleted with its objects only when
`forceDestroy` is set (BucketNotEmpty otherwise, as S3 answers).
"""

from __future__ import annotations

import secrets
import time

from .resource_type import REPLACE, SAME, UPDATE, ResourceType, hex_id
from tools.localcloud.private_dns import REGION

BUCKET = "aws:s3/bucket:Bucket"


def _changed(old: dict, new: dict) -> set[str]:
    return {k for k in set(old) | set(new) if old.get(k) != new.get(k)}


def _diff(old: dict, inputs: dict, replacing: set[str]) -> str:
    if old["inputs"] == inputs:
        return SAME
    return REPLACE if _changed(old["inputs"], inputs) & replacing else UPDATE


def _auto_name(name: str, inputs: dict) -> str:
    return inputs.get("name") or f"{inputs.get('namePrefix') or name + '-'}{secrets.token_hex(4)[:7]}"


def _buckets_changed(mocks) -> None:
    mocks.cloud.set_buckets(set(mocks.cloud.aws.buckets()))


class Bucket(ResourceType):
    def create(self, mocks, name, raw, inputs):
        bucket = inputs.get("bucket") or f"{inputs.get('bucketPrefix') or 'terraform-'}" \
            f"{time.strftime('%Y%m%d%H%M%S')}{secrets.token_hex(6)}"[:63]
        mocks.cloud.aws.client("s3").create_bucket(Bucket=bucket,
                                                   CreateBucketConfiguration={"LocationConstraint": REGION})
        _buckets_changed(mocks)
        return bucket, {"id": bucket, "bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "region": REGION,
                        "bucketDomainName": f"{bucket}.s3.amazonaws.com",
                        "bucketRegionalDomainName": f"{bucket}.s3.{REGION}.amazonaws.com"}

    def diff(self, mocks, old, raw, inputs):
        return _diff(old, inputs, {"bucket", "bucketPrefix", "objectLockEnabled"})

    def delete(self, mocks, record):
        s3, bucket = mocks.cloud.aws.client("s3"), record["id"]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        if keys and not record["inputs"].get("forceDestroy"):
            raise ValueError(f"deleting S3 bucket {bucket}: BucketNotEmpty: {len(keys)} objects "
                             "(forceDestroy is not set)")
        for key in keys:
            s3.delete_object(Bucket=bucket, Key=key)
        s3.delete_bucket(Bucket=bucket)
        _buckets_changed(mocks)


class _BucketSetting(ResourceType):
    """A bucket's sub-resource: put on create and update, removed on delete."""

    def create(self, mocks, name, raw, inputs):
        self.put(mocks.cloud.aws.client("s3"), inputs)
        return inputs["bucket"], {"id": inputs["bucket"]}

    def diff(self, mocks, old, raw, inputs):
        return _diff(old, inputs, {"bucket", "expectedBucketOwner"})

    def update(self, mocks, old, raw, inputs):
        self.put(mocks.cloud.aws.client("s3"), inputs)
        return old["extras"]

    def delete(self, mocks, record):
        s3 = mocks.cloud.aws.client("s3")
        if record["id"] in mocks.cloud.aws.buckets():
            self.remove(s3, record["id"])

    def put(self, s3, inputs: dict) -> None:
        raise NotImplementedError

    def remove(self, s3, bucket: str) -> None:
        raise NotImplementedError


class BucketPublicAccessBlock(_BucketSetting):
    def put(self, s3, inputs):
        s3.put_public_access_block(Bucket=inputs["bucket"], PublicAccessBlockConfiguration={
            "BlockPublicAcls": bool(inputs.get("blockPublicAcls")),
            "BlockPublicPolicy": bool(inputs.get("blockPublicPolicy")),
            "IgnorePublicAcls": bool(inputs.get("ignorePublicAcls")),
            "RestrictPublicBuckets": bool(inputs.get("restrictPublicBuckets"))})

    def remove(self, s3, bucket):
        s3.delete_public_access_block(Bucket=bucket)


class BucketOwnershipControls(_BucketSetting):
    def put(self, s3, inputs):
        s3.put_bucket_ownership_controls(Bucket=inputs["bucket"], OwnershipControls={
            "Rules": [{"ObjectOwnership": inputs["rule"]["objectOwnership"]}]})

    def remove(self, s3, bucket):
        s3.delete_bucket_ownership_controls(Bucket=bucket)


class BucketServerSideEncryptionConfiguration(_BucketSetting):
    def put(self, s3, inputs):
        rules = []
        for rule in inputs.get("rules") or []:
            default = rule.get("applyServerSideEncryptionByDefault") or {}
            entry: dict = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": default["sseAlgorithm"]}}
            if default.get("kmsMasterKeyId"):
                entry["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] = default["kmsMasterKeyId"]
            if rule.get("bucketKeyEnabled") is not None:
                entry["BucketKeyEnabled"] = bool(rule["bucketKeyEnabled"])
            rules.append(entry)
        s3.put_bucket_encryption(Bucket=inputs["bucket"], ServerSideEncryptionConfiguration={"Rules": rules})

    def remove(self, s3, bucket):
        s3.delete_bucket_encryption(Bucket=bucket)


class BucketObject(ResourceType):
    """aws:s3/bucketObjectv2: the object's bytes from `source` (a file asset) or `content`."""

    def _put(self, mocks, inputs: dict) -> dict:
        source = inputs.get("source")
        body = open(source["path"], "rb").read() if isinstance(source, dict) and source.get("path") \
            else (inputs.get("content") or "").encode()
        extra = {k: inputs[v] for k, v in (("ServerSideEncryption", "serverSideEncryption"),
                                          ("ContentType", "contentType"),
                                          ("ChecksumAlgorithm", "checksumAlgorithm")) if inputs.get(v)}
        answer = mocks.cloud.aws.client("s3").put_object(Bucket=inputs["bucket"], Key=inputs["key"], Body=body,
                                                         **extra)
        return {"id": inputs["key"], "etag": answer["ETag"].strip('"'), "versionId": answer.get("VersionId", ""),
                "serverSideEncryption": answer.get("ServerSideEncryption", "")}

    def create(self, mocks, name, raw, inputs):
        extras = self._put(mocks, inputs)
        return inputs["key"], extras

    def diff(self, mocks, old, raw, inputs):
        return _diff(old, inputs, {"bucket", "key"})

    def update(self, mocks, old, raw, inputs):
        return self._put(mocks, inputs)

    def delete(self, mocks, record):
        bucket = record["inputs"]["bucket"]
        if bucket in mocks.cloud.aws.buckets():
            mocks.cloud.aws.client("s3").delete_object(Bucket=bucket, Key=record["inputs"]["key"])


class Role(ResourceType):
    def create(self, mocks, name, raw, inputs):
        role_name = _auto_name(name, inputs)
        role = mocks.cloud.aws.client("iam").create_role(
            RoleName=role_name, AssumeRolePolicyDocument=inputs["assumeRolePolicy"], Path=inputs.get("path") or "/",
            Description=inputs.get("description") or "")["Role"]
        return role_name, {"id": role_name, "name": role_name, "arn": role["Arn"], "uniqueId": role["RoleId"]}

    def diff(self, mocks, old, raw, inputs):
        return _diff(old, inputs, {"name", "namePrefix", "path"})

    def update(self, mocks, old, raw, inputs):
        mocks.cloud.aws.client("iam").update_assume_role_policy(RoleName=old["id"],
                                                                 PolicyDocument=inputs["assumeRolePolicy"])
        return old["extras"]

    def delete(self, mocks, record):
        # IAM refuses (DeleteConflict) while policies or profiles hold it: those go first.
        mocks.cloud.aws.client("iam").delete_role(RoleName=record["id"])


class RolePolicy(ResourceType):
    def create(self, mocks, name, raw, inputs):
        policy_name = _auto_name(name, inputs)
        self._put(mocks, inputs["role"], policy_name, inputs["policy"])
        return f"{inputs['role']}:{policy_name}", {"name": policy_name}

    @staticmethod
    def _put(mocks, role: str, policy_name: str, policy: str) -> None:
        mocks.cloud.aws.client("iam").put_role_policy(RoleName=role, PolicyName=policy_name, PolicyDocument=policy)

    def diff(self, mocks, old, raw, inputs):
        return _diff(old, inputs, {"name", "namePrefix", "role"})

    def update(self, mocks, old, raw, inputs):
        self._put(mocks, inputs["role"], old["extras"]["name"], inputs["policy"])
        return old["extras"]

    def delete(self, mocks, record):
        mocks.cloud.aws.client("iam").delete_role_policy(RoleName=record["inputs"]["role"],
                                                         PolicyName=record["extras"]["name"])


class InstanceProfile(ResourceType):
    def create(self, mocks, name, raw, inputs):
        iam = mocks.cloud.aws.client("iam")
        profile_name = _auto_name(name, inputs)
        profile = iam.create_instance_profile(InstanceProfileName=profile_name,
                                              Path=inputs.get("path") or "/")["InstanceProfile"]
        if inputs.get("role"):
            iam.add_role_to_instance_profile(InstanceProfileName=profile_name, RoleName=inputs["role"])
        return profile_name, {"id": profile_name, "name": profile_name, "arn": profile["Arn"],
                              "uniqueId": profile["InstanceProfileId"]}

    def diff(self, mocks, old, raw, inputs):
        return _diff(old, inputs, {"name", "namePrefix", "path"})

    def update(self, mocks, old, raw, inputs):
        iam = mocks.cloud.aws.client("iam")
        if old["inputs"].get("role") != inputs.get("role"):
            if old["inputs"].get("role"):
                iam.remove_role_from_instance_profile(InstanceProfileName=old["id"], RoleName=old["inputs"]["role"])
            if inputs.get("role"):
                iam.add_role_to_instance_profile(InstanceProfileName=old["id"], RoleName=inputs["role"])
        return old["extras"]

    def delete(self, mocks, record):
        iam = mocks.cloud.aws.client("iam")
        if record["inputs"].get("role"):
            iam.remove_role_from_instance_profile(InstanceProfileName=record["id"], RoleName=record["inputs"]["role"])
        iam.delete_instance_profile(InstanceProfileName=record["id"])


class VpcEndpoint(ResourceType):
    """No API here: its effect is the machines' route to S3 (network_policy.py -> vpc_routes.py)."""

    def create(self, mocks, name, raw, inputs):
        endpoint_id = hex_id("vpce")
        return endpoint_id, {"id": endpoint_id, "state": "available", "prefixListId": hex_id("pl", 8),
                             "arn": f"arn:aws:ec2:{REGION}:{mocks.cloud.aws.account}:vpc-endpoint/{endpoint_id}"}

    def diff(self, mocks, old, raw, inputs):
        return _diff(old, inputs, {"vpcId", "serviceName", "vpcEndpointType"})


RESOURCE_TYPES = {
    BUCKET: Bucket,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": BucketPublicAccessBlock,
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": BucketOwnershipControls,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
        BucketServerSideEncryptionConfiguration,
    "aws:s3/bucketObjectv2:BucketObjectv2": BucketObject,
    "aws:iam/role:Role": Role,
    "aws:iam/rolePolicy:RolePolicy": RolePolicy,
    "aws:iam/instanceProfile:InstanceProfile": InstanceProfile,
    "aws:ec2/vpcEndpoint:VpcEndpoint": VpcEndpoint,
}
