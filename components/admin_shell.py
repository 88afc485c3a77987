"""Pegasus's admin shell, run on a MetaServer host from an installed `pack_tools` package.

The rolling restart drives the MetaServer's own operations the way Pegasus's
scripts do (scripts/pegasus_rolling_update.sh, pegasus_offline_node.sh,
migrate_node.sh and downgrade_node.sh at v2.5.0): commands piped into
`./run.sh shell --cluster <meta list>` in the tools directory, their printed
tables read back. The formats read here are the shell's (src/shell/commands/*.cpp
and src/client/replication_ddl_client.cpp, tables by src/utils/output_utils.cpp):
a `[name]` line, then rows of blank-separated cells, then an empty line.

It calls the shell's commands itself rather than `run.sh migrate_node` and
`run.sh downgrade_node`: the latter does nothing at 2.5.0 when given a meta
list (its `if [ [ ...` test always fails; fixed upstream in #2056), and both
only print the `balance` and `propose` lines piped in here.

Pure logic over one callable that runs a command line on the host, so tests can
run it against the shell double without SSH.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Callable, Sequence

from components.host_files import as_root

# Ends the here-document that feeds the shell its commands.
INPUT_END = "PEGASUS_SHELL_INPUT_END"


class AdminShellError(RuntimeError):
    """The shell could not be run, or a command did not do what it should."""


@dataclass(frozen=True)
class NodeRow:
    status: str  # ALIVE | UNALIVE
    replicas: int
    primaries: int
    secondaries: int


@dataclass(frozen=True)
class Partition:
    gpid: str  # "<app_id>.<pidx>"
    primary: str  # "" when it has none
    secondaries: tuple[str, ...]


def sections(text: str) -> dict[str, list[list[str]]]:
    """Tables of the shell's output: {name: rows of cells}; the first row of a
    multi-column table is its header. Lines outside a table are skipped."""
    tables: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]") and " " not in stripped:
            current = tables.setdefault(stripped[1:-1], [])
        elif not stripped:
            current = None
        elif current is not None:
            current.append(stripped.split())
    return tables


def pairs(rows: list[list[str]]) -> dict[str, str]:
    """A single-column table (`name : value`) as a dict."""
    out = {}
    for row in rows:
        line = " ".join(row)
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def shell_script(tools_dir: str, meta_list: str, library_dir: str, commands: Sequence[str]) -> str:
    """The command line that pipes `commands` into ./run.sh shell, as root, from the tools dir
    (run.sh takes its working directory as the package root)."""
    body = "\n".join(commands)
    if INPUT_END in body:
        raise ValueError(f"a shell command contains {INPUT_END!r}")
    return as_root(
        "set -euo pipefail\n"
        f"cd {shlex.quote(tools_dir)}\n"
        f"export LD_LIBRARY_PATH={shlex.quote(library_dir)}\n"
        f"./run.sh shell --cluster {shlex.quote(meta_list)} <<'{INPUT_END}'\n{body}\n{INPUT_END}\n")


class AdminShell:
    """One MetaServer host's admin shell. `run(command_line)` -> (exit status, output)."""

    def __init__(self, run: Callable[[str], tuple[int, str]], tools_dir: str, meta_list: str,
                 library_dir: str = "") -> None:
        self._run, self.tools_dir, self.meta_list, self.library_dir = run, tools_dir, meta_list, library_dir

    def run(self, *commands: str) -> str:
        status, output = self._run(shell_script(self.tools_dir, self.meta_list, self.library_dir, commands))
        if status != 0:
            raise AdminShellError(f"`./run.sh shell` in {self.tools_dir} exited with {status} on "
                                  f"{'; '.join(commands)}:\n{output[-3000:]}")
        return output

    def _table(self, command: str, name: str) -> list[list[str]]:
        output = self.run(command)
        table = sections(output).get(name)
        if table is None:
            raise AdminShellError(f"`{command}` printed no [{name}] table:\n{output[-3000:]}")
        return table

    # -- reads
    def cluster_info(self) -> dict[str, str]:
        return pairs(self._table("cluster_info", "cluster_info"))

    def leader(self) -> str:
        leader = self.cluster_info().get("primary_meta_server", "")
        if not leader:
            raise AdminShellError("`cluster_info` names no primary_meta_server")
        return leader

    def nodes(self) -> dict[str, NodeRow]:
        """`nodes -d`: address -> status and replica counts (from the partition configs)."""
        rows = self._table("nodes -d", "details")
        out = {}
        for row in rows[1:]:
            if len(row) >= 5 and row[2].isdigit():
                out[row[0]] = NodeRow(row[1], int(row[2]), int(row[3]), int(row[4]))
        return out

    def available_apps(self) -> list[tuple[str, str]]:
        """`ls`: (app_id, app_name) of the AVAILABLE tables."""
        rows = self._table("ls", "general_info")
        return [(row[0], row[2]) for row in rows[1:] if len(row) >= 3 and row[1] == "AVAILABLE"]

    def partitions(self, app_id: str, app_name: str) -> list[Partition]:
        """`app <name> -d`: each partition's primary and secondaries."""
        rows = self._table(f"app {shlex.quote(app_name)} -d", "replicas")
        out = []
        for row in rows[1:]:
            if len(row) >= 5 and row[0].isdigit():
                secondaries = tuple(s for s in row[4].strip("[]").split(",") if s)
                out.append(Partition(f"{app_id}.{row[0]}", "" if row[3] == "-" else row[3], secondaries))
        return out

    def all_partitions(self) -> list[Partition]:
        return [p for app_id, name in self.available_apps() for p in self.partitions(app_id, name)]

    def unhealthy_partitions(self) -> int:
        """`ls -d`: partitions not fully healthy, summed over the tables (as the offline script counts)."""
        output = self.run("ls -d")
        rows = sections(output).get("healthy_info")
        if rows is None:
            if "[general_info]" in output:
                return 0  # no AVAILABLE table: nothing to be unhealthy
            raise AdminShellError(f"`ls -d` printed no table:\n{output[-3000:]}")
        return sum(int(row[2]) - int(row[3]) for row in rows[1:] if len(row) >= 7 and row[2].isdigit())

    # -- MetaServer settings
    def get_meta_level(self) -> str:
        output = self.run("get_meta_level")
        for line in output.splitlines():
            if line.startswith("current meta level is "):
                return line.rsplit(" ", 1)[1].removeprefix("fl_")
        raise AdminShellError(f"`get_meta_level` did not say the level:\n{output[-3000:]}")

    def set_meta_level(self, level: str) -> None:
        output = self.run(f"set_meta_level {level}")
        if "control meta level ok" not in output:  # what the rolling update greps for
            raise AdminShellError(f"`set_meta_level {level}` failed:\n{output[-3000:]}")

    def remote_command(self, node: str, command: str, *args: str) -> str:
        """`remote_command -l NODE CMD ARGS`: the node's answer ("OK" for a setting changed)."""
        line = " ".join(["remote_command", "-l", node, command, *args])
        output = self.run(line)
        for text in output.splitlines():
            if text.startswith(f"CALL [user-specified] [{node}] "):
                verdict, _, result = text.split("] ", 2)[2].partition(": ")
                if verdict == "succeed":
                    return result.strip()
        raise AdminShellError(f"`{line}` did not succeed:\n{output[-3000:]}")

    # -- proposals (what migrate_node.sh and downgrade_node.sh pipe into the shell)
    def propose_all(self, lines: Sequence[str], answer: str) -> int:
        """Pipes proposal lines into one shell; returns how many the MetaServer accepted."""
        if not lines:
            return 0
        output = self.run(*lines)
        return sum(1 for text in output.splitlines() if text.startswith(answer) and text.endswith("ERR_OK"))
