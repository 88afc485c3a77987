"""What cloud-init does with an instance's user data at first boot: the part the program uses.

An instance's SSH host keys may come in its user data, as cloud-config
`ssh_keys` (cloud-init's `cc_ssh` module; canonical/cloud-init,
cloudinit/config/cc_ssh.py):
- `ssh_deletekeys` (default true) first removes every `/etc/ssh/ssh_host_*key*`
  file of the image;
- each recognised `ssh_keys` entry, `<type>_private`, `<type>_public` or
  `<type>_certificate` for type rsa, dsa, ecdsa or ed25519, is written to
  `/etc/ssh/ssh_host_<type>_key`, `...key.pub` or `...key-cert.pub`, mode 0600;
  an unrecognised entry is skipped; a private key without its public half gets
  one made with `ssh-keygen -y`;
- with `ssh_keys` present no key is generated (otherwise one of each type is);
- the module runs once per instance, in cloud-init's network stage, which is
  ordered before sshd (systemd/cloud-init-network.service.tmpl:
  `Before=sshd.service`): sshd never answers with another key first. A reboot,
  or a stop and start with changed user data, does not run it again.

Here it is applied to the machine's root before it boots, and the image's own
first-boot key generation (rootfs.py's ssh-host-keys.service) is masked when
keys were given, as cloud-init generates none then. Only `#cloud-config` user
data and these two keys are modelled: anything else is refused, so a program
that starts relying on more of cloud-init finds out here rather than on AWS.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

HEADER = "#cloud-config"
KEY_TYPES = ("rsa", "dsa", "ecdsa", "ed25519")
MODELLED = {"ssh_keys", "ssh_deletekeys"}
# The image's own generator of host keys, for machines booted without any (rootfs.py).
IMAGE_KEYGEN_UNIT = "ssh-host-keys.service"


class UnsupportedUserData(ValueError):
    """User data the local cloud does not model."""


def key_files() -> dict[str, str]:
    """cc_ssh's CONFIG_KEY_TO_FILE: `ssh_keys` entry -> the file it is written to."""
    files = {}
    for kind in KEY_TYPES:
        base = f"/etc/ssh/ssh_host_{kind}_key"
        files.update({f"{kind}_private": base, f"{kind}_public": f"{base}.pub",
                      f"{kind}_certificate": f"{base}-cert.pub"})
    return files


def parse(user_data: str) -> dict:
    """The cloud-config of `user_data`; refuses what the local cloud does not model."""
    if not user_data.startswith(HEADER):
        raise UnsupportedUserData(f"the local cloud models only {HEADER} user data, got {user_data[:40]!r}")
    import yaml  # only instances with user data need it: `make local-machines` boots none

    config = yaml.safe_load(user_data) or {}
    if not isinstance(config, dict):
        raise UnsupportedUserData("cloud-config user data must be a mapping")
    unmodelled = sorted(set(config) - MODELLED)
    if unmodelled:
        raise UnsupportedUserData(f"the local cloud does not model cloud-config {unmodelled}: only "
                                  f"{sorted(MODELLED)} (add them to tools/localcloud/cloud_init.py)")
    keys = config.get("ssh_keys")
    if keys is not None and not isinstance(keys, dict):
        raise UnsupportedUserData("cloud-config ssh_keys must be a mapping")
    return config


def apply_first_boot(root: Path, user_data: str | None) -> list[str]:
    """Apply the host keys of `user_data` to the machine whose root is `root` (not booted
    yet); returns the files written, relative to the root."""
    if not user_data:
        return []
    config = parse(user_data)
    ssh_dir = root / "etc" / "ssh"
    if config.get("ssh_deletekeys", True):
        for path in ssh_dir.glob("ssh_host_*key*"):
            path.unlink()
    keys = config.get("ssh_keys")
    if keys is None:
        return []  # cloud-init would generate keys: the image's own unit does
    files = key_files()
    written = []
    for entry, value in keys.items():
        if entry not in files:
            continue  # cc_ssh skips what it does not recognise
        written.append(_write(root, files[entry], str(value)))
    for kind in KEY_TYPES:
        private, public = f"{kind}_private", f"{kind}_public"
        if private in keys and public not in keys:
            derived = subprocess.run(["ssh-keygen", "-y", "-f", str(root / files[private].lstrip("/"))],
                                     check=True, capture_output=True, text=True).stdout.strip()
            written.append(_write(root, files[public], f"{derived} root@localhost\n"))
    _mask(root, IMAGE_KEYGEN_UNIT)
    return written


def _write(root: Path, path: str, text: str) -> str:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(target, 0o600)
    return path


def _mask(root: Path, unit: str) -> None:
    link = root / "etc" / "systemd" / "system" / unit
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to("/dev/null")
