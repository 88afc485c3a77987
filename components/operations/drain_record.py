"""A drain in progress, recorded on the MetaServer host where the admin shell runs.

A drain (replica_drain.py) changes the leading MetaServer's settings: meta
level steady, `meta.lb.assign_delay_ms` raised (50 hours for a restart),
`add_secondary_max_count_for_one_node` 0, flow control on. The roll puts them
back at its end, also when it fails; a `pulumi up` killed outright (SIGKILL, a
machine that went away) never gets there, and the next drain would then read
the changed values as the ones to go back to. So, before it changes anything,
a drain writes the values it found to `<staged_dir>/drains/<key>.json` on that
host, one file per drain (a roll's, whose groups of ReplicaServers it drains in
turn, or a removal's), keyed by its purpose and the set of nodes it is for; the
file goes once every value is back. Whatever finds such a file later puts its
values back first: the next drain before it reads anything, and the health
check at every `pulumi up` (so an `up` with nothing to roll still mends it).

Pure logic over one callable that runs a command line on that host, as
AdminShell is: tests run it locally.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from components.render.templates import as_root

RECORDS_SUBDIR = "drains"
# Separates the records when they are listed in one go.
_RECORD_START = "==== pegasus drain record "


class DrainRecordError(RuntimeError):
    """The record of a drain could not be written, read or removed on the MetaServer host."""


def records_dir(staged_dir: str) -> str:
    """Where the drain records live on the admin shell's MetaServer host."""
    return f"{staged_dir}/{RECORDS_SUBDIR}"


def drain_key(purpose: str, nodes: Sequence[str]) -> str:
    """One name per drain: its purpose and the nodes it drains, in any order."""
    digest = hashlib.sha256(",".join(sorted(nodes)).encode()).hexdigest()[:16]
    return f"{purpose}-{digest}"


@dataclass
class DrainRecords:
    """The records on one host. `run(command_line)` -> (exit status, output), on that host."""

    run: Callable[[str], tuple[int, str]]
    directory: str

    def _run(self, what: str, script: str) -> str:
        status, output = self.run(as_root("set -euo pipefail\n" + script))
        if status != 0:
            raise DrainRecordError(f"{what} in {self.directory} on the MetaServer host failed (exit {status}):\n"
                                   f"{output[-2000:]}")
        return output

    def save(self, key: str, record: dict[str, Any]) -> None:
        path = f"{self.directory}/{key}.json"
        self._run(f"writing the drain record {key}",
                  f"install -d -m 0755 -- {shlex.quote(self.directory)}\n"
                  f"printf '%s\\n' {shlex.quote(json.dumps(record, sort_keys=True))} >{shlex.quote(path + '.new')}\n"
                  f"mv -f -- {shlex.quote(path + '.new')} {shlex.quote(path)}\n")

    def remove(self, key: str) -> None:
        self._run(f"removing the drain record {key}", f"rm -f -- {shlex.quote(f'{self.directory}/{key}.json')}\n")

    def load(self) -> dict[str, dict[str, Any]]:
        """Every record on the host: key -> record. A record that does not parse is an error
        (its values cannot be put back, and it must not be taken as absent)."""
        output = self._run("reading the drain records",
                           f"for file in {shlex.quote(self.directory)}/*.json; do\n"
                           "  [[ -f $file ]] || continue\n"
                           f"  printf '%s%s\\n' {shlex.quote(_RECORD_START)} \"$(basename -- \"$file\" .json)\"\n"
                           "  cat -- \"$file\"\n"
                           "done\n")
        records: dict[str, dict[str, Any]] = {}
        for chunk in output.split(_RECORD_START)[1:]:
            key, _, text = chunk.partition("\n")
            try:
                record = json.loads(text)
            except ValueError as error:
                raise DrainRecordError(f"the drain record {self.directory}/{key}.json on the MetaServer host does "
                                       f"not parse ({error}): {text[:500]!r}") from error
            if not isinstance(record, dict) or not isinstance(record.get("saved"), dict):
                raise DrainRecordError(f"the drain record {self.directory}/{key}.json holds no saved settings: "
                                       f"{text[:500]!r}")
            records[key] = record
        return records
