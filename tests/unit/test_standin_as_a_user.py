"""The stand-in server run as a user without access to its directories fails as the real
one does (fs_manager.cpp, replica_stub.cpp, configuration.cpp at v2.5.0): the dedicated
server user must own what it writes, or the e2e suite would pass where a real cluster
would not come up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

STANDIN = Path(__file__).resolve().parents[1] / "e2e" / "standin" / "pegasus_server.py"
NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs the stand-in as the user nobody: needs root")

# Calls prepare_replica_dirs on a config.ini, as the stand-in's main does for a ReplicaServer;
# prints {"dirs": [...]} or {"refused": "..."}, and the log's errors on stderr.
PREPARE = """
import importlib.util, json, logging, sys
spec = importlib.util.spec_from_file_location("standin", sys.argv[1])
standin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(standin)
logging.basicConfig(stream=sys.stderr, level=logging.ERROR, format="%(message)s")
try:
    print(json.dumps({"dirs": standin.prepare_replica_dirs(standin.Config(sys.argv[2]))}))
except standin.Refusal as refusal:
    print(json.dumps({"refused": str(refusal)}))
"""


@pytest.fixture
def world():
    """A directory `nobody` can reach (pytest's own tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="standin-user-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def prepare_as_nobody(world: Path, data_dirs: list[Path], slog: Path) -> tuple[dict, str]:
    config = world / "config.ini"
    config.write_text("[replication]\ndata_dirs = " + ",".join(f"ssd{i}:{d}" for i, d in enumerate(data_dirs, 1))
                      + f"\nslog_dir = {slog}\n")
    config.chmod(0o644)
    return prepare_as_nobody_with(world, config)


def owned(path: Path, uid: int) -> Path:
    path.mkdir(parents=True)
    os.chown(path, uid, uid)
    path.chmod(0o755)
    return path


def test_data_dirs_the_user_cannot_write_are_broken_and_none_usable_refuses(world):
    roots = [owned(world / f"ssd{i}" / "pegasus" / "c", 0) for i in (1, 2)]
    answer, errors = prepare_as_nobody(world, roots, owned(world / "slog", NOBODY))
    assert "no data dir" in answer["refused"]
    for root in roots:  # fs_manager.cpp:223: "data dir({}) is broken, ignore it, error: {}"
        assert f"data dir({root}) is broken, ignore it, error: Fail to create test file {root}/read_write_test_file." \
            in errors


def test_a_broken_data_dir_is_left_out_and_the_others_serve(world):
    theirs = owned(world / "ssd1" / "pegasus" / "c", 0)
    mine = owned(world / "ssd2" / "pegasus" / "c", NOBODY)
    answer, errors = prepare_as_nobody(world, [theirs, mine], owned(world / "slog", NOBODY))
    assert answer == {"dirs": [str(mine)]} and f"data dir({theirs}) is broken" in errors
    assert not (mine / "read_write_test_file").exists()  # the test file is removed


def test_a_shared_log_the_user_cannot_write_stops_the_server(world):
    mine = owned(world / "ssd1" / "pegasus" / "c", NOBODY)
    answer, _ = prepare_as_nobody(world, [mine], owned(world / "slog", 0))
    assert "replay shared log failed" in answer["refused"]


def test_a_config_the_user_cannot_read_stops_the_server(world):
    config = world / "config.ini"
    config.write_text("[replication]\ndata_dirs = ssd1:/x\n")
    config.chmod(0o640)  # root's: the server user may not read it (configuration.cpp load: fopen fails)
    answer, _ = prepare_as_nobody_with(world, config)
    assert f"read file '{config}' failed" in answer["refused"]


def prepare_as_nobody_with(world: Path, config: Path) -> tuple[dict, str]:
    done = subprocess.run(["/usr/bin/python3", "-c", PREPARE, str(STANDIN), str(config)], user=NOBODY,
                          group=NOBODY, extra_groups=[], capture_output=True, text=True, timeout=60, cwd=world)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr
