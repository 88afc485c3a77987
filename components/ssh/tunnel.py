"""SSH local port forwards with the system `ssh` client, to reach private addresses.

The operator's machine usually cannot reach the private addresses of the
ZooKeeper ensemble; a host it can SSH to (optionally through a bastion) can.
`ssh_tunnel` forwards one free loopback port per target through that host and
yields the loopback addresses to use instead of the targets.

The system `ssh` is used (not paramiko): it is on every operator machine and
handles ProxyJump, keys and host keys the way operators expect. Everything it
needs (key, known_hosts, config) lives in a private temporary directory that is
removed when the tunnel closes. The known_hosts file holds the stack's pins
(known_hosts.py) and ssh checks them strictly, for the bastion too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from components.ssh.known_hosts import Pin, known_hosts_text, pins_from, refusal

Address = tuple[str, int]

# How long one `ssh` attempt may take to authenticate and bind its forwards.
ATTEMPT_SECONDS = 30.0
# Pause between attempts while the remote host is still booting.
RETRY_PAUSE_SECONDS = 2.0


class SshTunnelError(RuntimeError):
    """The tunnel could not be opened before the deadline."""


@dataclass(frozen=True)
class SshEndpoint:
    host: str
    user: str
    port: int = 22

    def destination(self) -> str:
        """`user@host:port` as `-J` wants it (IPv6 literals in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"


@dataclass(frozen=True)
class TunnelSpec:
    """Where to tunnel through: the forwarding host and an optional bastion before it.

    The same private key is used for the bastion and the forwarding host.
    """

    gateway: SshEndpoint
    private_key: str = field(repr=False)
    bastion: SshEndpoint | None = None
    # The keys of the forwarding host and the bastion (known_hosts.Pin). None: a state written
    # before host keys were pinned (a destroy that no `up` of this version preceded).
    known_hosts: tuple[Pin, ...] | None = None

    @classmethod
    def from_dict(cls, value: Mapping[str, Any], where: str = "tunnel") -> "TunnelSpec":
        """Build from {host, user, port, private_key, bastion: {host, user, port} | None,
        known_hosts: [Pin.as_dict(), ...]}."""
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping with host, user, private_key, got {type(value).__name__}")
        private_key = value.get("private_key")
        if not isinstance(private_key, str) or "PRIVATE KEY" not in private_key:
            raise ValueError(
                f"{where}.private_key: expected the text of an OpenSSH/PEM private key "
                "(-----BEGIN ... PRIVATE KEY-----); pass the key itself, not its path"
            )
        bastion = value.get("bastion")
        known = value.get("known_hosts")
        return cls(
            gateway=_endpoint(value, where),
            private_key=private_key,
            bastion=_endpoint(bastion, f"{where}.bastion") if bastion else None,
            known_hosts=tuple(pins_from(known)) if known is not None else None,
        )

    def describe(self) -> str:
        via = f" via bastion {self.bastion.destination()}" if self.bastion else ""
        return f"SSH tunnel through {self.gateway.destination()}{via}"


def _endpoint(value: Any, where: str) -> SshEndpoint:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping with host, user and port")
    host, user, port = value.get("host"), value.get("user"), value.get("port", 22)
    if not isinstance(host, str) or not host:
        raise ValueError(f"{where}.host: expected a host name or IP address, got {host!r}")
    if not isinstance(user, str) or not user:
        raise ValueError(f"{where}.user: expected the SSH user name, got {user!r}")
    if port is None:
        port = 22
    if isinstance(port, float) and port.is_integer():  # numbers arrive as floats over gRPC
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f"{where}.port: expected a TCP port number, got {port!r}")
    return SshEndpoint(host=host, user=user, port=port)


