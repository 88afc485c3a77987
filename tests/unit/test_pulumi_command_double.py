"""The local engine's pulumi-command checks host keys as pulumi-command 1.2.1 does (connection.go,
SSHConfig: ssh.FixedHostKey with HostKeyAlgorithms = [the key's type]), against a real sshd."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.localcloud.remote_command import Connection, RemoteCommandError, run_remote


def connection(sshd, **overrides) -> Connection:
    values = {"host": "127.0.0.1", "user": sshd.user, "port": sshd.port,
              "privateKey": sshd.client_key_path.read_text(), "dialErrorLimit": 2, **overrides}
    return Connection.from_inputs(values)


def server_key(sshd) -> str:
    return (sshd.work_dir / "host_key.pub").read_text().strip()


def other_key(tmp_path, kind: str = "ed25519") -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(tmp_path / kind)], check=True)
    return (tmp_path / f"{kind}.pub").read_text().strip()


def test_without_a_host_key_any_server_is_accepted(sshd):
    assert run_remote(connection(sshd), "echo in") == ("in", "")


def test_the_pinned_key_lets_the_command_run(sshd):
    assert run_remote(connection(sshd, hostKey=server_key(sshd)), "echo in") == ("in", "")


def test_another_key_of_the_same_type_fails_the_handshake_after_the_dial_limit(sshd, tmp_path):
    logins = sshd.accepted_logins()
    with pytest.raises(RemoteCommandError) as error:
        run_remote(connection(sshd, hostKey=other_key(tmp_path)), "echo in")
    assert str(error.value) == "Dial: after 2 failed attempts: ssh: handshake failed: ssh: host key mismatch"
    assert sshd.accepted_logins() == logins, "the client authenticated to a server it should have refused"


def test_a_key_of_a_type_the_server_lacks_offers_no_algorithm_it_has(sshd, tmp_path):
    with pytest.raises(RemoteCommandError) as error:
        run_remote(connection(sshd, hostKey=other_key(tmp_path, "ecdsa")), "echo in")
    assert "no common algorithm for host key; client offered: [ecdsa-sha2-nistp256]" in str(error.value)


def test_a_host_key_that_is_not_an_authorized_keys_line_fails_before_dialing(sshd):
    with pytest.raises(RemoteCommandError, match="failed to parse host key"):
        run_remote(connection(sshd, hostKey="SHA256:not-a-key"), "echo in")
