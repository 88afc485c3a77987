"""A real sshd on 127.0.0.1 and 127.0.0.2 (Debian package openssh-server) with generated keys,
for the code that runs the system `ssh` client: the ZooKeeper tunnel and the rolling restart.
The `sshd` fixture (tests/conftest.py) starts one per test module."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap
import time
from pathlib import Path

from tests.support.zookeeper_server import free_port

SSHD = Path("/usr/sbin/sshd")


class SshServer:
    """sshd on 127.0.0.1 and 127.0.0.2:<port> that accepts one generated client key for the current user."""

    def __init__(self, work_dir: Path, port: int | None = None):
        self.work_dir = work_dir
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.client_key_path = work_dir / "client_key"
        self.config_path = work_dir / "sshd_config"
        self.user = os.environ.get("USER") or "root"

    def prepare(self) -> "SshServer":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.work_dir / name)], check=True
            )
        authorized = self.work_dir / "authorized_keys"
        authorized.write_text((self.work_dir / "client_key.pub").read_text())
        authorized.chmod(0o600)
        self.config_path.write_text(
            textwrap.dedent(
                f"""\
                ListenAddress 127.0.0.1
                ListenAddress 127.0.0.2
                Port {self.port}
                HostKey {self.work_dir}/host_key
                PidFile none
                AuthorizedKeysFile {authorized}
                StrictModes no
                PubkeyAuthentication yes
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                PermitRootLogin prohibit-password
                AllowTcpForwarding yes
                UsePAM no
                LogLevel VERBOSE
                """
            )
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        return self

    def start(self, wait: bool = True) -> "SshServer":
        log = open(self.work_dir / "sshd.log", "ab")
        self.process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 20
        while wait and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.work_dir / 'sshd.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-2.0"):
                        return self
            except OSError:
                time.sleep(0.2)
        if wait:
            self.stop()
            raise RuntimeError("sshd did not answer within 20s")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def accepted_logins(self) -> int:
        return (self.work_dir / "sshd.log").read_text(errors="replace").count("Accepted publickey")

    def host_key(self) -> str:
        """The server's public host key line."""
        return (self.work_dir / "host_key.pub").read_text().strip()

    def pin(self, host: str = "127.0.0.1", key: str | None = None, name: str | None = None) -> dict:
        """The stack's pin for this server at `host` (known_hosts.Pin.as_dict())."""
        return {"name": name or f"sshd at {host}", "host": host, "port": self.port, "key": key or self.host_key(),
                "source": "the test's sshd", "accept": "pin its new key"}

    def tunnel(self, **overrides) -> dict:
        """A tunnel through this server, with the pins of it and of the bastion, if any."""
        value = {
            "host": "127.0.0.1",
            "user": self.user,
            "port": self.port,
            "private_key": self.client_key_path.read_text(),
            "bastion": None,
        }
        value.update(overrides)
        if "known_hosts" not in overrides:
            bastion = value["bastion"]
            value["known_hosts"] = [self.pin(value["host"])] + ([self.pin(bastion["host"])] if bastion else [])
        return value


def sshd_unavailable_reason() -> str | None:
    if not SSHD.exists():
        return f"{SSHD} is absent: install the Debian package openssh-server (apt-get install openssh-server)"
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "the OpenSSH client (ssh, ssh-keygen) is not installed"
    if os.geteuid() != 0:
        return "sshd needs root to authenticate a user on this machine"
    return None