@contextlib.contextmanager
def ssh_tunnel(
    spec: TunnelSpec,
    targets: Sequence[Address],
    *,
    timeout_seconds: float = 300.0,
    ssh_binary: str = "ssh",
) -> Iterator[list[Address]]:
    """Forward a free 127.0.0.1 port to each target; yield those local addresses in order.

    Retries until `timeout_seconds` while the host refuses or times out (a
    freshly booted machine does for a while). The `ssh` process and every
    temporary file (the private key included) are gone when the block exits,
    also on error.
    """
    if not targets:
        raise ValueError("ssh_tunnel: no target addresses to forward")
    workdir = tempfile.mkdtemp(prefix="pegasus-ssh-")  # mode 0700
    process: subprocess.Popen | None = None
    try:
        config_path = write_ssh_config(workdir, spec.private_key, spec.known_hosts)
        deadline = time.monotonic() + timeout_seconds
        attempt, last_error = 0, "no attempt made"
        while True:
            attempt += 1
            local = [("127.0.0.1", _free_port()) for _ in targets]
            stderr_path = os.path.join(workdir, f"ssh-{attempt}.err")
            process = _start_ssh(ssh_binary, config_path, spec, targets, local, stderr_path)
            if _wait_for_forwards(process, local, min(deadline, time.monotonic() + ATTEMPT_SECONDS)):
                break
            still_connecting = process.poll() is None
            _stop(process)
            process = None
            message = _read_tail(stderr_path)
            refused = refusal(message, spec.known_hosts or ())
            if refused is not None:
                raise refused  # no retry: the server will not offer the pinned key later
            if message:
                last_error = message
            elif not still_connecting:
                last_error = "ssh exited without a message"
            elif attempt == 1:
                last_error = "ssh was still connecting when time ran out"
            # else: an attempt cut short by the deadline says nothing new; keep the last error.
            if time.monotonic() + RETRY_PAUSE_SECONDS >= deadline:
                raise SshTunnelError(
                    f"could not open an {spec.describe()} to {_format(targets)} within "
                    f"{timeout_seconds:.0f}s ({attempt} attempts); last ssh error: {last_error}. "
                    "Check that the host is up and reachable on its SSH port, that the key is "
                    "authorized for the user, and that sshd allows TCP forwarding."
                )
            time.sleep(RETRY_PAUSE_SECONDS)
        yield local
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def write_ssh_config(workdir: str, private_key: str, known_hosts: Sequence[Pin] | None,
                     kex_algorithms: Sequence[str] = ()) -> str:
    """Key (0600), a known_hosts file of the pins and an ssh config that every hop reads;
    returns the config's path. `workdir` must be private (mkdtemp).

    Options go in a config file because `-J` starts a second ssh for the
    bastion that inherits `-F` but not `-i`/`-o` from the command line.
    `known_hosts` None: a state written before host keys were pinned, whose
    servers are accepted as the program did then (only a destroy with no `up`
    of this version before it gets there). `kex_algorithms`: the key exchange
    order (key_exchange.py), ssh's own when empty.
    """
    key_path = os.path.join(workdir, "id_key")
    known_hosts_path = os.path.join(workdir, "known_hosts")
    config_path = os.path.join(workdir, "ssh_config")
    key_text = private_key if private_key.endswith("\n") else private_key + "\n"
    _write(key_path, key_text, 0o600)  # ssh refuses keys others can read
    _write(known_hosts_path, known_hosts_text(known_hosts or ()), 0o600)
    _write(
        config_path,
        "\n".join(
            [
                "Host *",
                f'  IdentityFile "{key_path}"',
                "  IdentitiesOnly yes",
                "  IdentityAgent none",
                "  BatchMode yes",
                # Only the key the stack holds for a host (known_hosts.py) lets ssh go on.
                "  StrictHostKeyChecking " + ("yes" if known_hosts is not None else "accept-new"),
                f'  UserKnownHostsFile "{known_hosts_path}"',
                "  GlobalKnownHostsFile /dev/null",
                "  UpdateHostKeys no",
                "  ConnectTimeout 10",
                "  ServerAliveInterval 10",
                "  ServerAliveCountMax 3",
                "  ExitOnForwardFailure yes",
                "  ControlMaster no",
                "  ControlPath none",
                "  LogLevel ERROR",
                *([f"  KexAlgorithms {','.join(kex_algorithms)}"] if kex_algorithms else []),
                "",
            ]
        ),
        0o600,
    )
    return config_path


def _write(path: str, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _start_ssh(
    ssh_binary: str,
    config_path: str,
    spec: TunnelSpec,
    targets: Sequence[Address],
    local: Sequence[Address],
    stderr_path: str,
) -> subprocess.Popen:
    command = [ssh_binary, "-F", config_path, "-N", "-p", str(spec.gateway.port), "-l", spec.gateway.user]
    if spec.bastion is not None:
        command += ["-J", spec.bastion.destination()]
    for (local_host, local_port), (host, port) in zip(local, targets):
        target_host = f"[{host}]" if ":" in host else host
        command += ["-L", f"{local_host}:{local_port}:{target_host}:{port}"]
    command += ["--", spec.gateway.host]  # a host name is never an option
    with open(stderr_path, "wb") as stderr:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # Ctrl-C in the terminal must not leave it half-dead
        )


def _wait_for_forwards(process: subprocess.Popen, local: Sequence[Address], until: float) -> bool:
    """True once every local port accepts connections; False if ssh exits or time runs out.

    ssh binds the local ports only after authenticating, so an accepting port
    means the tunnel is up.
    """
    while time.monotonic() < until:
        if process.poll() is not None:
            return False
        if all(_accepts(address) for address in local):
            return process.poll() is None
        time.sleep(0.2)
    return False


def _accepts(address: Address) -> bool:
    try:
        with socket.create_connection(address, timeout=1.0):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_tail(path: str, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read()[-limit:].decode(errors="replace").strip()
    except OSError:
        return ""


def _format(targets: Sequence[Address]) -> str:
    return ",".join(f"{host}:{port}" for host, port in targets)
