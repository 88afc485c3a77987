"""An SSH host key pair the stack generates once per AWS server, before the server exists.

The instance gets it at launch, in its user data (cloud-init's `ssh_keys`,
resources/aws_host.py): sshd starts with it, so the stack knows the key the
server will offer before the server boots, and never trusts a first answer.
The pair is made once, with `ssh-keygen` (the OpenSSH client is already what
`pulumi up` needs), kept in the state as a secret, and never changes: a
replaced instance gets the same key, so no connection to it changes.

The provider is pickled by reference to this module: keep it importable and
free of side effects at import (components/legacy_paths.py when it moves).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Optional

import pulumi
import pulumi.dynamic


def generate(comment: str) -> tuple[str, str]:
    """(private key in OpenSSH format, public key line `ssh-ed25519 <base64>`), new each call."""
    workdir = tempfile.mkdtemp(prefix="pegasus-hostkey-")  # mode 0700
    try:
        path = os.path.join(workdir, "key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)
        with open(path, encoding="ascii") as private, open(f"{path}.pub", encoding="ascii") as public:
            return private.read(), " ".join(public.read().split()[:2])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class HostKeyPairProvider(pulumi.dynamic.ResourceProvider):
    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        private_key, public_key = generate(props["comment"])
        return pulumi.dynamic.CreateResult(f"host-key-pair-{props['comment']}", {
            "comment": props["comment"], "public_key": public_key, "private_key": private_key})

    def diff(self, _id: str, _olds: dict, _news: dict) -> pulumi.dynamic.DiffResult:
        # Never regenerated: the instance that got it keeps it.
        return pulumi.dynamic.DiffResult(changes=False, replaces=[], delete_before_replace=False)

    def delete(self, _id: str, _props: dict) -> None:
        return None


class HostKeyPair(pulumi.dynamic.Resource, module="pegasus", name="HostKeyPair"):
    public_key: pulumi.Output[str]  # `ssh-ed25519 <base64>`
    private_key: pulumi.Output[str]  # a secret

    def __init__(self, name: str, comment: str, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["private_key"]))
        super().__init__(HostKeyPairProvider(), name, {"comment": comment, "public_key": None, "private_key": None},
                         opts)
