"""ZooKeeper templates: zoo.cfg, install/remove (stand-in systemctl) and the
readiness check against fake four-letter-word servers and a real ZooKeeper."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from components.render import host_layout, templates
from tests.unit.host_contexts import zoo_cfg_context, zookeeper_restart_context
from tests.unit.script_runner import FakeSystemd, FourLetterServer, free_port, run_script

ZK_SERVER = Path("/usr/share/zookeeper/bin/zkServer.sh")


def test_zoo_cfg_lists_every_server_of_an_ensemble():
    text = templates.render("zoo.cfg", **zoo_cfg_context(["10.0.0.1", "10.0.0.2", "10.0.0.3"], me=1))
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("server.")] == [
        "server.1=10.0.0.1:2888:3888", "server.2=10.0.0.2:2888:3888", "server.3=10.0.0.3:2888:3888",
    ]
    # The client port listens on the server's own cluster address only (issue 19).
    for setting in ("tickTime=2000", "initLimit=10", "syncLimit=5", "clientPort=2181", "clientPortAddress=10.0.0.2",
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


def install_context(tmp_path, ips=("10.0.0.1",)):
    """install_zookeeper's context for the first server of `ips`, its files under tmp_path."""
    paths = {"conf_dir": str(tmp_path / "etc-zk"), "data_dir": str(tmp_path / "lib-zk"),
             "log_dir": str(tmp_path / "log-zk"), "unit_path": str(tmp_path / host_layout.ZOOKEEPER_UNIT)}
    restart = dict(zookeeper_restart_context(list(ips), 0, **paths), user=zk_user())
    return {"restart_script": templates.render("zookeeper_restart.sh", **restart),
            "restart_script_path": str(tmp_path / "staged" / "zookeeper.restart.sh"), "user": zk_user(),
            **paths, "zoo_cfg": restart["zoo_cfg"], "unit_text": restart["unit_text"]}


