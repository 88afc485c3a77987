"""A small Pulumi program for testing the mock engine: commands on two hosts.

Config (namespace `demo`): hosts (JSON list of IPs), privateKey, dir (a
directory on the hosts for this test), version (a trigger), message (a plain
input), content (copied file), ledger (local file the dynamic provider writes),
and flags: extra, fail, env, lcEnv.
"""

import json

import pulumi
import pulumi_command as command
from pulumi.dynamic import CreateResult, Resource, ResourceProvider, UpdateResult

config = pulumi.Config("demo")
hosts = json.loads(config.require("hosts"))
private_key = config.require_secret("privateKey")
work_dir = config.require("dir")
version = config.get("version") or "1"
message = config.get("message") or "hello"


class LedgerProvider(ResourceProvider):
    """Appends what it does to a local file, so a test can see each call."""

    def create(self, props):
        with open(props["ledger"], "a") as ledger:
            ledger.write(f"create {props['value']}\n")
        return CreateResult(id_="ledger-1", outs=dict(props))

    def update(self, _id, _olds, props):
        with open(props["ledger"], "a") as ledger:
            ledger.write(f"update {props['value']}\n")
        return UpdateResult(outs=dict(props))

    def delete(self, _id, props):
        with open(props["ledger"], "a") as ledger:
            ledger.write(f"delete {props['value']}\n")


class Ledger(Resource):
    value: pulumi.Output[str]

    def __init__(self, name, ledger, value, opts=None):
        super().__init__(LedgerProvider(), name, {"ledger": ledger, "value": value}, opts)


def connection(host):
    return command.remote.ConnectionArgs(host=host, user="root", private_key=private_key,
                                         dial_error_limit=20)


markers = []
for index, host in enumerate(hosts):
    markers.append(command.remote.Command(
        f"marker-{index}",
        connection=connection(host),
        create=f"mkdir -p {work_dir} && echo 'create {version} {message}' >> {work_dir}/log && echo marker-{index}",
        update=f"echo 'update {version} {message}' >> {work_dir}/log && echo updated-{index}",
        delete=f"echo 'delete {version}' >> {work_dir}/log",
        triggers=[version],
    ))

copied = command.remote.CopyToRemote(
    "copied",
    connection=connection(hosts[0]),
    source=pulumi.StringAsset(config.get("content") or "first content\n"),
    remote_path=f"{work_dir}/copied.txt",
    opts=pulumi.ResourceOptions(depends_on=markers),
)

reader = command.remote.Command(
    "reader",
    connection=connection(hosts[0]),
    create=f"cat {work_dir}/copied.txt",
    delete=f"echo 'delete reader' >> {work_dir}/log",
    triggers=[config.get("content") or "first content\n"],
    opts=pulumi.ResourceOptions(depends_on=[copied]),
)

ledger = Ledger("ledger", config.require("ledger"), message,
                opts=pulumi.ResourceOptions(depends_on=[reader]))

if config.get_bool("extra"):
    command.remote.Command(
        "extra",
        connection=connection(hosts[1]),
        create=f"echo 'create extra' >> {work_dir}/log",
        delete=f"echo 'delete extra' >> {work_dir}/log",
        opts=pulumi.ResourceOptions(depends_on=markers),
    )

if config.get_bool("fail"):
    failing = command.remote.Command(
        "failing",
        connection=connection(hosts[1]),
        create="echo to-stdout; echo to-stderr >&2; exit 3",
        opts=pulumi.ResourceOptions(depends_on=[reader]),
    )
    command.remote.Command(
        "after-failing",
        connection=connection(hosts[1]),
        create=f"echo 'after failing' >> {work_dir}/log",
        opts=pulumi.ResourceOptions(depends_on=[failing]),
    )

if config.get_bool("env"):
    command.remote.Command(
        "with-env",
        connection=connection(hosts[0]),
        create=f"echo \"[${{PEGASUS_VALUE:-unset}}]\" > {work_dir}/env-seen",
        environment={"PEGASUS_VALUE": "from-environment"},
    )

if config.get_bool("lcEnv"):
    command.remote.Command(
        "with-lc-env",
        connection=connection(hosts[0]),
        create="echo \"[${LC_PEGASUS:-unset}]\"",
        environment={"LC_PEGASUS": "accepted"},
    )

pulumi.export("reader", reader.stdout)
pulumi.export("markers", [m.stdout for m in markers])
pulumi.export("ledgerValue", ledger.value)
