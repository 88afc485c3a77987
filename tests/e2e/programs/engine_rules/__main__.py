"""A small program for the engine's rules: URNs, unknowns at preview, checks,
ignoreChanges, deleteBeforeReplace, --replace, aliases. Local commands only (no machines).

Config (namespace `demo`): ledger (a local file every command appends to),
tag (changes inputs and triggers), badCopy (an upload whose source is unknown
at preview, as pulumi-command 1.2.1 refuses), renamed (`aliased` gets a new
name and an alias to its old one), twin (a second resource with an alias to
`aliased`).
"""

import pulumi
import pulumi_aws as aws
import pulumi_command as command

config = pulumi.Config("demo")
ledger = config.require("ledger")
tag = config.get("tag") or "1"


def note(text):
    return f"echo '{text}' >> {ledger}"


class Group(pulumi.ComponentResource):
    def __init__(self, name, opts=None):
        super().__init__("demo:index:Group", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block="10.0.0.0/16", enable_dns_hostnames=True,
                               opts=child)
        # Same name and type as a resource outside the component: the URNs differ.
        self.same = command.local.Command("same", create=note("create inner"), opts=child)
        self.register_outputs({})


group = Group("group")
outer = command.local.Command("same", create=note("create outer"), delete=note("delete outer"))

uses_id = command.local.Command("uses-id", create=group.vpc.id.apply(lambda i: f"echo {i}"))

# One key of a map ignored: it keeps the value it had when made, the other keys follow.
tagged = aws.ec2.Vpc("tagged", cidr_block="10.1.0.0/16", tags={"changing": tag, "at-launch": tag},
                     opts=pulumi.ResourceOptions(ignore_changes=['tags["at-launch"]']))

ignored = command.local.Command(
    "ignored", create=note(f"create ignored {tag}"), update=note(f"update ignored {tag}"),
    opts=pulumi.ResourceOptions(ignore_changes=["create", "update"]))

delete_first = command.local.Command(
    "delete-first", create=note(f"create delete-first {tag}"), delete=note("delete delete-first"),
    triggers=[tag], opts=pulumi.ResourceOptions(delete_before_replace=True))
create_first = command.local.Command(
    "create-first", create=note(f"create create-first {tag}"), delete=note("delete create-first"),
    triggers=[tag])

echo = command.local.Command("echo", create=f"echo {tag}", update=f"echo {tag}")

renamed = config.get_bool("renamed")
command.local.Command(
    "aliased-new" if renamed else "aliased", create=note("create aliased"), update=note(f"update aliased {tag}"),
    delete=note("delete aliased"), opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="aliased")] if renamed else []))
if config.get_bool("twin"):
    command.local.Command("aliased-twin", create=note("create twin"),
                          opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="aliased")]))

if config.get_bool("badCopy"):
    command.remote.CopyToRemote(
        "upload", connection=command.remote.ConnectionArgs(host="192.0.2.1", user="root"),
        source=group.vpc.arn.apply(lambda arn: pulumi.StringAsset(arn)), remote_path="/tmp/arn")

# Exports resolve to None where the value is unknown (preview).
pulumi.export("vpcId", group.vpc.id)
pulumi.export("vpcArnKnown", group.vpc.arn.apply(lambda _: True))
pulumi.export("vpcCidr", group.vpc.cidr_block)
pulumi.export("echo", echo.stdout)
pulumi.export("usesId", uses_id.stdout)
