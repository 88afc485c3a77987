"""The SSH runner dials again only when a command never started (issue 20, item 9).

ssh exits 255 both when it could not connect and when the connection dropped
while the command ran; a command that started may still be running on the host,
so running it again could overlap the first run. Over a real sshd.
"""

from __future__ import annotations

from components.ssh import session as ssh_session
from components.ssh.known_hosts import Pin
from components.ssh.session import SSH_FAILED, SshSession
from tests.support.zookeeper_server import free_port


def session(sshd, port: int | None = None) -> SshSession:
    return SshSession(user=sshd.user, private_key=sshd.client_key_path.read_text(), port=port or sshd.port,
                      known_hosts=tuple(Pin.from_dict(sshd.pin(a)) for a in ("127.0.0.1", "127.0.0.2")))


def test_a_command_whose_connection_drops_after_it_started_runs_once(sshd, tmp_path, monkeypatch):
    monkeypatch.setattr(ssh_session, "DIAL_PAUSE_SECONDS", 0.1)
    runs = tmp_path / "runs"
    # A second into it, the sshd process serving this command goes away: the connection drops.
    # (A drop within the first milliseconds, before the runner saw the command start, dials
    # again: that second run is what the restart script's lock is for.)
    with session(sshd) as ssh:
        result = ssh.run("127.0.0.1", f"echo ran >>{runs}; sleep 1; kill -9 $PPID; sleep 2", dials=3)
    assert runs.read_text().splitlines() == ["ran"]
    assert result.returncode == SSH_FAILED and result.started


def test_a_command_that_never_started_is_dialled_again_and_said_not_to_have_started(sshd, monkeypatch):
    monkeypatch.setattr(ssh_session, "DIAL_PAUSE_SECONDS", 0.1)
    with session(sshd, port=free_port()) as ssh:
        result = ssh.run("127.0.0.1", "true", dials=2)
    assert result.returncode == SSH_FAILED and not result.started
    assert "Connection refused" in result.output


def test_a_command_that_exits_255_itself_is_not_run_again(sshd, tmp_path, monkeypatch):
    monkeypatch.setattr(ssh_session, "DIAL_PAUSE_SECONDS", 0.1)
    runs = tmp_path / "runs"
    with session(sshd) as ssh:
        result = ssh.run("127.0.0.2", f"echo ran >>{runs}; echo its own output; exit 255", dials=3)
    assert runs.read_text().splitlines() == ["ran"]
    assert (result.returncode, result.started) == (SSH_FAILED, True)
    assert result.output == "its own output\n"  # the runner's marker is not part of it
