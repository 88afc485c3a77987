"""A few machines on this host, listed as "your own servers" of a stack.

`boot_servers` boots the machines of a small cluster on a local cloud (one
ZooKeeper, two MetaServers, three ReplicaServers with two sparse-file disks
each at stable /dev/disk/by-id paths) and returns the stack's `servers` list
for them. The end-to-end suite deploys on exactly that; `create` (the
`python -m tools.localcloud create` command) does it on a cloud the user keeps
and writes stacks/Pulumi.local.yaml; `destroy` removes those machines again,
with every loop device, network namespace, link and file they had.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .cloud import LocalCloud
from .leftovers import _nspawn_pids_for, read_record, runs_root, sweep_run
from .machines import Machine
from .rootfs import LOGIN_USER

PROJECT_DIR = Path(__file__).resolve().parents[2]
STACK = "local"
STACK_FILE = PROJECT_DIR / "stacks" / f"Pulumi.{STACK}.yaml"
HEADER = "# Written by `make local-machines` (python -m tools.localcloud create): machines on this host.\n"
PACK_SERVER_HINT = (
    "build one in a Pegasus checkout (https://github.com/apache/incubator-pegasus): ./run.sh build, then "
    "./run.sh pack_server, which writes pegasus-server-<version>-<sha>-<platform>-release.tar.gz; put it "
    "under packages/ or pass --package PATH")


@dataclass(frozen=True)
class Shape:
    zookeeper: int = 1
    meta: int = 2
    replica: int = 3
    data_disks: int = 2
    disk_gib: int = 10  # sparse: takes room only as data is written


def disk_name(machine: str, tag: str, index: int) -> str:
    """A stable /dev/disk/by-id name, as a virtio disk's serial gives one."""
    return f"virtio-pg{tag}-{machine}-data{index + 1}"


