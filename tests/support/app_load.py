"""Apache's Python client's load driver, run on this machine against stand-ins on loopback.

The same driver the end-to-end suite runs on application machines
(tests/e2e/appclient/availability_load.py), here a local process with pypegasus3's
directory (tests/support/pypegasus_env.py) and the stand-in's rdsn_thrift.py on its path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support.pypegasus_env import LOAD_DRIVER, WIRE, client_env


class LocalLoad:
    """`with LocalLoad(meta_list, work) as load:` drives every partition of the table;
    `load.stats` holds the driver's figures once the block ends."""

    def __init__(self, meta_list: str, work: Path, table: str = "availability", partitions: int = 8,
                 wait_replicas: int = 3) -> None:
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.stop_file, self.out = self.work / "stop-load", self.work / "load.json"
        self.stats: dict = {}
        self.command = [sys.executable, str(LOAD_DRIVER), "--metas", meta_list, "--table", table,
                        "--partitions", str(partitions), "--stop-file", str(self.stop_file), "--out", str(self.out),
                        "--wait-replicas", str(wait_replicas)]
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "LocalLoad":
        for stale in (self.stop_file, self.out):
            stale.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": f"{client_env()}:{WIRE.parent}"}
        self.err = open(self.work / "load.err", "w")  # noqa: SIM115 - closed in __exit__
        self.process = subprocess.Popen(self.command, cwd=self.work, env=env, stdout=subprocess.DEVNULL,
                                        stderr=self.err)
        deadline = time.monotonic() + 120
        while "load started" not in (self.work / "load.err").read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the load driver did not start:\n{(self.work / 'load.err').read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc) -> None:
        assert self.process is not None
        self.stop_file.touch()
        try:
            self.process.wait(timeout=120)
        finally:
            self.err.close()
        if exc[0] is None:
            assert self.out.exists(), (self.work / "load.err").read_text()[-3000:]
            self.stats = json.loads(self.out.read_text())
            assert "error" not in self.stats, self.stats
