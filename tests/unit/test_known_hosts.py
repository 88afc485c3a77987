"""Host keys as the stack holds them (spec/host_key.py) and the operator's known_hosts as OpenSSH
reads it (ssh/known_hosts.py), checked against ssh-keygen itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components.spec.host_key import parse_host_key
from components.ssh.known_hosts import Pin, known_hosts_text, operator_keys, with_departed


def new_key(tmp_path: Path, name: str, kind: str = "ed25519") -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@somewhere", "-f", str(tmp_path / name)],
                   check=True)
    return (tmp_path / f"{name}.pub").read_text().strip()


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_a_key_line_gives_its_type_blob_and_the_fingerprint_ssh_keygen_prints(tmp_path, kind):
    line = new_key(tmp_path, "k", kind)
    key = parse_host_key(line)
    printed = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")], check=True, capture_output=True,
                             text=True).stdout.split()
    assert key.line == " ".join(line.split()[:2])  # the comment dropped
    assert key.fingerprint == printed[1]
    assert key.describe() == f"{printed[-1].strip('()')} {printed[1]}"


@pytest.mark.parametrize("text,reason", [
    ("ssh-ed25519", "not one OpenSSH public key line"),
    ("ssh-ed25519 AAAA\nssh-ed25519 AAAA", "not one OpenSSH public key line"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 x", "its data is not a ssh-ed25519 key"),  # the type, and no key
    ("ssh-dss AAAAB3NzaC1kc3M=", "key type 'ssh-dss'"),
    ("ssh-ed25519 AAAAB3NzaC1yc2E=", "its data is not a ssh-ed25519 key"),
    ("ssh-ed25519 AAAA!", "not one OpenSSH public key line"),
])
def test_what_is_not_one_accepted_key_line_is_refused_with_the_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_host_key(text)


def test_surrounding_whitespace_and_the_comment_are_not_the_key(tmp_path):
    line = new_key(tmp_path, "k")
    assert parse_host_key(f"  {line}\n").line == parse_host_key(line).line


def test_an_rsa_key_is_refused_saying_why(tmp_path):
    with pytest.raises(ValueError, match="ssh-rsa \\(SHA-1\\)"):
        parse_host_key(new_key(tmp_path, "rsa", "rsa"))


def test_the_operators_known_hosts_is_read_as_openssh_matches_it(tmp_path):
    plain, hashed, other_port, wildcard, revoked = (new_key(tmp_path, n) for n in
                                                   ("plain", "hashed", "port", "wild", "revoked"))
    known = tmp_path / "known_hosts"
    known.write_text(
        f"# a comment\n"
        f"zk1.dc1,10.0.0.5 {plain}\n"
        f"10.0.0.6 {hashed}\n"
        f"[10.0.0.7]:2222 {other_port}\n"
        f"*.dc2,!bad.dc2 {wildcard}\n"
        f"@revoked 10.0.0.5 {revoked}\n"
        f"@cert-authority *.dc1 {revoked}\n")
    # ssh-keygen -H hashes the names as OpenSSH would have written them with HashKnownHosts.
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert "10.0.0.6" not in known.read_text()

    def found(host: str, port: int = 22) -> list[str]:
        return [k.line for k in operator_keys(host, port, files=[str(known), str(tmp_path / "absent")])]

    assert found("10.0.0.5") == [parse_host_key(plain).line]  # the revoked key is never trusted
    assert found("zk1.dc1") == [parse_host_key(plain).line]
    assert found("10.0.0.6") == [parse_host_key(hashed).line]
    assert found("10.0.0.7", 2222) == [parse_host_key(other_port).line] and found("10.0.0.7") == []
    assert found("a.dc2") == [parse_host_key(wildcard).line] and found("bad.dc2") == []
    assert found("10.0.0.8") == []


def test_pins_become_known_hosts_lines_with_the_port_when_it_is_not_22(tmp_path):
    key = new_key(tmp_path, "k")
    pins = [Pin("replica-0", "10.0.0.5", 22, key, "s", "a"), Pin("the bastion", "b.example", 2222, key, "s", "a")]
    blob = parse_host_key(key).line
    assert known_hosts_text(pins) == f"10.0.0.5 {blob}\n[b.example]:2222 {blob}\n"


def test_a_dropped_servers_key_stays_known_to_the_roll_that_drains_it(tmp_path):
    key, other = parse_host_key(new_key(tmp_path, "k")).line, parse_host_key(new_key(tmp_path, "o")).line
    now = {"user": "admin", "known_hosts": [Pin("replica-0", "10.0.0.5", 22, key, "s", "a").as_dict()]}
    before = {"user": "admin", "known_hosts": [Pin("replica-0", "10.0.0.5", 22, other, "s", "a").as_dict(),
                                               Pin("replica-3", "10.0.0.8", 22, key, "s", "a").as_dict()]}
    merged = with_departed(now, before)
    # The current pin wins for a server still listed; the dropped one's comes from the state.
    assert [(p["name"], p["key"]) for p in merged["known_hosts"]] == [("replica-0", key), ("replica-3", key)]
    assert merged["user"] == "admin" and with_departed(now, None) == now
