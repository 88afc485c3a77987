"""Faults an end-to-end test injects from outside the program, as they happen to operators.

- `up_killed_when`: `pulumi up` killed outright (SIGKILL: no `finally`, no
  cleanup) at a moment the test picks. The engine runs in a child process (a
  fork of the test's), which saves the state after each step as Pulumi's
  checkpoint does; what it started on the machines (its `ssh` processes, in
  sessions of their own) lives on, as the provider processes of a killed
  `pulumi` do.
- `cut_ssh_serving`: the SSH connection that runs a given command on a
  machine, cut from the machine's side (its sshd session process killed): the
  operator's `ssh` sees the connection close under a running command.
- `unit_starts_since`: how many times systemd started a unit since a moment,
  from the journal (the "Started" message of each start, whatever started it).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from typing import Callable

# systemd's catalog: "Unit <unit> has finished starting up" (SD_MESSAGE_UNIT_STARTED).
UNIT_STARTED = "39f53479d3a045ac8e11786248231fbf"


def up_killed_when(engine, config, condition: Callable[[], bool], *, seconds: float = 600,
                   poll_seconds: float = 0.5) -> None:
    """Runs `engine.up(config)` in a child process and SIGKILLs it once `condition()` holds;
    the engine then reads the state the child left. Fails if the child ends first."""
    child = os.fork()
    if child == 0:  # the `pulumi up` to be killed
        status = 1
        try:
            engine.up(config)
            status = 0
        finally:
            os._exit(status)
    deadline, ended = time.monotonic() + seconds, None
    try:
        while ended is None and time.monotonic() < deadline:
            if condition():
                break
            done, status = os.waitpid(child, os.WNOHANG)
            ended = status if done else None
            time.sleep(poll_seconds)
    finally:
        if ended is None:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        engine.reload()
    if ended is not None:
        raise AssertionError(f"the `up` ended (status {ended}) before the moment to kill it came")
    if time.monotonic() >= deadline:
        raise AssertionError(f"the moment to kill the `up` did not come within {seconds:.0f}s")


# Run on the machine: the sshd session process ("sshd: <user>@notty") above the oldest process
# whose command line ends with the given words, killed; prints its pid, or nothing.
_CUT = r"""
import os, signal, sys
want = sys.argv[1].split()
def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []
def parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return 0
found = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and cmdline(p)[-len(want):] == want)
for pid in found:
    above = parent(pid)
    while above > 1:
        words = cmdline(above)
        if words and words[0].startswith("sshd:") and "@" in words[0]:
            os.kill(above, signal.SIGKILL)
            print(above)
            sys.exit(0)
        above = parent(above)
"""


def cut_ssh_serving(machine, command_tail: str) -> int | None:
    """Kills the sshd session process serving the command whose command line ends with
    `command_tail` (words); its pid, or None when no such command runs over SSH now."""
    out = machine.check(f"python3 -c {shlex.quote(_CUT)} {shlex.quote(command_tail)}").strip()
    return int(out) if out else None


def unit_starts_since(machine, unit: str, since: float) -> int:
    """How many times systemd started `unit` since `since` (seconds since the epoch)."""
    out = machine.check(f"journalctl -q --since @{int(since)} -o json UNIT={shlex.quote(unit)}")
    return sum(1 for line in out.splitlines() if line.strip() and json.loads(line).get("MESSAGE_ID") == UNIT_STARTED)