@pytest.mark.skipif(not ZK_SERVER.exists(), reason=f"{ZK_SERVER} is missing: the test must not install packages")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown the ZooKeeper dirs")
def test_install_zookeeper_starts_a_new_server_and_never_restarts_a_running_one(tmp_path):
    systemd = FakeSystemd(tmp_path)
    unit = host_layout.ZOOKEEPER_UNIT
    context = install_context(tmp_path)
    first = run_script(templates.render("install_zookeeper.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert first.returncode == 0, first.stderr
    assert Path(context["conf_dir"], "zoo.cfg").read_text() == context["zoo_cfg"]
    assert Path(context["data_dir"], "myid").read_text() == "1\n"
    assert Path(context["unit_path"]).read_text() == context["unit_text"]
    assert Path(context["restart_script_path"]).read_text() == context["restart_script"]
    assert f"enable --now --quiet -- {unit}" in systemd.calls()
    if context["user"]:
        assert Path(context["data_dir"]).owner() == context["user"]

    systemd.clear_calls()
    same = run_script(templates.render("install_zookeeper.sh", **context), tmp_path, fake_bin=systemd.bin)
    assert same.returncode == 0, same.stderr
    assert not any(c.startswith(("restart", "daemon-reload", "stop")) for c in systemd.calls())
    assert "runs its newest files" in same.stdout

    # The ensemble's list changed (a server replaced): staged for the roll, nothing restarts.
    systemd.clear_calls()
    moved = install_context(tmp_path, ips=("10.0.0.1", "10.0.0.9", "10.0.0.3"))
    staged = run_script(templates.render("install_zookeeper.sh", **moved), tmp_path, fake_bin=systemd.bin)
    assert staged.returncode == 0, staged.stderr
    assert not any(c.startswith(("restart", "stop")) for c in systemd.calls())
    assert Path(context["conf_dir"], "zoo.cfg").read_text() == context["zoo_cfg"]
    assert Path(moved["restart_script_path"]).read_text() == moved["restart_script"]
    assert "the ZooKeeper roll restarts it" in staged.stdout


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
        # clientPortAddress: another address of the same host is refused.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", port), timeout=5).close()
        assert (data_dir / "version-2").is_dir()  # it used our dataDir
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# --- zookeeper_restart: one server of the ensemble, rolled onto its newest files -------------------


class Ensemble:
    """Fake servers answering srvr at 127.0.0.x, by address; this host is 127.0.0.1. A server whose
    mode is None does not answer (it is down). The ensemble lists 127.0.0.1-3; MOVED, the same
    with its second server replaced by a new one at 127.0.0.9 (already started, as its own
    install does)."""

    def __init__(self, tmp_path: Path, modes: dict[str, str | None]):
        self.port = free_port()
        self.ips = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        self.servers = {ip: FourLetterServer(ip, self.port, mode) for ip, mode in modes.items() if mode}
        self.systemd = FakeSystemd(tmp_path)
        self.tmp_path = tmp_path
        self.paths = {"conf_dir": str(tmp_path / "etc-zk"), "data_dir": str(tmp_path / "lib-zk"),
                      "log_dir": str(tmp_path / "log-zk"), "unit_path": str(tmp_path / host_layout.ZOOKEEPER_UNIT)}

    def context(self, ips: list[str] | None = None, wait_seconds: int = 2) -> dict:
        return dict(zookeeper_restart_context(ips or self.ips, 0, **self.paths), user="",
                    client_port=self.port, wait_seconds=wait_seconds)

    def run(self, phase: str, ips: list[str] | None = None, wait_seconds: int = 2):
        script = templates.render("zookeeper_restart.sh", **self.context(ips, wait_seconds))
        path = self.tmp_path / "zookeeper.restart.sh"
        path.write_text(script)
        env = dict(os.environ, PATH=f"{self.systemd.bin}:{os.environ['PATH']}")
        return subprocess.run(["bash", str(path), phase], capture_output=True, text=True, env=env, timeout=60)

    def config(self) -> str:
        return Path(self.paths["conf_dir"], "zoo.cfg").read_text()

    def close(self) -> None:
        for server in self.servers.values():
            server.close()


@pytest.fixture
def ensemble(tmp_path):
    made: list[Ensemble] = []

    def make(**modes: str | None) -> Ensemble:
        made.append(Ensemble(tmp_path, {f"127.0.0.{name[1:]}": mode for name, mode in modes.items()}))
        return made[-1]
    yield make
    for each in made:
        each.close()


UNIT = host_layout.ZOOKEEPER_UNIT
MOVED = ["127.0.0.1", "127.0.0.9", "127.0.0.3"]


def test_start_brings_up_a_server_with_its_files_and_leaves_a_running_one_to_the_roll(ensemble):
    zk = ensemble(s1="follower", s2="leader", s3="follower")
    first = zk.run("start")
    assert first.returncode == 0, first.stderr
    assert f"enable --now --quiet -- {UNIT}" in zk.systemd.calls()
    assert "server.2=127.0.0.2:2888:3888" in zk.config()
    assert Path(zk.paths["data_dir"], "myid").read_text() == "1\n"
    assert zk.run("probe").returncode == 0

    zk.systemd.clear_calls()
    moved = zk.run("start", MOVED)
    assert moved.returncode == 0, moved.stderr
    assert "server.2=127.0.0.2:2888:3888" in zk.config(), "a running server's zoo.cfg changed outside the roll"
    assert not [c for c in zk.systemd.calls() if c.startswith(("restart", "stop"))]
    assert zk.run("probe", MOVED).returncode == 3


def test_a_follower_restarts_onto_its_new_files_while_the_others_keep_a_majority(ensemble):
    zk = ensemble(s1="follower", s3="leader", s9="follower")
    assert zk.run("start").returncode == 0
    zk.systemd.clear_calls()
    rolled = zk.run("roll", MOVED)
    assert rolled.returncode == 0, rolled.stderr
    assert f"restart -- {UNIT}" in zk.systemd.calls()
    assert "server.2=127.0.0.9:2888:3888" in zk.config()
    assert not list(Path(zk.paths["conf_dir"]).glob("*.previous"))
    assert zk.run("probe", MOVED).returncode == 0
    assert zk.run("mode").stdout.strip() == "mode=follower"


def test_no_restart_while_it_would_leave_less_than_a_majority_serving(ensemble):
    zk = ensemble(s1="follower", s3="leader", s9=None)  # the new server does not serve yet
    assert zk.run("start").returncode == 0
    zk.systemd.clear_calls()
    refused = zk.run("roll", MOVED)
    assert refused.returncode == 1
    assert "a majority (2 of 3) serving without this server" in refused.stderr
    assert "127.0.0.9=not serving" in refused.stderr  # each server's answer: which one is down
    assert not [c for c in zk.systemd.calls() if c.startswith(("restart", "stop"))]
    assert "server.2=127.0.0.2:2888:3888" in zk.config()


def test_a_server_that_does_not_serve_after_its_restart_goes_back_to_its_previous_files(ensemble):
    zk = ensemble(s1=None, s3="leader", s9="follower")  # this server never serves: its new files fail it
    zk.systemd.set_active(UNIT)
    Path(zk.paths["conf_dir"]).mkdir()
    Path(zk.paths["data_dir"]).mkdir()
    Path(zk.paths["conf_dir"], "zoo.cfg").write_text(zk.context()["zoo_cfg"])
    Path(zk.paths["data_dir"], "myid").write_text("1\n")
    Path(zk.paths["unit_path"]).write_text(zk.context()["unit_text"])
    failed = zk.run("roll", MOVED)
    assert failed.returncode == 1
    assert "serving again, with a leader and a majority did not happen" in failed.stderr
    assert "server.2=127.0.0.2:2888:3888" in zk.config(), "the previous zoo.cfg did not come back"
    assert [c for c in zk.systemd.calls() if c.startswith("restart")] == [f"restart -- {UNIT}"] * 2
    assert not list(Path(zk.paths["conf_dir"]).glob("*.previous"))


def test_check_needs_a_leader_and_a_majority(ensemble):
    assert ensemble(s1="follower", s2="leader", s3="follower").run("check").returncode == 0


def test_check_fails_without_a_leader(tmp_path, ensemble):
    zk = ensemble(s1="follower", s2="follower", s3="follower")
    result = zk.run("check", wait_seconds=1)
    assert result.returncode == 1 and "127.0.0.2=follower" in result.stderr
