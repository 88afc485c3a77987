"""Runs a command line on servers with the system `ssh` client, from where `pulumi up` runs.

The rolling restart acts on many servers in an order that Pulumi's resource
graph cannot express without chaining them (issue 10): it runs the scripts
staged on each server itself, the way pulumi-command's remote Command would
(one exec request per command line, the key from the stack, the same bastion).
The private files (key, known_hosts, ssh config) live in one private temporary
directory per session, removed when it closes. Every host's key, and the
bastion's, is checked strictly against the stack's pins (known_hosts.py): a
server that offers another key raises HostKeyRefused, and is not dialled again.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from components.ssh.known_hosts import Pin, pins_from, refusal
from components.ssh.tunnel import SshEndpoint, write_ssh_config

# ssh exits with 255 when it could not connect or authenticate, and also when the
# connection drops while the command runs (ssh(1), EXIT STATUS): the two are told
# apart by a line the remote shell prints before it runs the command.
SSH_FAILED = 255
# A server that answered during this deployment may still drop one connection
# (sshd's MaxStartups under a burst, a busy bastion): a few dials, a pause apart.
DIALS = 4
DIAL_PAUSE_SECONDS = 5.0


@dataclass(frozen=True)
class SshResult:
    host: str
    returncode: int
    output: str  # stdout and stderr, interleaved as the server wrote them
    # Whether the command began on the host. False: ssh never got that far, so
    # nothing ran; True with SSH_FAILED: the connection dropped while it ran.
    started: bool = True

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


@dataclass
class SshSession:
    """Key and bastion shared by every command of one deployment step."""

    user: str
    private_key: str = field(repr=False)
    known_hosts: tuple[Pin, ...]  # every host this session may reach, the bastion included
    bastion: SshEndpoint | None = None
    port: int = 22
    ssh_binary: str = "ssh"
    kex_algorithms: tuple[str, ...] = ()  # ssh's own order when empty (key_exchange.py)
    _workdir: str | None = field(default=None, repr=False)
    _config: str | None = field(default=None, repr=False)

    def __enter__(self) -> "SshSession":
        self._workdir = tempfile.mkdtemp(prefix="pegasus-ssh-")  # mode 0700
        self._config = write_ssh_config(self._workdir, self.private_key, self.known_hosts, self.kex_algorithms)
        return self

    def __exit__(self, *_exc) -> None:
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = self._config = None

    def run(self, host: str, command_line: str, *, dials: int = DIALS) -> SshResult:
        """Runs `command_line` on `host` and waits for it. Dials again only when the
        command never started: one that started may still be running there, and
        running it a second time could overlap the first."""
        if self._config is None:
            raise RuntimeError("SshSession.run outside its `with` block")
        marker = f"pegasus-ssh: started {secrets.token_hex(8)}"
        command = [self.ssh_binary, "-F", self._config, "-p", str(self.port), "-l", self.user]
        if self.bastion is not None:
            command += ["-J", self.bastion.destination()]
        # The remote shell prints the marker, then runs the command line; a host name is never an option.
        command += ["--", host, f"printf '%s\\n' '{marker}'; {command_line}"]
        result = SshResult(host, SSH_FAILED, "", started=False)
        for dial in range(max(1, dials)):
            if dial:
                time.sleep(DIAL_PAUSE_SECONDS)
            done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, start_new_session=True, env=_ssh_environment())
            output = done.stdout.decode(errors="replace")
            started = marker in output
            result = SshResult(host, done.returncode, output.replace(f"{marker}\n", "", 1), started=started)
            if done.returncode != SSH_FAILED or started:
                break
            refused = refusal(result.output, self.known_hosts)
            if refused is not None:
                raise refused
        return result


def session_for(access: Mapping[str, Any]) -> SshSession:
    """A session from a dynamic resource's `access` input: {user, port, private_key,
    bastion: {host, user, port} | None, known_hosts: [Pin.as_dict(), ...]}, as every
    server's connection has them."""
    bastion = access.get("bastion")
    return SshSession(user=access["user"], private_key=access["private_key"], port=int(access.get("port") or 22),
                      known_hosts=tuple(pins_from(access["known_hosts"])),
                      bastion=SshEndpoint(bastion["host"], bastion["user"], int(bastion.get("port") or 22))
                      if bastion else None)


def _ssh_environment() -> dict[str, str]:
    # No agent, no askpass: the key in the session's config is the only way in.
    return {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "SSH_ASKPASS", "DISPLAY")}
