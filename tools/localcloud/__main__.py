"""`python -m tools.localcloud create|destroy`: a cluster's machines on this host.

    sudo venv/bin/python -m tools.localcloud create [--package PATH] [--replicas N]
    sudo venv/bin/python -m tools.localcloud destroy

`make local-machines` and `make local-machines-destroy` run these.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cloud import missing_prerequisites
from .local_machines import STACK_FILE, Shape, create, destroy


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.localcloud", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create", help="boot the machines and write stacks/Pulumi.local.yaml")
    make.add_argument("--package", help="your pack_server tarball (default: the newest under packages/)")
    make.add_argument("--replicas", type=int, default=3, help="ReplicaServers (3 or more)")
    make.add_argument("--stack-file", type=Path, default=STACK_FILE,
                      help="where to write the stack (default: %(default)s)")
    commands.add_parser("destroy", help="remove the machines, their disks and network")
    args = parser.parse_args(argv)
    problems = missing_prerequisites()
    if problems:
        print("localcloud: this machine cannot host local machines: " + "; ".join(problems)
              + " (as root: sudo make local-machines; make deps installs the tools)", file=sys.stderr)
        return 1
    if args.command == "create":
        create(args.package, Shape(replica=max(3, args.replicas)), stack_file=args.stack_file)
    else:
        destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
