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
from typing import Any

from components.spec.reader import ConfigReader

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


def fingerprint(key_line: str) -> str:
    """`SHA256:...` of a key line."""
    return parse_host_key(key_line).fingerprint


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
    if _fields(raw) != _expected_fields(kind, raw):
        raise ValueError(f"says {kind} but its data is not a {kind} key")
    return HostKey(kind, blob)


# The public key blob of each type (RFC 8709, 4: Ed25519; RFC 5656, 3.1: ECDSA): its fields, in order.
_POINT_BYTES = {"nistp256": 65, "nistp384": 97, "nistp521": 133}  # an uncompressed point: 0x04 || x || y


def _expected_fields(kind: str, raw: bytes) -> list[bytes] | None:
    fields = _fields(raw)
    if not fields or fields[0] != kind.encode():
        return None
    if kind == "ssh-ed25519":
        return fields if len(fields) == 2 and len(fields[1]) == 32 else None
    curve = kind.rpartition("-")[2]
    if len(fields) == 3 and fields[1] == curve.encode() and len(fields[2]) == _POINT_BYTES[curve] \
            and fields[2][:1] == b"\x04":
        return fields
    return None


def _fields(raw: bytes) -> list[bytes] | None:
    """The length-prefixed strings a key blob is made of (RFC 4251, 5), or None if it is not that."""
    fields, offset = [], 0
    while offset < len(raw):
        if len(raw) - offset < 4:
            return None
        (length,) = struct.unpack(">I", raw[offset:offset + 4])
        offset += 4
        if length > len(raw) - offset:
            return None
        fields.append(raw[offset:offset + length])
        offset += length
    return fields


def read_host_key(r: ConfigReader, key: str, value: Any, whose: str) -> str | None:
    """A `hostKey` of the stack as `<type> <base64>` (None when absent); a problem naming `key` when it
    is not one. `whose`: "server" or "bastion", for the way to get it."""
    if value is None:
        return None
    try:
        return parse_host_key(value).line
    except ValueError as error:
        r.problem(key, str(error), f"give the {whose}'s /etc/ssh/ssh_host_ed25519_key.pub line, read on the {whose} "
                  f"itself, or from `ssh-keyscan -t ed25519 <{whose}>` once its fingerprint matches the one the "
                  f"{whose} shows (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)")
        return None