def boot_servers(cloud: LocalCloud, shape: Shape, authorized_keys: list[str], *,
                 first: dict[str, int] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Boot the machines (in parallel) and return `servers` as a stack lists them.
    `first`: index of the first machine per role (to add ReplicaServers later)."""
    first = first or {}
    names = [(role, f"{role}-{i}") for role, count in (("zookeeper", shape.zookeeper), ("meta", shape.meta),
                                                        ("replica", shape.replica))
             for i in range(first.get(role, 0), first.get(role, 0) + count)]
    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        machines = list(pool.map(lambda n: cloud.boot_machine(n[1].replace("zookeeper", "zk"), authorized_keys),
                                 names))
    servers: dict[str, list[dict[str, Any]]] = {"zookeeper": [], "meta": [], "replica": []}
    for (role, _), machine in zip(names, machines):
        entry: dict[str, Any] = {"host": machine.ip, "nic": machine.mac if role == "replica" else "eth0",
                 "hostKey": host_key(machine)}
        if role == "replica":
            entry["dataDisks"] = attach_disks(cloud, machine, shape)
        servers[role].append(entry)
    return {role: entries for role, entries in servers.items() if entries}


def host_key(machine: Machine) -> str:
    """The machine's SSH host key, read off its disk (the out-of-band way an operator reads
    /etc/ssh/ssh_host_ed25519_key.pub on a server's console): the stack's `hostKey`."""
    return " ".join((machine.root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2])


def attach_disks(cloud: LocalCloud, machine: Machine, shape: Shape) -> list[str]:
    paths = []
    for index in range(shape.data_disks):
        volume = cloud.create_volume(f"{machine.name}-data{index + 1}", shape.disk_gib,
                                     by_id_name=disk_name(machine.name, cloud.tag, index))
        paths.append(cloud.attach_volume(machine, volume.volume_id))
    return paths


# -- the user's command ----------------------------------------------------------

def kept_runs() -> list[Path]:
    root = runs_root()
    return [d for d in sorted(root.iterdir()) if read_record(d).get("keep")] if root.exists() else []


def find_package(given: str | None) -> Path:
    """The user's pack_server tarball: --package, else the newest under packages/."""
    from components.spec.server_package import PackageError, inspect_package

    if given:
        path = Path(given).resolve()
    else:
        found = sorted((PROJECT_DIR / "packages").glob("pegasus-server-*.tar.gz"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise SystemExit(f"localcloud: no server package under {PROJECT_DIR / 'packages'}: {PACK_SERVER_HINT}")
        path = found[-1]
    try:
        inspect_package(path)
    except PackageError as error:
        raise SystemExit(f"localcloud: {error}; {PACK_SERVER_HINT}") from None
    return path


def key_pair(key_dir: Path) -> str:
    """The stack's key pair, ~/.ssh/pegasus_local of the user who ran sudo (made once);
    `make up STACK=local` sets it on the stack. Returns the public key line."""
    from .sshkeys import generate_key_pair

    key = key_dir / f"pegasus_{STACK}"
    if not key.exists():
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=key_dir) as scratch:  # never over the user's own id_ed25519
            pair = generate_key_pair(Path(scratch), comment=f"pegasus-{STACK}")
            pair.private_key_path.rename(key)
        Path(f"{key}.pub").write_text(pair.public_key + "\n")
        if os.environ.get("SUDO_UID"):  # the user's own key, not root's
            for path in (key, Path(f"{key}.pub")):
                os.chown(path, int(os.environ["SUDO_UID"]), int(os.environ["SUDO_GID"]))
    return Path(f"{key}.pub").read_text().strip()


def user_key_dir() -> Path:
    if os.environ.get("PEGASUS_KEY_DIR"):
        return Path(os.environ["PEGASUS_KEY_DIR"])
    user = os.environ.get("SUDO_USER")
    return Path(os.path.expanduser(f"~{user}" if user else "~")) / ".ssh"


def stack_text(servers: dict, package: Path, existing: str | None) -> str:
    """stacks/Pulumi.local.yaml: these machines as your own servers. What `make up` set
    since (the encryption salt, the key pair) is kept from the existing file."""
    old = yaml.safe_load(existing) if existing else {}
    package_value = os.path.relpath(package, PROJECT_DIR) if package.is_relative_to(PROJECT_DIR) else str(package)
    config: dict[str, Any] = {
        "pegasus:clusterName": STACK,
        "pegasus:package": package_value,
        "pegasus:ssh": (old.get("config") or {}).get("pegasus:ssh") or {"user": LOGIN_USER},
        "pegasus:zookeeper": {"allowSingleNode": True},
        "pegasus:servers": servers,
        # The machines reach no package archive (their image holds what the product installs),
        # so not Grafana's either.
        "pegasus:monitoring": {"grafana": {"enabled": False}},
    }
    document = {k: v for k, v in (old or {}).items() if k != "config"}
    document["config"] = config
    return (HEADER + "# The SSH key pair is ~/.ssh/pegasus_local: `make up STACK=local` sets it on the stack.\n"
            "# ReplicaServers name their NIC by MAC address, the others by name (either works).\n"
            + yaml.safe_dump(document, sort_keys=False, default_flow_style=False))


def create(package_arg: str | None, shape: Shape, stack_file: Path = STACK_FILE, log=print) -> None:
    kept = kept_runs()
    if kept:
        raise SystemExit(f"localcloud: local machines exist already ({kept[0]}): remove them first with "
                         "make local-machines-destroy (after make destroy STACK=local)")
    existing = stack_file.read_text() if stack_file.exists() else None
    if existing is not None and not existing.startswith(HEADER):
        raise SystemExit(f"localcloud: {stack_file} was not written by this command: move it away first")
    package = find_package(package_arg)
    public_key = key_pair(user_key_dir())
    started = time.monotonic()
    cloud = LocalCloud(keep=True, with_aws=False, log=log)
    try:
        servers = boot_servers(cloud, shape, [public_key])
    except BaseException:
        cloud.close()
        raise
    stack_file.write_text(stack_text(servers, package, existing))
    if os.environ.get("SUDO_UID"):
        os.chown(stack_file, int(os.environ["SUDO_UID"]), int(os.environ["SUDO_GID"]))
    log(f"localcloud: {len(cloud.machines)} machines up in {time.monotonic() - started:.0f}s on bridge "
        f"{cloud.network.bridge} ({cloud.network.subnet}), listed in {stack_file}:")
    for machine in sorted(cloud.machines.values(), key=lambda m: m.name):
        log(f"  {machine.name:10} ssh -i {user_key_dir()}/pegasus_{STACK} {LOGIN_USER}@{machine.ip}")
    log("Next: make up STACK=local (deploys your package on them); make destroy STACK=local removes the "
        "cluster, make local-machines-destroy the machines.")


def destroy(log=print) -> None:
    """Power the kept machines off, then remove every trace of them."""
    kept = kept_runs()
    if not kept:
        log("localcloud: no local machines to remove")
    for run_dir in kept:
        tag = read_record(run_dir).get("tag") or run_dir.name
        pids = _nspawn_pids_for(run_dir)
        for pid in pids:  # nspawn turns SIGTERM into an orderly poweroff
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while _nspawn_pids_for(run_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
        sweep_run(tag, run_dir)
        log(f"localcloud: removed the local machines of run {tag} (machines, disks, loop devices, network)")
    if kept and STACK_FILE.exists():
        log(f"localcloud: {STACK_FILE.relative_to(PROJECT_DIR)} still lists them; remove it (and `pulumi stack rm "
            f"{STACK}`) once the stack is destroyed")
