"""Issue 19, on the servers: a host and its data directories carry the stack and cluster
that own them, Pegasus runs as a dedicated user, and destroy removes only what is marked
as this stack's. The scripts run for real here (as root, in a temporary tree) against a
stand-in systemctl; the server user is `nobody`, which every Debian system has."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from components.render import templates
from components.render.host_layout import CREATED_MARKER
from tests.unit.script_runner import FakeSystemd, run_script

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the scripts chown files to the server user: needs root")

STACK, CLUSTER = "acme/pegasus/prod", "c"
OURS = f"stack={STACK}\ncluster={CLUSTER}\n"
THEIRS = "stack=acme/pegasus/other\ncluster=c2\n"
USER = "nobody"
UNIT, LEGACY = f"pegasus-{CLUSTER}-replica.service", "pegasus-replica.service"


def owner(path: Path) -> str:
    return path.owner()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- prepare_host / remove_app_dir


def host_context(tmp_path: Path, **overrides) -> dict:
    app = tmp_path / "home" / "work" / "app"
    return {
        "home_dir": str(tmp_path / "home" / "work"), "app_dir": str(app), "marker": CREATED_MARKER,
        "required_commands": ["bash", "tar"], "app_subdirs": [str(app / "packages"), str(app / "staged")],
        "upload_dirs": [str(app / "packages")], "upload_owner": "root", "private_dirs": [str(app / "staged")],
        "owner_file": str(tmp_path / "var" / "owner"), "owner_text": OURS, "cluster_name": CLUSTER,
        "legacy_units": [str(tmp_path / "systemd" / f"pegasus-{r}.service") for r in ("meta", "replica")],
        "server_user": USER, "created_user_file": str(tmp_path / "var" / "created-user"),
        **overrides,
    }


def prepare(tmp_path: Path, fake_bin: Path | None = None, **overrides):
    context = host_context(tmp_path, **overrides)
    return run_script(templates.render("prepare_host.sh", **context), tmp_path, fake_bin=fake_bin), context


def test_a_host_is_claimed_for_the_stack_and_cluster_once(tmp_path):
    result, context = prepare(tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(context["owner_file"]).read_text() == OURS
    assert (Path(context["app_dir"]) / CREATED_MARKER).read_text() == OURS
    again, _ = prepare(tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"belongs to stack {STACK}, cluster {CLUSTER} (this one)" in again.stdout


def test_a_host_another_stack_owns_is_refused_with_both_names_and_nothing_changes(tmp_path):
    owner_file = tmp_path / "var" / "owner"
    owner_file.parent.mkdir(parents=True)
    owner_file.write_text(THEIRS)
    result, context = prepare(tmp_path)
    assert result.returncode == 1
    message = result.stderr
    assert "stack acme/pegasus/other, cluster c2" in message and f"stack {STACK}, cluster {CLUSTER}" in message
    assert str(owner_file) in message and "another server" in message
    assert owner_file.read_text() == THEIRS
    assert not Path(context["app_dir"]).exists() and not Path(context["home_dir"]).exists()


def test_the_same_stack_with_another_cluster_is_refused_too(tmp_path):
    owner_file = tmp_path / "var" / "owner"
    owner_file.parent.mkdir(parents=True)
    owner_file.write_text(f"stack={STACK}\ncluster=other\n")
    result, _ = prepare(tmp_path)
    assert result.returncode == 1 and f"stack {STACK}, cluster other" in result.stderr


def legacy_unit(tmp_path: Path, role: str, cluster: str) -> Path:
    unit = tmp_path / "systemd" / f"pegasus-{role}.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(f"[Unit]\nDescription=Apache Pegasus {role} server of cluster {cluster}\n")
    return unit


def test_a_host_running_another_clusters_server_from_before_the_marks_is_refused(tmp_path):
    # Deployed by a version of this program that wrote no owner file.
    unit = legacy_unit(tmp_path, "replica", "c2")
    result, context = prepare(tmp_path)
    assert result.returncode == 1
    assert "cluster c2" in result.stderr and str(unit) in result.stderr and f"cluster {CLUSTER}" in result.stderr
    assert not Path(context["owner_file"]).exists()


def test_this_clusters_own_server_from_before_the_marks_is_adopted(tmp_path):
    legacy_unit(tmp_path, "replica", CLUSTER)
    app = tmp_path / "home" / "work" / "app"
    app.mkdir(parents=True)
    (app / CREATED_MARKER).touch()  # an older version's empty marker
    result, context = prepare(tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(context["owner_file"]).read_text() == OURS
    assert (app / CREATED_MARKER).read_text() == OURS


def test_the_staged_files_are_roots_alone(tmp_path):
    staged = tmp_path / "home" / "work" / "app" / "staged"
    staged.mkdir(parents=True)
    os.chown(staged, 65534, 65534)  # an upload dir of the SSH user before
    (staged / "replica.config.ini").write_text("[pegasus.server]\nsecret = x\n")
    os.chmod(staged / "replica.config.ini", 0o644)
    result, _ = prepare(tmp_path)
    assert result.returncode == 0, result.stderr
    assert owner(staged) == "root" and mode(staged) == 0o700
    assert mode(staged / "replica.config.ini") == 0o600


def fake_useradd(tmp_path: Path) -> Path:
    """useradd and userdel that record their arguments; id knows the users useradd made."""
    fake = tmp_path / "fake-users"
    fake.mkdir(exist_ok=True)
    made = fake / "made"
    for name, body in {
        "useradd": f'printf "%s\\n" "$*" >>{fake}/useradd.log; printf "%s\\n" "${{!#}}" >>{made}',
        "userdel": f'printf "%s\\n" "$*" >>{fake}/userdel.log',
        "id": f'user=${{!#}}; if grep -qx -- "$user" {made} 2>/dev/null; then '
              'case $1 in -u) echo 990 ;; -g) echo 990 ;; -gn) echo "$user" ;; *) echo "uid=990($user)" ;; esac; '
              'exit 0; fi; exec /usr/bin/id "$@"',
    }.items():
        (fake / name).write_text(f"#!/bin/bash\n{body}\n")
        (fake / name).chmod(0o755)
    return fake


def test_a_missing_server_user_is_created_as_a_system_account_and_remembered(tmp_path):
    fake = fake_useradd(tmp_path)
    result, context = prepare(tmp_path, fake_bin=fake, server_user="pegasus")
    assert result.returncode == 0, result.stderr
    args = (fake / "useradd.log").read_text().split()
    assert "--system" in args and args[-1] == "pegasus"
    assert args[args.index("--shell") + 1].endswith("nologin")
    assert Path(context["created_user_file"]).read_text().strip() == "pegasus"
    again, _ = prepare(tmp_path, fake_bin=fake, server_user="pegasus")
    assert again.returncode == 0 and len((fake / "useradd.log").read_text().splitlines()) == 1


def test_an_existing_server_user_is_used_and_never_removed(tmp_path):
    fake = fake_useradd(tmp_path)
    result, context = prepare(tmp_path, fake_bin=fake)  # nobody exists
    assert result.returncode == 0, result.stderr
    assert not (fake / "useradd.log").exists() and not Path(context["created_user_file"]).exists()
    removed = run_script(templates.render("remove_app_dir.sh", **remove_context(context)), tmp_path, fake_bin=fake)
    assert removed.returncode == 0, removed.stderr
    assert not (fake / "userdel.log").exists()


def remove_context(context: dict, **overrides) -> dict:
    keys = ("app_dir", "marker", "owner_file", "owner_text", "server_user", "created_user_file")
    return {**{k: context[k] for k in keys}, "retain_data": False, **overrides}


def test_destroy_releases_the_host_and_removes_the_user_it_made(tmp_path):
    fake = fake_useradd(tmp_path)
    _, context = prepare(tmp_path, fake_bin=fake, server_user="pegasus")
    removed = run_script(templates.render("remove_app_dir.sh", **remove_context(context)), tmp_path, fake_bin=fake)
    assert removed.returncode == 0, removed.stderr
    assert not Path(context["app_dir"]).exists() and not Path(context["owner_file"]).exists()
    assert (fake / "userdel.log").read_text().split() == ["pegasus"]


def test_destroy_with_retained_data_keeps_the_claim_and_the_user(tmp_path):
    fake = fake_useradd(tmp_path)
    _, context = prepare(tmp_path, fake_bin=fake, server_user="pegasus")
    kept = run_script(templates.render("remove_app_dir.sh", **remove_context(context, retain_data=True)), tmp_path,
                      fake_bin=fake)
    assert kept.returncode == 0, kept.stderr
    assert Path(context["owner_file"]).read_text() == OURS and Path(context["app_dir"]).is_dir()
    assert not (fake / "userdel.log").exists()


def test_destroy_on_a_host_another_stack_owns_touches_nothing(tmp_path):
    _, context = prepare(tmp_path)
    Path(context["owner_file"]).write_text(THEIRS)  # claimed since (by hand)
    removed = run_script(templates.render("remove_app_dir.sh", **remove_context(context)), tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert Path(context["app_dir"]).is_dir() and Path(context["owner_file"]).read_text() == THEIRS
    assert "stack acme/pegasus/other, cluster c2" in removed.stdout


# ---------------------------------------------------------------- a role's directories and unit


def install_release(tmp_path: Path) -> None:
    release = tmp_path / "app" / "releases" / "r1"
    (release / "bin").mkdir(parents=True, exist_ok=True)
    server = release / "bin" / "pegasus_server"
    server.write_text("#!/bin/sh\nexit 0\n")
    server.chmod(0o755)
    current = tmp_path / "app" / "current"
    if not current.is_symlink():
        current.symlink_to(release)


def role_context(tmp_path: Path, replica_port: int, metas: list[str], **extra) -> dict:
    role_dir = tmp_path / "app" / "replica"
    role_dir.mkdir(parents=True, exist_ok=True)
    staged = tmp_path / "app" / "staged"
    staged.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "ssd1" / "pegasus" / CLUSTER
    (staged / "replica.config.ini").write_text(
        f"[core]\ndata_dir = {role_dir}\n[replication]\ndata_dirs = ssd1:{data}\nsecret = s3cr3t\n")
    install_release(tmp_path)
    unit_text = templates.render("pegasus.service", role="replica", cluster_name=CLUSTER,
                                 bin_dir=str(role_dir / "release" / "bin"), role_dir=str(role_dir),
                                 config_path=str(role_dir / "config.ini"), mounts=[], user=USER,
                                 write_dirs=[str(role_dir), str(data)])
    return {
        "role": "replica", "unit_name": UNIT, "unit_text": unit_text, "unit_path": str(tmp_path / UNIT),
        "legacy_unit_name": LEGACY, "legacy_unit_path": str(tmp_path / LEGACY),
        "role_dir": str(role_dir), "dirs": [str(role_dir), str(role_dir / "log"), str(data)],
        "staged_config": str(staged / "replica.config.ini"), "config_path": str(role_dir / "config.ini"),
        "release_link": str(role_dir / "release"), "current_link": str(tmp_path / "app" / "current"),
        "address": "127.0.0.1", "port": replica_port, "meta_addresses": metas, "wait_seconds": 10,
        "log_dir": str(role_dir / "log"), "needs_reverse_name": False,
        "server_user": USER, "marker": CREATED_MARKER, "owner_text": OURS, **extra,
    }


def started(tmp_path, systemd, meta, replica_port, **extra):
    meta.nodes = {f"127.0.0.1:{replica_port.port}": "ALIVE"}
    context = role_context(tmp_path, replica_port.port, [meta.address], **extra)
    return run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin), context


def test_a_first_start_makes_each_directory_the_servers_and_marks_it_this_stacks(tmp_path, systemd, meta,
                                                                                  replica_port):
    result, context = started(tmp_path, systemd, meta, replica_port)
    assert result.returncode == 0, result.stdout + result.stderr
    for directory in map(Path, context["dirs"]):
        assert owner(directory) == USER and mode(directory) == 0o750, directory
        assert (directory / CREATED_MARKER).read_text() == OURS, directory
    config = Path(context["config_path"])
    assert owner(config) == USER and mode(config) == 0o640  # holds secret overrides: not for others
    assert systemd.is_active(UNIT)


def test_a_directory_another_stack_marked_is_refused_before_anything_starts(tmp_path, systemd, meta, replica_port):
    data = tmp_path / "ssd1" / "pegasus" / CLUSTER
    data.mkdir(parents=True)
    (data / CREATED_MARKER).write_text(THEIRS)
    result, _ = started(tmp_path, systemd, meta, replica_port)
    assert result.returncode == 1
    assert str(data) in result.stderr and "stack acme/pegasus/other, cluster c2" in result.stderr
    assert not systemd.is_active(UNIT) and (data / CREATED_MARKER).read_text() == THEIRS


def test_an_unmarked_directory_holding_data_is_refused_and_an_empty_one_taken(tmp_path, systemd, meta, replica_port):
    data = tmp_path / "ssd1" / "pegasus" / CLUSTER
    (data / "replica").mkdir(parents=True)
    (data / "replica" / "old.sst").write_text("someone's data")
    result, _ = started(tmp_path, systemd, meta, replica_port)
    assert result.returncode == 1 and str(data) in result.stderr and "no mark" in result.stderr
    assert owner(data / "replica" / "old.sst") == "root" and not systemd.is_active(UNIT)
    (data / "replica" / "old.sst").unlink()
    (data / "replica").rmdir()
    result, _ = started(tmp_path, systemd, meta, replica_port)
    assert result.returncode == 0, result.stderr
    assert (data / CREATED_MARKER).read_text() == OURS and owner(data) == USER


def legacy_server(tmp_path: Path, systemd: FakeSystemd, context: dict) -> Path:
    """What an older version of this program left: the unit without the cluster's name, run as
    root, its directories root's and unmarked, config.ini world-readable."""
    Path(context["legacy_unit_path"]).write_text("[Service]\nExecStart=/old\n")
    systemd.set_active(LEGACY)
    for directory in context["dirs"]:
        Path(directory).mkdir(parents=True, exist_ok=True)
    config = Path(context["config_path"])
    config.write_text(Path(context["staged_config"]).read_text())
    config.chmod(0o644)
    Path(context["release_link"]).symlink_to(tmp_path / "app" / "releases" / "r1")
    data_file = Path(context["dirs"][2]) / "replica" / "1.0" / "data.sst"
    data_file.parent.mkdir(parents=True)
    data_file.write_text("the cluster's data")
    return data_file


