"""Providers' input checks (`Check`), run at every registration, preview included.

A failure fails the registration, so the preview and therefore the `up`, as
the engine does when a provider's Check returns failures.
"""

from __future__ import annotations

from pulumi.runtime.rpc import UNKNOWN

# pulumi-aws (the Terraform bridge) refuses a registration missing a required
# input; unknown values pass. From the provider schema's `required` lists.
_AWS_REQUIRED = {
    "aws:ec2/instance:Instance": (),
    "aws:ec2/subnet:Subnet": ("vpcId",),
    "aws:ec2/keyPair:KeyPair": ("publicKey",),
    "aws:ebs/volume:Volume": ("availabilityZone",),
    "aws:ec2/volumeAttachment:VolumeAttachment": ("deviceName", "instanceId", "volumeId"),
    "aws:ec2/networkInterface:NetworkInterface": ("subnetId",),
    "aws:ec2/networkInterfaceAttachment:NetworkInterfaceAttachment":
        ("deviceIndex", "instanceId", "networkInterfaceId"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ("ipProtocol", "securityGroupId"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ("ipProtocol", "securityGroupId"),
    "aws:ec2/securityGroupRule:SecurityGroupRule":
        ("fromPort", "protocol", "securityGroupId", "toPort", "type"),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ("bucket",),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ("bucket", "rule"),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": ("bucket", "rules"),
    "aws:s3/bucketObjectv2:BucketObjectv2": ("bucket", "key"),
    "aws:iam/role:Role": ("assumeRolePolicy",),
    "aws:iam/rolePolicy:RolePolicy": ("policy", "role"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("serviceName", "vpcId"),
}


def _copy_to_remote(inputs: dict) -> list[tuple[str, str]]:
    # pulumi-command v1.2.1 provider/pkg/provider/remote/copyController.go, Check:
    # infer's default check decodes `source` into {Asset, Archive}; an unknown
    # source decodes to neither, hence "either asset or archive must be set" (the
    # preview failure fixed upstream by pulumi/pulumi-command#1184, unreleased).
    source = inputs.get("source")
    failures = []
    is_asset = isinstance(source, dict) and "__asset" in source
    is_archive = isinstance(source, dict) and "__archive" in source
    if source is None or source == UNKNOWN or not (is_asset or is_archive):
        failures.append(("asset", "either asset or archive must be set"))
    elif is_asset and source["__asset"] not in ("file", "string"):
        failures.append(("asset", "asset must be a path-based file asset or a text asset"))
    elif is_archive and source["__archive"] != "file":
        failures.append(("archive", "archive must be a path to a file or directory"))
    return failures


def check(token: str, inputs: dict) -> list[tuple[str, str]]:
    """(property, reason) for each failure; `inputs` as values.normalize made them."""
    if token == "command:remote:CopyToRemote":
        return _copy_to_remote(inputs)
    return [(name, f"Missing required property '{name}'")
            for name in _AWS_REQUIRED.get(token, ()) if inputs.get(name) is None]


def failure_message(token: str, name: str, failures: list[tuple[str, str]]) -> str:
    # The engine's wording for check failures (pkg/resource/deploy/step_generator.go,
    # diag.GetResourcePropertyInvalidValueError).
    return "; ".join(f"{token} resource '{name}': property {prop} has a problem: {reason}"
                     for prop, reason in failures)
