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

Two dialects, by the tools package's release:
- up to 2.5, nodes are `ip:port` (rpc_address), `remote_command` reports one
  `CALL [<role>] [<node>] succeed: <answer>` line per node
  (src/shell/commands/node_management.cpp, v2.5.0) and the MetaServer's
  `meta.lb.*` settings answer `OK`;
- master (2.6) names nodes `host:port` (rpc_host_port.cpp: the reverse DNS
  name of the server's address) in `nodes`, `app -d` and `cluster_info`;
  `balance`, `propose` and `remote_command -l` take any `host:port` that
  resolves (host_port::from_string), but the MetaServer matches a proposal's
  nodes by name (partition_guardian.cpp from_proposals), so only the listed
  name works. `remote_command` prints one JSON object per command (its
  `details` keyed by the node as given, each answer parsed as JSON when it
  is JSON), and settings answer `{"error": "ok", ...}`
  (utils/command_manager.h set_int, command_manager.cpp set_bool).

Pure logic over one callable that runs a command line on the host, so tests can
run it against the shell double without SSH.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass
from typing import Callable, Sequence

from components.render.templates import as_root

# Ends the here-document that feeds the shell its commands.
INPUT_END = "PEGASUS_SHELL_INPUT_END"
# perf_counters.cpp (v2.5.0): "<app>*<section>*<name>"; replica_stub.cpp registers these three
# in section eon.replica_stub. pegasus_rolling_update.sh sums them to know the replicas closed.
REPLICA_COUNTERS = ("replica(Count)", "opening.replica(Count)", "closing.replica(Count)")


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


def names_nodes_by_host(release: str) -> bool:
    """Whether a release's shell and MetaServers name nodes `host:port` (master, 2.6+)."""
    major, minor = (int(part) for part in release.split(".")[:2])
    return (major, minor) >= (2, 6)


def is_ip_node(node: str) -> bool:
    try:
        ipaddress.IPv4Address(node.rpartition(":")[0])
    except ValueError:
        return False
    return True


def json_objects(text: str) -> list[dict]:
    """The top-level JSON objects in master's shell output (nlohmann dump(2): each opens
    with `{` at the start of a line; nested ones are indented)."""
    decoder, objects, position = json.JSONDecoder(), [], 0
    while (start := text.find("{", position)) >= 0:
        position = start + 1
        if start and text[start - 1] != "\n":
            continue
        try:
            value, position = decoder.raw_decode(text, start)
        except ValueError:
            continue
        objects.append(value)
    return objects


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
    """One MetaServer host's admin shell. `run(command_line)` -> (exit status, output).
    `release`: the tools package's, which decides the shell's dialect."""

    def __init__(self, run: Callable[[str], tuple[int, str]], tools_dir: str, meta_list: str,
                 library_dir: str = "", release: str = "2.5.0") -> None:
        self._run, self.tools_dir, self.meta_list, self.library_dir = run, tools_dir, meta_list, library_dir
        self.by_host = names_nodes_by_host(release)

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

    def calls(self, node: str, commands: Sequence[str]) -> list[str | None]:
        """`remote_command -l NODE <command>` for each command line, in one shell; the node's
        answers in order, None for a call that failed (an answer master parsed as JSON comes
        back as JSON text)."""
        return self._calls(node, commands)[0]

    def _calls(self, node: str, commands: Sequence[str]) -> tuple[list[str | None], str]:
        lines = [f"remote_command -l {node} {command}" for command in commands]
        output = self.run(*lines)
        answers = self._json_answers(node, output) if self.by_host else self._call_answers(node, output)
        if len(answers) != len(lines):
            raise AdminShellError(f"`{'; '.join(lines)}` reported {len(answers)} calls:\n{output[-3000:]}")
        return answers, output

    def remote_commands(self, node: str, commands: Sequence[str]) -> list[str]:
        """As `calls`, failing unless every call succeeded."""
        answers, output = self._calls(node, commands)
        done = [a for a in answers if a is not None]
        if len(done) != len(answers):
            lines = "; ".join(f"remote_command -l {node} {command}" for command in commands)
            raise AdminShellError(f"`{lines}` did not succeed:\n{output[-3000:]}")
        return done

    def remote_command(self, node: str, command: str, *args: str) -> str:
        """`remote_command -l NODE CMD ARGS`: the node's answer."""
        return self.remote_commands(node, [" ".join([command, *args])])[0]

    @staticmethod
    def _call_answers(node: str, output: str) -> list[str | None]:
        """Up to 2.5: `CALL [user-specified] [NODE] succeed|failed: ANSWER`, one line per call."""
        answers: list[str | None] = []
        for text in output.splitlines():
            if text.startswith(f"CALL [user-specified] [{node}] "):
                verdict, _, result = text.split("] ", 2)[2].partition(": ")
                answers.append(result.strip() if verdict == "succeed" else None)
        return answers

    @staticmethod
    def _json_answers(node: str, output: str) -> list[str | None]:
        """master: {"command", "details": {NODE: {"acked", "message", "role"}}, ...} per call."""
        answers: list[str | None] = []
        for report in json_objects(output):
            detail = (report.get("details") or {}).get(node)
            if isinstance(detail, dict) and "acked" in detail:
                message = detail.get("message")
                answers.append((message if isinstance(message, str) else json.dumps(message))
                               if detail["acked"] else None)
        return answers

    @staticmethod
    def _setting_answer(line: str, answer: str) -> dict:
        try:
            parsed = json.loads(answer)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or parsed.get("error") != "ok":
            raise AdminShellError(f"`{line}` answered {answer!r}")
        return parsed

    def setting(self, node: str, name: str) -> str:
        """A MetaServer setting's current value (`remote_command -l NODE NAME`)."""
        answer = self.remote_command(node, name)
        if not self.by_host:
            return answer
        value = self._setting_answer(f"remote_command -l {node} {name}", answer).get(name)
        if value is None:
            raise AdminShellError(f"`remote_command -l {node} {name}` answered {answer!r}, without the value")
        return str(value)

    def set_setting(self, node: str, name: str, value: str) -> None:
        answer = self.remote_command(node, name, value)
        line = f"remote_command -l {node} {name} {value}"
        if self.by_host:
            self._setting_answer(line, answer)
        elif answer != "OK":  # the scripts grep for OK
            raise AdminShellError(f"`{line}` answered {answer!r}")

    def open_replicas(self, node: str) -> int | None:
        """Replicas the node serves, opens or closes (`perf-counters '.*replica(Count)'`), as
        pegasus_rolling_update.sh (v2.5.0) sums them; None when the call failed. Up to 2.5
        only: see replica_drain.py."""
        [answer] = self.calls(node, ["perf-counters '.*replica(Count)'"])
        if answer is None:
            return None
        try:
            counters = json.loads(answer).get("counters") or []
            counts = {c["name"].split("*")[-1]: int(c["value"]) for c in counters
                      if c["name"].split("*")[1:2] == ["eon.replica_stub"]}
        except (ValueError, TypeError, KeyError, AttributeError):
            counts = {}
        if not all(name in counts for name in REPLICA_COUNTERS):
            raise AdminShellError(f"extracting the replica counts from {node}'s perf counters failed "
                                  f"(`perf-counters '.*replica(Count)'` answered {answer[:500]!r})")
        return sum(counts[name] for name in REPLICA_COUNTERS)

    # -- node names
    def node_name(self, address: str) -> str | None:
        """The name the MetaServers list the ReplicaServer at `address` ("ip:port") by: the
        address itself up to 2.5; on master the listed `host:port` whose host resolves to
        that IP on this MetaServer host (the shell resolves names there). None if not listed."""
        listed = list(self.nodes())
        if address in listed:
            return address
        ip, _, port = address.rpartition(":")
        named = [n for n in listed if n.rpartition(":")[2] == port and not is_ip_node(n)]
        resolved = self.resolve(sorted({n.rpartition(":")[0] for n in named}))
        matches = [n for n in named if ip in resolved.get(n.rpartition(":")[0], set())]
        if len(matches) > 1:
            raise AdminShellError(f"the MetaServers list {', '.join(matches)}, which all resolve to {ip} on the "
                                  "MetaServer host: give each server a name of its own")
        return matches[0] if matches else None

    def resolve(self, hosts: Sequence[str]) -> dict[str, set[str]]:
        """host -> its IPv4 addresses on the MetaServer host (`getent ahostsv4`: getaddrinfo
        with AF_INET, as rpc_address::ipv4_from_host resolves a host_port on master)."""
        if not hosts:
            return {}
        script = ("set -euo pipefail\n"
                  f"for name in {' '.join(shlex.quote(h) for h in hosts)}; do\n"
                  "  printf '%s' \"$name\"\n"
                  "  getent ahostsv4 \"$name\" | awk '{printf \" %s\", $1}' || true\n"
                  "  echo\n"
                  "done\n")
        status, output = self._run(f"bash -c {shlex.quote(script)}")
        if status != 0:
            raise AdminShellError(f"resolving {', '.join(hosts)} on the MetaServer host failed:\n{output[-3000:]}")
        out: dict[str, set[str]] = {}
        for line in output.splitlines():
            words = line.split()
            if words and words[0] in hosts:
                out[words[0]] = set(words[1:])
        return out

    # -- proposals (what migrate_node.sh and downgrade_node.sh pipe into the shell)
    def propose_all(self, lines: Sequence[str], answer: str) -> int:
        """Pipes proposal lines into one shell; returns how many the MetaServer accepted."""
        if not lines:
            return 0
        output = self.run(*lines)
        return sum(1 for text in output.splitlines() if text.startswith(answer) and text.endswith("ERR_OK"))