def test_a_rerun_of_the_first_start_leaves_an_older_versions_server_to_its_roll(tmp_path, systemd, meta,
                                                                                replica_port):
    meta.nodes = {f"127.0.0.1:{replica_port.port}": "ALIVE"}
    context = role_context(tmp_path, replica_port.port, [meta.address])
    data_file = legacy_server(tmp_path, systemd, context)
    result = run_script(templates.render("start_role.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 0, result.stderr
    assert systemd.is_active(LEGACY) and not systemd.is_active(UNIT)
    assert not any(c.startswith(("start", "restart", "stop", "disable")) for c in systemd.calls()), systemd.calls()
    assert owner(data_file) == "root" and "its roll moves it" in result.stdout


def roll(tmp_path, systemd, context, phase="roll"):
    values = {**context, "check_seconds": context["wait_seconds"]}
    script = f"set -- {phase}\n" + templates.render("restart_role.sh", **values)
    return run_script(script, tmp_path, fake_bin=systemd.bin)


def test_the_roll_moves_an_older_versions_server_to_its_unit_and_user_with_its_data(tmp_path, systemd, meta,
                                                                                    replica_port):
    meta.nodes = {f"127.0.0.1:{replica_port.port}": "ALIVE"}
    context = role_context(tmp_path, replica_port.port, [meta.address])
    data_file = legacy_server(tmp_path, systemd, context)
    probe = roll(tmp_path, systemd, context, "probe")
    assert probe.returncode == 3, probe.stdout + probe.stderr
    result = roll(tmp_path, systemd, context)
    assert result.returncode == 0, result.stdout + result.stderr
    assert systemd.is_active(UNIT) and not systemd.is_active(LEGACY) and not systemd.is_enabled(LEGACY)
    assert not Path(context["legacy_unit_path"]).exists() and Path(context["unit_path"]).exists()
    # Stopped before its files changed hands, then started as the server user.
    calls = systemd.calls()
    assert calls.index(f"disable --now --quiet -- {LEGACY}") < calls.index(f"restart -- {UNIT}")
    assert data_file.read_text() == "the cluster's data" and owner(data_file) == USER
    for directory in map(Path, context["dirs"]):
        assert owner(directory) == USER and (directory / CREATED_MARKER).read_text() == OURS, directory
    assert mode(Path(context["config_path"])) == 0o640
    assert roll(tmp_path, systemd, context, "probe").returncode == 0  # nothing more to do


def test_a_move_that_does_not_come_up_healthy_goes_back_to_the_older_unit(tmp_path, systemd, meta, replica_port):
    me = f"127.0.0.1:{replica_port.port}"
    meta.nodes = {me: "ALIVE"}
    context = role_context(tmp_path, replica_port.port, [meta.address], wait_seconds=3)
    legacy_server(tmp_path, systemd, context)
    meta.degrade_after_restart(systemd, UNIT, {me: "UNALIVE"})
    result = roll(tmp_path, systemd, context)
    assert result.returncode == 1
    assert systemd.is_active(LEGACY) and systemd.is_enabled(LEGACY) and not systemd.is_active(UNIT)
    assert Path(context["legacy_unit_path"]).read_text() == "[Service]\nExecStart=/old\n"
    assert not Path(context["unit_path"]).exists()


def stop_context(context: dict, **extra) -> dict:
    return {"role": "replica", "unit_name": UNIT, "unit_path": context["unit_path"],
            "legacy_unit_name": LEGACY, "legacy_unit_path": context["legacy_unit_path"],
            "remove_dirs": context["dirs"], "retain_data": False, "marker": CREATED_MARKER,
            "owner_text": OURS, "server_user": USER, **extra}


def test_destroy_removes_only_the_directories_marked_as_this_stacks_and_reports_the_rest(tmp_path, systemd, meta,
                                                                                         replica_port):
    _, context = started(tmp_path, systemd, meta, replica_port)
    role_dir, log_dir, data = map(Path, context["dirs"])
    (data / CREATED_MARKER).write_text(THEIRS)  # taken over since, by hand
    unmarked = tmp_path / "ssd2" / "pegasus" / CLUSTER
    unmarked.mkdir(parents=True)
    (unmarked / "their-file").write_text("x")
    stop = stop_context(context, remove_dirs=[str(role_dir), str(data), str(unmarked)])
    result = run_script(templates.render("stop_role.sh", **stop), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 0, result.stderr
    assert not role_dir.exists()
    assert (data / CREATED_MARKER).read_text() == THEIRS and (unmarked / "their-file").exists()
    assert f"kept {data}: it is marked as stack acme/pegasus/other, cluster c2's" in result.stdout
    assert f"kept {unmarked}: it carries no mark of this stack" in result.stdout
    assert not systemd.is_active(UNIT) and not Path(context["unit_path"]).exists()


def test_destroy_stops_and_removes_an_older_versions_unit_too(tmp_path, systemd, meta, replica_port):
    meta.nodes = {f"127.0.0.1:{replica_port.port}": "ALIVE"}
    context = role_context(tmp_path, replica_port.port, [meta.address])
    legacy_server(tmp_path, systemd, context)
    result = run_script(templates.render("stop_role.sh", **stop_context(context)), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 0, result.stderr
    assert not systemd.is_active(LEGACY) and not Path(context["legacy_unit_path"]).exists()
    # Its directories carry no mark (an older version made them): reported and left.
    assert Path(context["dirs"][2]).is_dir() and "carries no mark of this stack" in result.stdout


def test_staged_files_are_written_for_root_alone(tmp_path):
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "replica.config.ini").write_text("[core]\nx = 1\n")
    os.chmod(staged / "replica.config.ini", 0o644)
    context = {"staged_config": str(staged / "replica.config.ini"), "config": "[core]\nx = 1\n",
               "restart_script_path": str(staged / "replica.restart.sh"), "restart_script": "#!/bin/bash\n"}
    result = run_script(templates.render("stage_config.sh", **context), tmp_path)
    assert result.returncode == 0, result.stderr
    assert mode(staged / "replica.config.ini") == 0o600 and mode(staged / "replica.restart.sh") == 0o600
