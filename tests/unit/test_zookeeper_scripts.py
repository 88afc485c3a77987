"""ZooKeeper templates: zoo.cfg, install/remove (stand-in systemctl) and the
readiness check against fake four-letter-word servers and a real ZooKeeper."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from components.render import templates

from components.render import host_layout
from tests.unit.host_contexts import zoo_cfg_context
from tests.unit.script_runner import FakeSystemd, FourLetterServer, free_port, run_script

ZK_SERVER = Path("/usr/share/zookeeper/bin/zkServer.sh")


def test_zoo_cfg_lists_every_server_of_an_ensemble():
    text = templates.render("zoo.cfg", **zoo_cfg_context(["10.0.0.1", "10.0.0.2", "10.0.0.3"]))
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("server.")] == [
        "server.1=10.0.0.1:2888:3888", "server.2=10.0.0.2:2888:3888", "server.3=10.0.0.3:2888:3888",
    ]
    for setting in ("tickTime=2000", "initLimit=10", "syncLimit=5", "clientPort=2181",
                    "4lw.commands.whitelist=srvr,ruok,mntr,stat", "admin.enableServer=false",
                    f"dataDir={host_layout.ZOOKEEPER_DATA_DIR}"):
        assert setting in lines
    assert any(line.startswith("autopurge.purgeInterval=") for line in lines)


def test_zoo_cfg_of_a_single_server_is_standalone():
    text = templates.render("zoo.cfg", **zoo_cfg_context(["10.0.0.1"]))
    assert "server." not in text


def test_zookeeper_unit_runs_the_debian_script_as_the_given_user():
    context = {"conf_dir": "/etc/pz", "log_dir": "/var/log/pz", "data_dir": "/var/lib/pz"}
    unit = templates.render("zookeeper.service", user="zookeeper", **context)
    assert "ExecStart=/usr/share/zookeeper/bin/zkServer.sh start-foreground /etc/pz/zoo.cfg\n" in unit
    assert "Environment=ZOO_LOG_DIR=/var/log/pz\n" in unit
    assert "User=zookeeper\n" in unit and "Restart=on-failure\n" in unit
    as_root = templates.render("zookeeper.service", user="", **context)
    assert "User=" not in as_root


# --- install_zookeeper / remove_zookeeper -------------------------------------------


def zk_user() -> str:
    try:
        pwd.getpwnam("zookeeper")
        return "zookeeper"
    except KeyError:
        return ""


def install_context(tmp_path, myid=1, zoo_cfg=None):
    conf, data, log = (tmp_path / "etc-zk", tmp_path / "lib-zk", tmp_path / "log-zk")
    return {
        "zoo_cfg": zoo_cfg or templates.render("zoo.cfg", **dict(zoo_cfg_context(["10.0.0.1"]), data_dir=str(data))),
        "myid": myid,
        "unit_text": templates.render("zookeeper.service", conf_dir=str(conf), log_dir=str(log),
                                       data_dir=str(data), user=zk_user()),
        "conf_dir": str(conf),
        "data_dir": str(data),
        "log_dir": str(log),
        "unit_path": str(tmp_path / host_layout.ZOOKEEPER_UNIT),
        "user": zk_user(),
    }


@pytest.mark.skipif(not ZK_SERVER.exists(), reason=f"{ZK_SERVER} is missing: the test must not install packages")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown the ZooKeeper dirs")
def test_install_zookeeper_writes_files_and_restarts_only_on_change(tmp_path):
    systemd = FakeSystemd(tmp_path)
    unit = host_layout.ZOOKEEPER_UNIT
    context = install_context(tmp_path)
    first = run_script(templates.render("install_zookeeper.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert first.returncode == 0, first.stderr
    assert Path(context["conf_dir"], "zoo.cfg").read_text() == context["zoo_cfg"]
    assert Path(context["data_dir"], "myid").read_text() == "1\n"
    assert Path(context["unit_path"]).read_text() == context["unit_text"]
    assert f"enable --now --quiet -- {unit}" in systemd.calls()
    if context["user"]:
        assert Path(context["data_dir"]).owner() == context["user"]

    systemd.clear_calls()
    same = run_script(templates.render("install_zookeeper.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert same.returncode == 0, same.stderr
    assert not any(c.startswith(("restart", "daemon-reload")) for c in systemd.calls())
    assert "running with the current files" in same.stdout

    systemd.clear_calls()
    changed = install_context(tmp_path, myid=2)
    moved = run_script(templates.render("install_zookeeper.sh", **changed), tmp_path, fake_bin=systemd.bin)
    assert moved.returncode == 0, moved.stderr
    assert Path(context["data_dir"], "myid").read_text() == "2\n"
    assert f"restart -- {unit}" in systemd.calls()


def test_remove_zookeeper_removes_its_unit_and_dirs(tmp_path):
    systemd = FakeSystemd(tmp_path)
    context = {k: v for k, v in install_context(tmp_path).items()
               if k in ("conf_dir", "data_dir", "log_dir", "unit_path")}
    context["unit_name"] = host_layout.ZOOKEEPER_UNIT
    for key in ("conf_dir", "data_dir", "log_dir"):
        Path(context[key]).mkdir()
        Path(context[key], "file").touch()
    Path(context["unit_path"]).write_text("[Unit]\n")
    systemd.set_active(context["unit_name"])
    result = run_script(templates.render("remove_zookeeper.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 0, result.stderr
    assert not systemd.is_active(context["unit_name"])
    assert not any(Path(context[k]).exists() for k in ("conf_dir", "data_dir", "log_dir", "unit_path"))
    assert tmp_path.is_dir()


def test_remove_zookeeper_refuses_a_shallow_dir(tmp_path):
    systemd = FakeSystemd(tmp_path)
    keep = tmp_path / "conf"
    keep.mkdir()
    context = {"unit_name": "z.service", "unit_path": str(tmp_path / "z.service"),
               "conf_dir": str(keep), "data_dir": "/var", "log_dir": str(tmp_path / "log")}
    result = run_script(templates.render("remove_zookeeper.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == 1
    assert "refusing to remove '/var'" in result.stderr
    assert keep.is_dir()


# --- zookeeper_ready ---------------------------------------------------------------


@pytest.fixture
def four_letter_servers():
    started: list[FourLetterServer] = []

    def start(modes: list[str]) -> tuple[list[str], int]:
        port = free_port()
        ips = [f"127.0.0.{i + 1}" for i in range(len(modes))]
        for ip, mode in zip(ips, modes):
            started.append(FourLetterServer(ip, port, mode))
        return ips, port

    yield start
    for server in started:
        server.close()


def ready(tmp_path, servers, port, wait_seconds=1, log_dir=None):
    script = templates.render("zookeeper_ready.sh", servers=servers, client_port=port,
                               wait_seconds=wait_seconds, log_dir=str(log_dir or tmp_path / "no-logs"))
    return run_script(script, tmp_path)


def test_ready_when_exactly_one_server_leads(tmp_path, four_letter_servers):
    servers, port = four_letter_servers(["follower", "leader", "follower"])
    result = ready(tmp_path, servers, port)
    assert result.returncode == 0, result.stderr
    assert "127.0.0.1=follower 127.0.0.2=leader 127.0.0.3=follower" in result.stdout


@pytest.mark.parametrize("modes", [["leader", "leader", "follower"], ["follower", "follower", "follower"]])
def test_not_ready_without_a_single_leader(tmp_path, four_letter_servers, modes):
    servers, port = four_letter_servers(modes)
    log_dir = tmp_path / "zk-log"
    log_dir.mkdir()
    (log_dir / "zookeeper.log").write_text("zk log line\n")
    result = ready(tmp_path, servers, port, log_dir=log_dir)
    assert result.returncode == 1
    assert "Mode: follower" in result.stderr and "zk log line" in result.stderr
    assert "exactly one must lead" in result.stderr


def test_not_ready_when_a_server_does_not_answer(tmp_path, four_letter_servers):
    servers, port = four_letter_servers(["leader", "follower"])
    result = ready(tmp_path, servers + ["127.0.0.3"], port)
    assert result.returncode == 1
    assert f"127.0.0.3:{port} answered srvr with:\n(no answer)" in result.stderr


@pytest.mark.skipif(not ZK_SERVER.exists() or shutil.which("java") is None,
                    reason="needs Debian's zookeeper package (zkServer.sh and java)")
def test_ready_against_a_real_standalone_zookeeper_using_our_zoo_cfg(tmp_path):
    port = free_port()
    data_dir = tmp_path / "zk-data"
    cfg = dict(zoo_cfg_context(["127.0.0.1"]), data_dir=str(data_dir), client_port=port)
    (tmp_path / "zoo.cfg").write_text(templates.render("zoo.cfg", **cfg))
    server = subprocess.Popen(
        [str(ZK_SERVER), "start-foreground", str(tmp_path / "zoo.cfg")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "ZOO_LOG_DIR": str(tmp_path / "zk-log")},
    )
    try:
        result = ready(tmp_path, ["127.0.0.1"], port, wait_seconds=60)
        assert result.returncode == 0, result.stderr
        assert "127.0.0.1=standalone" in result.stdout
        assert (data_dir / "version-2").is_dir()  # it used our dataDir
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
