"""A plain SSH client for the cloud's own use (checks, hot-plugging devices)."""

from __future__ import annotations

import io
import socket
import time

import paramiko


def load_private_key(text: str) -> paramiko.PKey:
    """Parse an OpenSSH/PEM private key of any type paramiko knows."""
    errors = []
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError) as error:
            errors.append(f"{key_class.__name__}: {error}")
    raise ValueError("unsupported private key: " + "; ".join(errors))


def connect(host: str, private_key: str, user: str = "root", port: int = 22,
            timeout: float = 30.0) -> paramiko.SSHClient:
    """`timeout` for each of TCP, the banner and authentication: on a loaded 2-core
    machine (every machine of a destroy powering off at once) sshd has been seen
    to take over 10 s to send its banner."""
    client = paramiko.SSHClient()
    # Machines get fresh host keys each boot; this is a throwaway test network.
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(host, port=port, username=user, pkey=load_private_key(private_key),
                   timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                   allow_agent=False, look_for_keys=False)
    return client


def run_over_ssh(host: str, private_key: str, command: str, *, user: str = "root",
                 timeout: float = 120.0) -> tuple[int, str, str]:
    """Run `command` on `host`; return (exit code, stdout, stderr)."""
    client = connect(host, private_key, user)
    try:
        _, stdout, stderr = client.exec_command(command, timeout=timeout)
        out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
        return stdout.channel.recv_exit_status(), out, err
    finally:
        client.close()


def wait_for_ssh(host: str, private_key: str, timeout: float, is_alive=lambda: True) -> None:
    """Wait until `host` accepts our key, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if not is_alive():
            raise RuntimeError(f"machine at {host} stopped while waiting for SSH")
        try:
            with socket.create_connection((host, 22), timeout=1):
                pass
            rc, _, _ = run_over_ssh(host, private_key, "true", timeout=10)
            if rc == 0:
                return
        except (OSError, paramiko.SSHException) as error:
            last_error = error
        time.sleep(0.3)
    raise TimeoutError(f"SSH on {host} did not answer within {timeout:.0f}s: {last_error}")
