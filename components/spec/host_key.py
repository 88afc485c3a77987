"""An SSH host key as the stack holds it: one OpenSSH public key line, and its fingerprint.

Every connection to a server checks the key the server offers against one
such key: pulumi-command's `ConnectionArgs.host_key` takes exactly one, parses
it as an authorized_keys line and offers the server only that key's algorithm
(pulumi-command v1.2.1, provider/pkg/provider/remote/connection.go). So an
RSA key is refused here: its type, `ssh-rsa`, is then the only algorithm
offered, the SHA-1 signature that OpenSSH servers refuse by default since 8.8.
Ed25519 and ECDSA keys have one algorithm each, named like the type.

The fingerprint is what `ssh-keygen -l` and OpenSSH's own warnings print:
`SHA256:` and the unpadded base64 of the key blob's SHA-256.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

# key type -> how OpenSSH names it in messages ("The fingerprint for the ED25519 key ...")
ACCEPTED_TYPES = {"ssh-ed25519": "ED25519", "ecdsa-sha2-nistp256": "ECDSA", "ecdsa-sha2-nistp384": "ECDSA",
                  "ecdsa-sha2-nistp521": "ECDSA"}
KEY_LINE = re.compile(r"(?P<type>[a-z0-9@.-]+) (?P<blob>[A-Za-z0-9+/]+={0,2})(?: [^\r\n]*)?")


@dataclass(frozen=True)
class HostKey:
    type: str
    blob: str  # base64, as in the .pub line

    @property
    def line(self) -> str:
        """`<type> <base64>`: what pulumi-command's host_key and a known_hosts entry take."""
        return f"{self.type} {self.blob}"

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    def describe(self) -> str:
        """`ED25519 SHA256:...`, as OpenSSH names a key."""
        return f"{ACCEPTED_TYPES.get(self.type, self.type)} {self.fingerprint}"


def parse_host_key(text: str) -> HostKey:
    """The key of a `.pub` line (`<type> <base64> [comment]`); ValueError says what is wrong with it."""
    if not isinstance(text, str):
        raise ValueError("is not a string")
    match = KEY_LINE.fullmatch(text.strip())
    if match is None:
        raise ValueError("is not one OpenSSH public key line (`ssh-ed25519 AAAA... [comment]`)")
    kind, blob = match["type"], match["blob"]
    if kind == "ssh-rsa":
        raise ValueError("is an RSA key: pulumi-command would offer the server only the ssh-rsa (SHA-1) "
                         "signature algorithm, which OpenSSH 8.8 and later refuse; give the server's "
                         "Ed25519 key (/etc/ssh/ssh_host_ed25519_key.pub)")
    if kind not in ACCEPTED_TYPES:
        raise ValueError(f"has key type {kind!r}; accepted: {', '.join(ACCEPTED_TYPES)}")
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error as error:
        raise ValueError(f"does not hold valid base64 ({error})") from None
    if _embedded_type(raw) != kind:
        raise ValueError(f"says {kind} but its data is not a {kind} key")
    return HostKey(kind, blob)


def _embedded_type(raw: bytes) -> str | None:
    """The type name an SSH public key blob starts with (RFC 4253, 6.6: a length-prefixed string)."""
    if len(raw) < 4:
        return None
    (length,) = struct.unpack(">I", raw[:4])
    if length > len(raw) - 4:
        return None
    return raw[4:4 + length].decode("ascii", errors="replace")
