"""What the repository tracks works on a fresh clone anywhere: nothing that .gitignore
names as machine-local (venv, .tools, the state), and no link that leaves the tree.
A `.tools` link to one machine's checkout once made `make deps` fail on CI's clone."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


def tracked_but_ignored(root: Path) -> list[str]:
    return git(root, "ls-files", "--cached", "--ignored", "--exclude-standard").split()


def links_out_of_the_tree(root: Path) -> list[str]:
    """Tracked symbolic links whose target is absolute or outside `root`, as `link -> target`."""
    out = []
    for line in git(root, "ls-files", "-s").splitlines():
        mode, path = line.split(" ", 1)[0], line.split("\t", 1)[1]
        if mode != "120000":
            continue
        target = os.readlink(root / path)
        inside = Path(os.path.normpath(root / Path(path).parent / target)).is_relative_to(root)
        if os.path.isabs(target) or not inside:
            out.append(f"{path} -> {target}")
    return out


@pytest.fixture
def repository() -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a clone of the repository (this copy has no .git)")
    return ROOT


def test_nothing_tracked_is_ignored(repository):
    assert tracked_but_ignored(repository) == []


def test_no_tracked_link_leaves_the_tree(repository):
    assert links_out_of_the_tree(repository) == []


def test_both_find_what_broke_ci(tmp_path):
    """`.tools` (ignored) committed as a link to one machine's checkout, and a link that climbs out."""
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text(".tools\n")
    (tmp_path / ".tools").symlink_to("/work/main/.tools")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "up").symlink_to("../../elsewhere")
    (tmp_path / "docs" / "readme").symlink_to("../.gitignore")
    git(tmp_path, "add", "-f", ".gitignore", ".tools", "docs")
    assert tracked_but_ignored(tmp_path) == [".tools"]
    assert links_out_of_the_tree(tmp_path) == [".tools -> /work/main/.tools", "docs/up -> ../../elsewhere"]
