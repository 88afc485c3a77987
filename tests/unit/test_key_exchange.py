"""`make status` puts curve25519 first among ssh's own key exchanges (components/ssh/key_exchange.py)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from components.ssh.key_exchange import CLASSICAL, classical_first
from components.ssh.known_hosts import Pin
from components.ssh.session import SshSession
from components.ssh.tunnel import write_ssh_config


def fake_ssh(tmp_path, printed: str, code: int = 0) -> str:
    path = tmp_path / "ssh"
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' '{printed}'\nexit {code}\n")
    path.chmod(0o755)
    return str(path)


def test_curve25519_moves_to_the_front_and_nothing_is_added(tmp_path):
    ssh = fake_ssh(tmp_path, "user admin\ngssapikexalgorithms gss-curve25519-sha256-\nkexalgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,"
                             "ecdh-sha2-nistp256\nport 22")
    assert classical_first(ssh) == ("curve25519-sha256", "sntrup761x25519-sha512@openssh.com", "ecdh-sha2-nistp256")


def test_an_ssh_that_cannot_say_leaves_ssh_its_own_order(tmp_path):
    assert classical_first(fake_ssh(tmp_path, "usage: ssh ...", code=255)) == ()
    assert classical_first(str(tmp_path / "no-such-ssh")) == ()


def test_the_order_is_written_only_when_given(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    given = open(write_ssh_config(str(tmp_path / "a"), "key", (), ("curve25519-sha256", "ecdh-sha2-nistp256"))).read()
    assert "  KexAlgorithms curve25519-sha256,ecdh-sha2-nistp256\n" in given
    assert "KexAlgorithms" not in open(write_ssh_config(str(tmp_path / "b"), "key", ())).read()


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_the_system_ssh_keeps_its_set_and_a_real_server_agrees_on_curve25519(sshd):
    order = classical_first()
    printed = subprocess.run(["ssh", "-G", "-F", "/dev/null", "x"], capture_output=True, text=True, check=True).stdout
    [default] = [line.split()[1].split(",") for line in printed.splitlines() if line.startswith("kexalgorithms ")]
    assert order[0] == CLASSICAL[0] and sorted(order) == sorted(default)
    pins = (Pin.from_dict(sshd.pin("127.0.0.1")),)
    with SshSession(user=sshd.user, private_key=sshd.client_key_path.read_text(), port=sshd.port,
                    known_hosts=pins, kex_algorithms=order) as session:
        assert session.run("127.0.0.1", "echo answered", dials=1).output.strip() == "answered"
        assert session._config is not None
        verbose = subprocess.run(["ssh", "-v", "-F", session._config, "-p", str(sshd.port), "-l", sshd.user,
                                  "127.0.0.1", "true"], capture_output=True, text=True, timeout=30)
    assert verbose.returncode == 0, verbose.stderr[-2000:]
    assert "kex: algorithm: curve25519-sha256\n" in verbose.stderr, verbose.stderr[-2000:]
