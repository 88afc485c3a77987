"""The host keys a connection accepts, and the refusal when a server offers another.

Every system `ssh` this program runs (rolling restart, health check, admin
shell, ZooKeeper tunnel) checks the server's key strictly against a known_hosts
file written from the stack's pins: one `Pin` per server and for the bastion,
each with the one key the stack holds for it. A server that offers another key
is refused before anything is sent to it, and `HostKeyRefused` says which
server, both fingerprints and how to accept a server that was rebuilt on
purpose.

Also here: finding a host's key in the operator's own known_hosts files, the
way OpenSSH matches them (plain, hashed and wildcard host patterns,
`[host]:port` for other ports, @revoked lines never trusted).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from components.spec.host_key import HostKey, parse_host_key

# OpenSSH's defaults for UserKnownHostsFile and GlobalKnownHostsFile (ssh_config(5)).
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2", "/etc/ssh/ssh_known_hosts",
                       "/etc/ssh/ssh_known_hosts2")
# What ssh prints when strict checking refuses a server (sshconnect.c).
_VERIFICATION_FAILED = "Host key verification failed."
_OFFERED = re.compile(r"The fingerprint for the (\S+) key sent by the remote host is\s+(SHA256:[A-Za-z0-9+/]+)")
_CHANGED_FOR = re.compile(r"Host key for (\S+) has changed")
_UNKNOWN_FOR = re.compile(r"No \S+ host key is known for (\S+)")


@dataclass(frozen=True)
class Pin:
    """The key the stack holds for one host it connects to."""

    name: str  # how messages call it: `replica-1`, `the bastion`
    host: str  # the address ssh dials
    port: int
    key: str  # `<type> <base64>`
    source: str  # where the key came from, for the message
    accept: str  # how to accept this server after a rebuild on purpose

    @property
    def known_hosts_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "host": self.host, "port": self.port, "key": self.key,
                "source": self.source, "accept": self.accept}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> "Pin":
        port = value.get("port") or 22
        return cls(name=str(value["name"]), host=str(value["host"]), port=int(port), key=str(value["key"]),
                   source=str(value.get("source") or ""), accept=str(value.get("accept") or ""))


def pins_from(values: Iterable[Mapping[str, Any]] | None) -> list[Pin]:
    return [Pin.from_dict(v) for v in values or ()]


def with_departed(access: Mapping[str, Any], before: Mapping[str, Any] | None) -> dict[str, Any]:
    """`access` (an operation's, {..., known_hosts: [...]}) also holding the pins that only `before`
    (its previous inputs, from the state) held: of servers the stack drops, which a roll still
    reaches (drains, stops) before Pulumi deletes them."""
    pins = list(access.get("known_hosts") or [])
    known = {(p["host"], int(p.get("port") or 22)) for p in pins}
    departed = [p for p in (before or {}).get("known_hosts") or []
                if (p["host"], int(p.get("port") or 22)) not in known]
    return {**access, "known_hosts": pins + departed}


def known_hosts_text(pins: Sequence[Pin]) -> str:
    """One known_hosts line per pin: what ssh accepts from each host, nothing else."""
    return "".join(f"{pin.known_hosts_name} {parse_host_key(pin.key).line}\n" for pin in pins)


class HostKeyRefused(RuntimeError):
    """A server offered another host key than the stack's: nothing was sent to it."""

    def __init__(self, pin: Pin | None, host: str, offered: str | None, detail: str = "") -> None:
        self.pin, self.host, self.offered = pin, host, offered
        super().__init__(refusal_message(pin, host, offered, detail))


def refusal_message(pin: Pin | None, host: str, offered: str | None, detail: str = "") -> str:
    if pin is None:
        return (f"{host}: the stack holds no SSH host key for it, so ssh refused it. A server the stack drops "
                "in the first `up` that pins host keys has none: make that `up` without dropping it, then drop "
                f"it. {detail}".strip())
    expected = parse_host_key(pin.key)
    return (
        f"{pin.name} ({host}) offered another SSH host key than the one this stack holds for it, so nothing "
        f"was sent to it.\n"
        f"  expected: {expected.describe()} ({pin.source})\n"
        f"  offered:  {offered or 'not shown by ssh'}\n"
        "If that server was not rebuilt on purpose, someone may be between you and it: stop and find out "
        "before anything else. If it was, compare the offered fingerprint with the one the server itself "
        "shows (on its console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then "
        f"{pin.accept}" + (f"\n{detail}" if detail else ""))


def refusal(output: str, pins: Sequence[Pin]) -> HostKeyRefused | None:
    """The refusal that ssh's `output` reports, if it refused a host key; which host, and what it offered."""
    if _VERIFICATION_FAILED not in output:
        return None
    named = _CHANGED_FOR.search(output) or _UNKNOWN_FOR.search(output)
    host = named.group(1) if named else "?"
    pin = next((p for p in pins if p.known_hosts_name == host or p.host == host), None)
    offered = _OFFERED.search(output)
    return HostKeyRefused(pin, pin.host if pin else host,
                          f"{offered.group(1)} {offered.group(2)}" if offered else None)


# -- the operator's known_hosts ------------------------------------------------

def operator_keys(host: str, port: int = 22, files: Sequence[str] = DEFAULT_KNOWN_HOSTS) -> list[HostKey]:
    """The keys `files` hold for `host` (the operator's known_hosts), accepted types only, in file order."""
    name = host if port == 22 else f"[{host}]:{port}"
    found: list[HostKey] = []
    for path in files:
        try:
            with open(os.path.expanduser(path), encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        for line in lines:
            key = _entry_key(line, name)
            if key is not None and key not in found:
                found.append(key)
    return found


def _entry_key(line: str, name: str) -> HostKey | None:
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    if fields[0].startswith("@"):  # @revoked is never trusted; @cert-authority signs, it is no host key
        return None
    if len(fields) < 3 or not _matches(fields[0], name):
        return None
    try:
        return parse_host_key(" ".join(fields[1:3]))
    except ValueError:
        return None


def _matches(patterns: str, name: str) -> bool:
    """OpenSSH's host matching for a known_hosts line (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT)."""
    if patterns.startswith("|1|"):
        try:
            salt, digest = (base64.b64decode(p) for p in patterns[3:].split("|", 1))
        except (ValueError, TypeError):
            return False
        return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)
    matched = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        if _glob(pattern.lstrip("!"), name):
            if negated:
                return False
            matched = True
    return matched


def _glob(pattern: str, name: str) -> bool:
    """`*` and `?` only, case-insensitive (OpenSSH's match_pattern): `[` is a literal, as in `[host]:port`."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.fullmatch(regex, name.lower()) is not None
