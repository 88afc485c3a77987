"""The key exchange order of short, read-only sessions (`make status`).

OpenSSH 9.0 made the hybrid post-quantum sntrup761x25519-sha512 its first
choice. Its handshake costs each end about 90 ms of CPU (OpenSSH 9.2, measured
for `make bench`), against 7 ms for curve25519-sha256: 9 s of the operator's
CPU to ask 100 servers, and as much again on each server every time someone
looks. A status read carries nothing worth recording now to decrypt decades
later, so it puts curve25519 first. Deployments, which carry keys and
configs, keep ssh's own order.
"""

from __future__ import annotations

import subprocess

CLASSICAL = ("curve25519-sha256", "curve25519-sha256@libssh.org")


def classical_first(ssh_binary: str = "ssh") -> tuple[str, ...]:
    """ssh's built-in key exchange list with curve25519 moved to the front (nothing added,
    so no algorithm ssh disables by default comes back); () when ssh cannot say."""
    try:  # -G prints the configuration a connection would use, without connecting
        done = subprocess.run([ssh_binary, "-G", "-F", "/dev/null", "status.invalid"],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "kexalgorithms" and value.strip():
            default = value.strip().split(",")
            return tuple([a for a in CLASSICAL if a in default] + [a for a in default if a not in CLASSICAL])
    return ()
