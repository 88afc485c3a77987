"""Running host commands with errors that show what failed and why."""

from __future__ import annotations

import subprocess
from typing import Sequence


class HostCommandError(RuntimeError):
    pass


def run(args: Sequence[str], *, check: bool = True, input: str | None = None) -> str:
    """Run a host command; return its stdout. On failure, raise with its stderr."""
    result = subprocess.run(list(args), capture_output=True, text=True, input=input)
    if check and result.returncode != 0:
        raise HostCommandError(
            f"host command failed (exit {result.returncode}): {' '.join(args)}\n"
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout


def succeeds(args: Sequence[str]) -> bool:
    """True when the command exits 0 (its output is discarded)."""
    return subprocess.run(list(args), capture_output=True).returncode == 0
