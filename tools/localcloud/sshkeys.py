"""The suite's SSH key pair: the cloud logs into its machines with it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    private_key: str  # OpenSSH PEM text, as pulumi-command's `privateKey` takes it
    public_key: str  # "ssh-ed25519 AAAA... comment", an authorized_keys line
    private_key_path: Path


def generate_key_pair(directory: Path, comment: str = "pegasus-e2e") -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    path = directory / "id_ed25519"
    path.touch(mode=0o600)
    path.write_text(private)
    return KeyPair(private, f"{public} {comment}", path)
