"""Doubles of the restart scripts staged on each server (templates/restart_role.sh.j2).

For tests that drive them over a real sshd (tests/support/ssh_server.py) with
two addresses standing for servers: a run only writes down which server ran
which phase (the server from $SSH_CONNECTION) and exits as a control file says.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Mapping


class StagedScripts:
    """Doubles of the staged restart scripts: each run appends "<server ip> <role> <phase>"
    to a log; `<ip>-<role>-<phase>` in the control directory holds the exit status to use."""

    def __init__(self, root: Path, hosts: Mapping[str, str]) -> None:
        self.hosts = hosts
        self.dir, self.control, self.log = root / "staged", root / "control", root / "runs.log"
        self.dir.mkdir()
        self.control.mkdir()
        for role in ("meta", "replica", "collector"):
            (self.dir / f"{role}.restart.sh").write_text(textwrap.dedent(f"""\
                set -euo pipefail
                server=${{SSH_CONNECTION#* * }}; server=${{server%% *}}  # "client port server port"
                echo "$server {role} $1" >>{self.log}
                echo "{role} $1 on $server: output line"
                status_file={self.control}/$server-{role}-$1
                exit "$(cat "$status_file" 2>/dev/null || echo 0)"
                """))

    def exit_with(self, key: str, phase: str, status: int) -> None:
        host, _, role = key.partition("/")
        (self.control / f"{self.hosts[host]}-{role}-{phase}").write_text(str(status))

    def runs(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []
