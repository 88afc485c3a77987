"""Finding and removing everything a local cloud run made, even after a crash.

A run keeps its files under `<cache>/runs/<tag>/` and names its links and
network namespaces `pg-e2e<tag>...`. Its `state.json` names the owning process
and the nspawn processes it started. From these, `sweep_run` removes, in order:
machine processes, host mounts, loop devices, network namespaces, links, files.
Each step looks at the live system (not only at the record), so a run killed
between "created" and "recorded" is still cleaned up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

from .network import PREFIX, list_links, list_netns
from .rootfs import cache_root
from .shell import run


# Tags of clouds open in this process: never swept from under their owner.
OPEN_TAGS: set[str] = set()


def runs_root() -> Path:
    return cache_root() / "runs"


class RunRecord:
    """state.json of one run: who owns it and which processes it started.
    `keep`: machines a user keeps after the process that made them exits
    (local_machines.py); no sweep removes them, only their own destroy."""

    def __init__(self, run_dir: Path, tag: str, keep: bool = False):
        self.path = run_dir / "state.json"
        self._lock = threading.Lock()
        self.data: dict[str, Any] = {"tag": tag, "owner_pid": os.getpid(), "pids": [], "loops": [], "keep": keep}
        self._save()

    def add(self, key: str, value) -> None:
        with self._lock:
            self.data[key].append(value)
            self._save()

    def remove(self, key: str, value) -> None:
        with self._lock:
            if value in self.data[key]:
                self.data[key].remove(value)
            self._save()

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)


def read_record(run_dir: Path) -> dict:
    """A run's state.json ({} when unreadable: a run killed before it wrote one)."""
    try:
        data = json.loads((run_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def processes_in_netns(netns: str) -> list[int]:
    """Processes living in the named network namespace (a machine's processes).

    A container's root directory is not visible from the host (`/proc/<pid>/root`
    reads "/" after nspawn's pivot_root), but its network namespace is.
    """
    try:
        inode = os.stat(f"/run/netns/{netns}").st_ino
    except OSError:
        return []
    wanted = f"net:[{inode}]"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "net") == wanted:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _nspawn_pids_for(directory: Path) -> list[int]:
    """systemd-nspawn processes whose command line names a path under `directory`."""
    needle = str(directory.resolve()) + "/"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"systemd-nspawn") and any(
            arg.decode(errors="replace").startswith(needle) for arg in argv
        ):
            pids.append(int(entry.name))
    return pids


def kill_processes(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def mounts_under(directory: Path) -> list[str]:
    """Host mount points under `directory`, deepest first."""
    prefix = str(directory.resolve()) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if (point + "/").startswith(prefix):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_all_under(directory: Path) -> None:
    for point in mounts_under(directory):
        run(["umount", point], check=False)
        if point in mounts_under(directory):
            run(["umount", "-l", point], check=False)


def loops_backed_under(directory: Path) -> list[str]:
    """Loop devices whose backing file lies under `directory`."""
    prefix = str(directory.resolve()) + "/"
    loops = []
    for line in run(["losetup", "-l", "-n", "--raw", "-O", "NAME,BACK-FILE"]).splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].replace(" (deleted)", "").startswith(prefix):
            loops.append(parts[0])
    return loops


def remove_tree(directory: Path) -> None:
    """Remove a run's directory, refusing while anything is mounted below it."""
    if not directory.exists():
        return
    left = mounts_under(directory)
    if left:
        raise RuntimeError(
            f"not removing {directory}: still mounted below it: {left}; "
            "unmount these and run sweep_leftovers() again"
        )
    shutil.rmtree(directory)


def sweep_run(tag: str, run_dir: Path) -> None:
    """Remove every trace of run `tag`: processes, mounts, loops, netns, links, files."""
    namespaces = [n for n in list_netns() if n.startswith(f"{PREFIX}{tag}-")]
    # Machine processes first: they hold mounts, loop devices and namespaces.
    for _ in range(50):
        pids = _nspawn_pids_for(run_dir) if run_dir.exists() else []
        for netns in namespaces:
            pids += processes_in_netns(netns)
        if not pids:
            break
        kill_processes(pids)
        time.sleep(0.1)
    if run_dir.exists():
        unmount_all_under(run_dir)
        for loop in loops_backed_under(run_dir):
            run(["losetup", "-d", loop], check=False)
    for netns in namespaces:
        run(["ip", "netns", "del", netns], check=False)
    for link in list_links():
        if link.startswith(f"{PREFIX}{tag}-"):
            run(["ip", "link", "del", link], check=False)
    remove_tree(run_dir)


def sweep_leftovers() -> list[str]:
    """Remove what earlier runs left behind (their owner is gone); return their tags.

    Runs whose owning process is still alive (a concurrent suite), clouds
    still open in this process and machines a user keeps are left alone.
    Links and namespaces named `pg-e2e...` without a live run are removed too.
    """
    swept = []
    live_tags = set()
    root = runs_root()
    if root.exists():
        for run_dir in sorted(root.iterdir()):
            tag = run_dir.name
            record = read_record(run_dir)
            owner = record.get("owner_pid")
            open_elsewhere = owner is not None and owner != os.getpid() and _alive(owner)
            if open_elsewhere or tag in OPEN_TAGS or record.get("keep"):
                live_tags.add(tag)
                continue
            sweep_run(tag, run_dir)
            swept.append(tag)

    def owned_by_live_run(name: str) -> bool:
        return any(name.startswith(f"{PREFIX}{tag}-") for tag in live_tags)

    for netns in list_netns():
        if netns.startswith(PREFIX) and not owned_by_live_run(netns):
            run(["ip", "netns", "del", netns], check=False)
            swept.append(netns)
    for link in list_links():
        if link.startswith(PREFIX) and not owned_by_live_run(link):
            run(["ip", "link", "del", link], check=False)
            swept.append(link)
    return swept
