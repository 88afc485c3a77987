"""The user data an AWS server is launched with: the SSH host key the stack made for it.

cloud-init's `ssh_keys` (cloudinit/config/cc_ssh.py): `ssh_deletekeys` removes
the image's host keys, then the given pair is written to
/etc/ssh/ssh_host_ed25519_key{,.pub}, once per instance, in the stage that
runs before sshd starts (systemd/cloud-init-network.service.tmpl:
`Before=sshd.service`). Debian's and Ubuntu's AMIs run cloud-init. With keys
given, cloud-init generates none: the server offers this key and no other.

Anything on the instance may read its user data from the metadata service
(/latest/user-data), and principals allowed ec2:DescribeInstanceAttribute may
read it through the API: docs/deploying.md says so.
"""

from __future__ import annotations

HEADER = "#cloud-config"


def host_key_user_data(private_key: str, public_key: str) -> str:
    """cloud-config that gives the server `private_key` (OpenSSH format) and `public_key` (one line)."""
    private = private_key.strip("\n").splitlines()
    if not private or not private[0].startswith("-----BEGIN ") or any(":" in line for line in private[1:-1]):
        raise ValueError("the host key is not a private key in OpenSSH format")
    if "\n" in public_key.strip():
        raise ValueError("the public host key must be one line")
    lines = [HEADER,
             "# The SSH host key this server offers, made for it by the Pulumi stack, which checks it.",
             "ssh_deletekeys: true",
             "ssh_keys:",
             "  ed25519_private: |",
             *(f"    {line}" for line in private),
             f"  ed25519_public: {public_key.strip()}",
             ""]
    return "\n".join(lines)
