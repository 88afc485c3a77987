"""Apache Pegasus's Python client (PyPI `pypegasus3`), installed once into a directory.

Application machines of the local cloud have no network beyond their bridge, and
the client's pins (thrift 0.13, cryptography 3.2, Twisted 21.2) clash with this
project's own virtualenv: so the client is installed with pip from PyPI, exactly
as tests/e2e/appclient/requirements.txt pins it, into a directory of its own
(`pip install --target`, by this host's Python 3.11, the same minor version as
Debian 12's on the machines), cached under the e2e cache like the root file
system and keyed by the requirements' hash. A program runs it with
PYTHONPATH=<that directory>: the test suite on loopback, an application machine
from its copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.localcloud.rootfs import cache_root

APP_CLIENT = Path(__file__).resolve().parent.parent / "e2e" / "appclient"
REQUIREMENTS = APP_CLIENT / "requirements.txt"
LOAD_DRIVER = APP_CLIENT / "availability_load.py"
RAW_WRITES = APP_CLIENT / "raw_writes.py"  # 2.6: puts with the wire module alone
WIRE = Path(__file__).resolve().parent.parent / "e2e" / "standin" / "rdsn_thrift.py"


def client_env() -> Path:
    """The directory holding pypegasus3 and its pinned dependencies (built when missing)."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + sys.version.split()[0].rsplit(".", 1)[0].encode())
    target = cache_root() / f"pypegasus3-{digest.hexdigest()[:16]}"
    if (target / "pypegasus" / "pgclient.py").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-pypegasus3-", dir=target.parent))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--no-compile", "--target", str(building / "env"), "-r", str(REQUIREMENTS)],
            capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"pip could not install {REQUIREMENTS.name} (exit {result.returncode}); "
                               f"check access to PyPI:\n{(result.stdout + result.stderr)[-3000:]}")
        try:
            os.rename(building / "env", target)
        except OSError:
            if not (target / "pypegasus" / "pgclient.py").is_file():
                raise
        return target
    finally:
        shutil.rmtree(building, ignore_errors=True)


def install_on(root: Path, destination: str = "/opt/pegasus-app") -> str:
    """Copies the client, the load driver and the wire module into a machine's root file
    system (`root`: its tree seen from this host); returns the command prefix that runs
    Python with them there."""
    where = root / destination.lstrip("/")
    env = client_env()
    marker = where / "lib" / ".installed-from"
    if not marker.is_file() or marker.read_text() != env.name:
        shutil.rmtree(where / "lib", ignore_errors=True)
        shutil.copytree(env, where / "lib")
        marker.write_text(env.name)
    shutil.copy2(LOAD_DRIVER, where / LOAD_DRIVER.name)
    shutil.copy2(WIRE, where / WIRE.name)
    shutil.copy2(RAW_WRITES, where / RAW_WRITES.name)
    return f"PYTHONPATH={destination}/lib:{destination} python3 {destination}/{LOAD_DRIVER.name}"
