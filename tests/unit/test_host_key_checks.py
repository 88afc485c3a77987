"""Every system `ssh` this program runs checks the server's host key against the stack's pin
(issue 19, item 1): a real sshd offers its key; another pinned key is refused before any login,
with both fingerprints, the server's name and how to accept a rebuilt server."""

from __future__ import annotations

import subprocess
import time

import pytest

from components.spec.host_key import parse_host_key
from components.ssh.known_hosts import HostKeyRefused, Pin
from components.ssh.session import SshSession, session_for
from components.ssh.tunnel import TunnelSpec, ssh_tunnel


def fingerprint_by_ssh_keygen(path) -> str:
    return subprocess.run(["ssh-keygen", "-l", "-f", str(path)], check=True, capture_output=True,
                          text=True).stdout.split()[1]


@pytest.fixture
def stranger_key(tmp_path) -> str:
    """A host key the server does not have: what a changed or impersonated server looks like."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    return (tmp_path / "stranger.pub").read_text().strip()


def session(sshd, pins) -> SshSession:
    return SshSession(user=sshd.user, private_key=sshd.client_key_path.read_text(), port=sshd.port,
                      known_hosts=tuple(Pin.from_dict(p) for p in pins))


def test_a_session_runs_on_a_server_that_offers_its_pinned_key(sshd):
    with session(sshd, [sshd.pin("127.0.0.1")]) as s:
        assert s.run("127.0.0.1", "echo in").output.strip() == "in"


def test_a_session_refuses_a_server_that_offers_another_key_before_logging_in(sshd, stranger_key):
    logins = sshd.accepted_logins()
    started = time.monotonic()
    with session(sshd, [sshd.pin("127.0.0.1", key=stranger_key, name="replica-1")]) as s:
        with pytest.raises(HostKeyRefused) as refused:
            s.run("127.0.0.1", "echo in", dials=4)
    message = str(refused.value)
    assert message.startswith("replica-1 (127.0.0.1) offered another SSH host key")
    assert f"expected: ED25519 {parse_host_key(stranger_key).fingerprint}" in message
    assert f"offered:  ED25519 {fingerprint_by_ssh_keygen(sshd.work_dir / 'host_key.pub')}" in message
    assert "pin its new key" in message  # the pin's way to accept a rebuilt server
    assert sshd.accepted_logins() == logins
    assert time.monotonic() - started < 5, "a refused key was dialled again"


def test_a_session_refuses_a_host_it_holds_no_key_for(sshd):
    with session(sshd, [sshd.pin("127.0.0.2")]) as s:
        with pytest.raises(HostKeyRefused, match="the stack holds no SSH host key for it"):
            s.run("127.0.0.1", "true", dials=1)


def test_a_session_checks_the_bastion_too(sshd, stranger_key):
    # The same sshd plays the bastion (127.0.0.1) and the server (127.0.0.2).
    access = {"user": sshd.user, "port": sshd.port, "private_key": sshd.client_key_path.read_text(),
              "bastion": {"host": "127.0.0.1", "user": sshd.user, "port": sshd.port},
              "known_hosts": [sshd.pin("127.0.0.2"), sshd.pin("127.0.0.1", key=stranger_key, name="the bastion")]}
    logins = sshd.accepted_logins()
    with session_for(access) as s:
        with pytest.raises(HostKeyRefused) as refused:
            s.run("127.0.0.2", "true", dials=1)
    assert str(refused.value).startswith("the bastion (127.0.0.1) offered another SSH host key")
    assert sshd.accepted_logins() == logins


def test_a_tunnel_refuses_at_once_a_server_that_offers_another_key(sshd, stranger_key):
    spec = TunnelSpec.from_dict(sshd.tunnel(known_hosts=[sshd.pin("127.0.0.1", key=stranger_key, name="zk-0")]))
    started = time.monotonic()
    with pytest.raises(HostKeyRefused) as refused:
        with ssh_tunnel(spec, [("127.0.0.1", 2181)], timeout_seconds=60):
            pass
    assert time.monotonic() - started < 20, "the tunnel kept retrying a refused key until its deadline"
    assert str(refused.value).startswith("zk-0 (127.0.0.1) offered another SSH host key")
    assert fingerprint_by_ssh_keygen(sshd.work_dir / "host_key.pub") in str(refused.value)


def test_host_names_never_reach_ssh_as_options(sshd, tmp_path):
    marker = tmp_path / "ran"
    with session(sshd, [sshd.pin("127.0.0.1")]) as s:
        result = s.run(f"-oProxyCommand=touch {marker}", "true", dials=1)
    assert result.returncode == 255 and not marker.exists()
