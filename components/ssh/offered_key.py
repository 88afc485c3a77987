"""The host key a server offers now, read with the system `ssh`: to record it once.

Only for servers a stack ran before it pinned host keys: AWS instances launched
without a key from the stack. The program accepted whatever key they offered at
every `up` until then; the first `up` that pins keys records the one they offer
and holds them to it from then on (operations/host_key_pin.py).

ssh accepts the server's key into a known_hosts file of its own (`accept-new`)
and logs in, which proves the stack's key still opens it; the bastion, if
any, is checked strictly against its pin meanwhile (command-line options do not
reach the `-J` hop, which reads only the config file). Ed25519 is asked for
first, then ECDSA: the only types a pin takes (spec/host_key.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from typing import Sequence

from components.spec.host_key import ACCEPTED_TYPES, HostKey, parse_host_key
from components.ssh.known_hosts import Pin, refusal
from components.ssh.tunnel import SshEndpoint, write_ssh_config

DIALS = 4
DIAL_PAUSE_SECONDS = 5.0


class KeyNotRecorded(RuntimeError):
    """The server did not complete a key exchange, or offered no key a pin takes."""


def record_offered_key(host: str, user: str, private_key: str, *, port: int = 22,
                       bastion: SshEndpoint | None = None, bastion_pins: Sequence[Pin] = (),
                       ssh_binary: str = "ssh", dials: int = DIALS) -> HostKey:
    """The key `host` offers (and that the stack's key logs in to it); KeyNotRecorded otherwise."""
    workdir = tempfile.mkdtemp(prefix="pegasus-ssh-")  # mode 0700
    try:
        config = write_ssh_config(workdir, private_key, bastion_pins)
        recorded = os.path.join(workdir, "recorded")
        command = [ssh_binary, "-F", config, "-o", "StrictHostKeyChecking=accept-new",
                   "-o", f"UserKnownHostsFile={recorded}", "-o", f"HostKeyAlgorithms={','.join(ACCEPTED_TYPES)}",
                   "-p", str(port), "-l", user]
        if bastion is not None:
            command += ["-J", bastion.destination()]
        command += ["--", host, "true"]
        output = ""
        for dial in range(max(1, dials)):
            if dial:
                time.sleep(DIAL_PAUSE_SECONDS)
            done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, start_new_session=True)
            output = done.stdout.decode(errors="replace").strip()
            refused = refusal(output, bastion_pins)
            if refused is not None:
                raise refused  # the bastion is not the one the stack holds: nothing recorded through it
            if done.returncode == 0:
                return _recorded_key(recorded, host, output)
        raise KeyNotRecorded(f"{host} did not let ssh in to record its host key after {dials} dials: {output}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _recorded_key(path: str, host: str, output: str) -> HostKey:
    try:
        with open(path, encoding="utf-8") as handle:
            fields = handle.read().split()
    except OSError:
        fields = []
    if len(fields) < 3:
        raise KeyNotRecorded(f"{host}: ssh logged in but wrote no host key: {output}")
    return parse_host_key(" ".join(fields[1:3]))
