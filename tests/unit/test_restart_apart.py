"""restart_role.sh when the SSH session that started it goes, or a second one starts
(issue 20, item 9), and what it tells a health check about its unit (item 11).

Against the stand-in systemctl and the fake MetaServer of test_host_scripts.py.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.unit.script_runner import run_script
from tests.unit.test_host_scripts import restart_role_script, started_for_roll

UNIT = "pegasus-replica.service"


def restarts(systemd) -> list[str]:
    return [call for call in systemd.calls() if call.startswith("restart")]


def start(path: Path, systemd, **streams) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{systemd.bin}:{os.environ['PATH']}"}
    return subprocess.Popen(["bash", str(path)], env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                            **streams)


def wait_until(what: str, predicate, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_a_restart_goes_on_to_its_end_when_the_session_that_started_it_goes(tmp_path, systemd, meta, replica_port):
    context = {**started_for_roll(tmp_path, systemd, meta, replica_port), "settle_seconds": 3}
    path = tmp_path / "restart_role.sh"
    path.write_text(restart_role_script(context))
    reader, writer = os.pipe()
    process = start(path, systemd, stdout=writer, stderr=writer)
    os.close(writer)
    seen = b""
    deadline = time.monotonic() + 20
    while b"waiting 3s for the MetaServers" not in seen and time.monotonic() < deadline:
        seen += os.read(reader, 65536)
    assert b"restarted pegasus-replica.service" in seen, seen
    os.close(reader)  # the connection drops: every later write of the script's session fails
    assert process.wait(timeout=60) == 0
    # Restarted once, onto the new files, and not rolled back for want of an audience.
    assert restarts(systemd) == [f"restart -- {UNIT}"]
    assert Path(context["config_path"]).read_text() == "; config of replica v2\n"
    assert not list(Path(context["role_dir"]).glob("*.previous"))


def test_two_restarts_of_a_role_never_overlap_and_the_second_reports_the_first(tmp_path, systemd, meta, replica_port):
    context = {**started_for_roll(tmp_path, systemd, meta, replica_port), "settle_seconds": 3}
    path = tmp_path / "restart_role.sh"
    path.write_text(restart_role_script(context))
    first = start(path, systemd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until("the first restart", lambda: restarts(systemd))
    # A second run of the same phase (a dial that came too late to be told apart, say).
    second = run_script(path.read_text(), tmp_path, fake_bin=systemd.bin, name="again.sh")
    first_out, _ = first.communicate(timeout=60)
    assert first.returncode == 0, first_out
    assert second.returncode == 0, second.stderr
    assert "waiting for it to end" in second.stdout
    assert "changes nothing and reports it" in second.stdout
    assert restarts(systemd) == [f"restart -- {UNIT}"]


def test_a_second_restart_after_new_files_were_staged_waits_then_restarts_onto_them(
        tmp_path, systemd, meta, replica_port):
    context = {**started_for_roll(tmp_path, systemd, meta, replica_port), "settle_seconds": 3}
    path = tmp_path / "restart_role.sh"
    path.write_text(restart_role_script(context))
    first = start(path, systemd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until("the first restart", lambda: restarts(systemd))
    Path(context["staged_config"]).write_text("; config of replica v3\n")
    second = run_script(path.read_text(), tmp_path, fake_bin=systemd.bin, name="again.sh")
    first.communicate(timeout=60)
    assert second.returncode == 0, second.stderr
    assert "waiting for it to end" in second.stdout and "changes nothing" not in second.stdout
    assert restarts(systemd) == [f"restart -- {UNIT}"] * 2
    assert Path(context["config_path"]).read_text() == "; config of replica v3\n"


@pytest.mark.parametrize(("arrange", "status", "says"), [
    (lambda s: (s / f"{UNIT}.active").touch(), 0, "is active"),
    (lambda s: (s / f"{UNIT}.activestate").write_text("activating\n"), 0, "is activating"),
    (lambda s: (s / f"{UNIT}.jobs").write_text(f"7 {UNIT} start waiting\n"), 0, "with a job queued"),
    (lambda s: (s / f"{UNIT}.failed").touch(), 4, "systemd will not start it again"),
    (lambda s: None, 4, "nothing will start it"),
])
def test_the_unit_state_says_whether_a_server_can_still_come_up(tmp_path, systemd, meta, replica_port,
                                                                arrange, status, says):
    context = started_for_roll(tmp_path, systemd, meta, replica_port)
    systemd.set_active(UNIT, False)
    arrange(systemd.state)
    result = run_script(restart_role_script({**context, "phase": "unit-state"}), tmp_path, fake_bin=systemd.bin)
    assert result.returncode == status, result.stdout + result.stderr
    assert says in result.stdout
    assert not restarts(systemd)
