"""A real, single-node ZooKeeper server for tests, run from the Debian package.

It starts the way DESIGN.md describes (`zkServer.sh start-foreground <zoo.cfg>`
with ZOO_LOG_DIR set), on 127.0.0.1 and a free port, with its data in a
directory the caller owns, and is ready once it answers the `srvr` word.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

ZOOKEEPER_HOME = Path("/usr/share/zookeeper")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def four_letter_word(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    """Send a ZooKeeper four-letter word (srvr, ruok, mntr) and return the answer."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode())
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class ZooKeeperServer:
    """Usage: `with ZooKeeperServer(tmp_path) as zk: KazooClient(hosts=zk.hosts)`."""

    def __init__(self, work_dir: Path, *, port: int | None = None,
                 zookeeper_home: Path = ZOOKEEPER_HOME, start_timeout: float = 90.0):
        self.work_dir = Path(work_dir)
        self.port = port or free_port()
        self.zookeeper_home = Path(zookeeper_home)
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None

    @staticmethod
    def available(zookeeper_home: Path = ZOOKEEPER_HOME) -> bool:
        return (Path(zookeeper_home) / "bin" / "zkServer.sh").is_file()

    @property
    def hosts(self) -> str:
        """The `hosts_list` / kazoo `hosts` value: 127.0.0.1:<port>."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "zookeeper.out"

    def write_config(self) -> Path:
        data_dir = self.work_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "zoo.cfg"
        config.write_text(
            "tickTime=2000\n"
            "initLimit=10\n"
            "syncLimit=5\n"
            f"dataDir={data_dir}\n"
            f"clientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\n"
            "4lw.commands.whitelist=*\n"
            "admin.enableServer=false\n",
            encoding="utf-8",
        )
        return config

    def start(self) -> "ZooKeeperServer":
        if not self.available(self.zookeeper_home):
            raise RuntimeError(f"no ZooKeeper at {self.zookeeper_home}; install the Debian package `zookeeper`")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.write_config()
        env = {**os.environ, "ZOO_LOG_DIR": str(self.work_dir / "logs")}
        with open(self.log_file, "wb") as out:
            # zkServer.sh execs java, so this pid is the server's own.
            self.process = subprocess.Popen(
                [str(self.zookeeper_home / "bin" / "zkServer.sh"), "start-foreground", str(config)],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"ZooKeeper exited at start; its output:\n{self.output_tail()}")
            try:
                if "Zookeeper version" in four_letter_word("127.0.0.1", self.port, "srvr"):
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"ZooKeeper did not answer `srvr` on {self.hosts} within {self.start_timeout:.0f}s; "
                           f"its output:\n{self.output_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)

    def output_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output)"

    def __enter__(self) -> "ZooKeeperServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
