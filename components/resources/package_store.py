"""The stack's package store: the server package in an S3 bucket the stack owns, read by the servers.

`pulumi up` uploads the package once per stack (not once per server); each
Pegasus server fetches it inside the region with its own instance role:

- a private bucket (every public access block on, ACLs off with
  BucketOwnerEnforced) encrypted at rest with SSE-S3 (AES256). SSE-S3 rather
  than SSE-KMS: no key policy to keep in step with the role, no KMS request
  charges, and the package is no secret; it only must not be public.
  `force_destroy`: destroy removes the objects with the bucket (retainData
  keeps no package, it can be uploaded again);
- one object per stack, keyed `packages/<sha256>/<file name>`: a new package
  is a new key, which replaces the object (the old one is deleted once the
  update that moved every server to the new one is done);
- an IAM role for the servers, allowed s3:GetObject under `packages/` of this
  bucket and nothing else, behind an instance profile;
- an S3 gateway endpoint on the servers' route table(s), so the bytes stay
  inside the region without a NAT gateway (a gateway endpoint has no charge);
  none with `network.s3Endpoint: existing` (an existing VPC that has one).
"""

from __future__ import annotations

import json
import re

import pulumi
import pulumi_aws as aws

from components.resources.network import Network
from components.spec.server_package import PackageInfo
from components.spec.model import ClusterSpec

OBJECT_PREFIX = "packages/"
# S3 bucket names: 3-63 of a-z 0-9 . -; bucket_prefix leaves 26 characters to the
# provider's unique suffix, so a prefix is at most 37 characters.
BUCKET_PREFIX_LENGTH = 37


def object_key(package: PackageInfo) -> str:
    """A new build (new sha256) or a new name is a new key: the object is replaced, never overwritten."""
    return f"{OBJECT_PREFIX}{package.sha256}/{package.file_name}"


def bucket_prefix(cluster_name: str) -> str:
    """`pegasus-<cluster>-` in the characters a bucket name allows (cluster names may hold _ and capitals)."""
    name = re.sub(r"[^a-z0-9-]+", "-", cluster_name.lower()).strip("-") or "cluster"
    return f"pegasus-{name}"[: BUCKET_PREFIX_LENGTH - 1].rstrip("-") + "-"


def read_policy(bucket_arn: str) -> str:
    """The servers' role may read the package objects of this bucket, nothing else."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadThePegasusPackage", "Effect": "Allow", "Action": "s3:GetObject",
        "Resource": f"{bucket_arn}/{OBJECT_PREFIX}*"}]})


# EC2 (the service) assumes the role for the instances that carry its profile.
EC2_TRUST_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


class PackageStore(pulumi.ComponentResource):
    bucket: pulumi.Output[str]  # the bucket's name
    key: str
    region: pulumi.Output[str]
    instance_profile: pulumi.Output[str]  # its name, as an instance takes it
    ready: list[pulumi.Resource]  # a fetch waits for these: object, permission, route

    def __init__(self, name: str, spec: ClusterSpec, network: Network,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pegasus:cluster:PackageStore", f"{name}-package-store", None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"pegasus:cluster": spec.cluster_name, "pegasus:stack": spec.stack}
        bucket = aws.s3.Bucket(f"{name}-packages", bucket_prefix=bucket_prefix(spec.cluster_name),
                               force_destroy=True, tags=tags, opts=child)
        private = aws.s3.BucketPublicAccessBlock(
            f"{name}-packages-private", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=child)
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-packages-ownership", bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"), opts=child)
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-packages-encryption", bucket=bucket.id, rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.
                    BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"))], opts=child)
        self.key = object_key(spec.package)
        package = aws.s3.BucketObjectv2(
            f"{name}-package", bucket=bucket.id, key=self.key, source=pulumi.FileAsset(spec.package.path),
            content_type="application/gzip", server_side_encryption="AES256", tags=tags,
            # S3 checks the upload against its SHA-256 and refuses a corrupted one at `up`,
            # rather than every server refusing it later.
            checksum_algorithm="SHA256",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[private, ownership, encryption]))

        role = aws.iam.Role(f"{name}-server-role", assume_role_policy=EC2_TRUST_POLICY,
                            description=f"Pegasus {spec.cluster_name} servers: read the server package",
                            tags=tags, opts=child)
        permission = aws.iam.RolePolicy(f"{name}-package-read", role=role.id,
                                        policy=bucket.arn.apply(read_policy), opts=child)
        profile = aws.iam.InstanceProfile(f"{name}-server-profile", role=role.name, tags=tags, opts=child)

        self.region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        self.bucket = bucket.bucket
        self.instance_profile = profile.name
        self.ready = [package, permission, profile]
        # AWS refuses a second S3 gateway endpoint on a route table that already has
        # one (its route to S3's prefix list exists): network.s3Endpoint: existing.
        if spec.network.s3_endpoint == "create":
            self.ready.append(aws.ec2.VpcEndpoint(
                f"{name}-s3-endpoint", vpc_id=network.vpc_id, vpc_endpoint_type="Gateway",
                service_name=self.region.apply(lambda region: f"com.amazonaws.{region}.s3"),
                route_table_ids=network.server_route_table_ids(), tags={**tags, "Name": f"{spec.cluster_name}-s3"},
                opts=child))
        self.register_outputs({"bucket": self.bucket, "key": self.key, "instanceProfile": self.instance_profile})
