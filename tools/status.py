"""`make status [STACK=...]`: print every server of the stack's cluster, as `tiup cluster display` does.

    python -m tools.status [--stack dev] [--identity ~/.ssh/pegasus_dev] [--outputs outputs.json]

Reads the stack's outputs with `pulumi stack output --json --show-secrets` (or
from --outputs, a file of that JSON), logs in to every host with the stack's SSH
key (the one `make up` offered to create: ~/.ssh/pegasus_<stack>) through the
stack's bastion if it has one, and prints the table of
components/operations/cluster_status.py. Exits 1 when a host did not answer SSH
or a server is not up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from components.operations import cluster_status
from components.ssh.key_exchange import classical_first
from components.ssh.known_hosts import Pin
from components.ssh.session import SSH_FAILED, SshResult, SshSession


def stack_outputs(stack: str) -> dict:
    try:
        done = subprocess.run(["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack],
                              capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SystemExit("The Pulumi CLI is not installed: see https://www.pulumi.com/docs/install/") from None
    if done.returncode != 0:
        raise SystemExit(f"pulumi stack output --stack {stack} failed: {done.stderr.strip()}")
    return json.loads(done.stdout or "{}")


def collect(outputs: dict, private_key: str, *, pins: tuple[Pin, ...] | None = None, port: int = 22,
            workers: int = 64) -> cluster_status.Status:
    """Every host asked at once with the stack's key, through its bastion, each host's key checked
    against the stack's `knownHosts` (or `pins`); a host that drops the first dial gets a second."""
    first = cluster_status.stack_hosts(outputs)[0]
    with SshSession(user=first.user, private_key=private_key, port=port, bastion=first.bastion,
                    known_hosts=pins if pins is not None else cluster_status.stack_pins(outputs),
                    kex_algorithms=classical_first()) as session:
        def runner(address: str, command: str) -> SshResult:
            result = session.run(address, command, dials=1)
            return session.run(address, command, dials=1) if result.returncode == SSH_FAILED else result
        return cluster_status.collect(outputs, runner, workers=workers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", default=os.environ.get("STACK", "dev"))
    parser.add_argument("--identity", help="the stack's SSH private key (default ~/.ssh/pegasus_<stack>)")
    parser.add_argument("--outputs", help="a file with the stack's outputs as JSON, instead of asking pulumi")
    parser.add_argument("--workers", type=int, default=64, help="hosts asked at once (default %(default)s)")
    args = parser.parse_args(argv)
    outputs = json.loads(Path(args.outputs).read_text()) if args.outputs else stack_outputs(args.stack)
    key_path = Path(args.identity or Path.home() / ".ssh" / f"pegasus_{args.stack}").expanduser()
    try:
        key = key_path.read_text()
    except OSError as e:
        print(f"cannot read the stack's SSH key {key_path}: {e.strerror}; pass --identity", file=sys.stderr)
        return 2
    try:
        cluster_status.stack_hosts(outputs)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    status = collect(outputs, key, workers=args.workers)
    print(cluster_status.format_status(status, str(outputs.get("clusterName", ""))), end="")
    healthy = all(r.reachable for r in status.hosts) and all(
        row[4] in ("Up", "ALIVE", "Up (host)") for row in cluster_status.rows(status))
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
