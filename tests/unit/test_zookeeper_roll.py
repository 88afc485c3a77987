"""The ZooKeeper roll: which server restarts when, driving staged script doubles over a real sshd.

The servers are two addresses of one sshd (tests/support/ssh_server.py); the
real restart script is tested in test_zookeeper_scripts.py and, with a real
ensemble, in the end-to-end suite.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from components.operations.zookeeper_roll import RollFailed, ZooKeeperRollProvider, next_to_restart

HOSTS = {"zk-0": "127.0.0.1", "zk-1": "127.0.0.2"}
KEYS = ["zk-0/zookeeper", "zk-1/zookeeper"]


class StagedZooKeeper:
    """Doubles of zookeeper.restart.sh: each run appends "<server ip> <phase>" to a log; `mode` prints
    the server's mode from `<ip>.mode`; `<ip>-<phase>` holds the exit status to use; a successful
    `roll` of the leader hands the leadership to the other server, as an election does."""

    def __init__(self, root: Path) -> None:
        self.dir, self.control, self.log = root / "staged", root / "control", root / "runs.log"
        self.dir.mkdir()
        self.control.mkdir()
        (self.dir / "zookeeper.restart.sh").write_text(textwrap.dedent(f"""\
            set -euo pipefail
            server=${{SSH_CONNECTION#* * }}; server=${{server%% *}}
            echo "$server $1" >>{self.log}
            status=$(cat {self.control}/$server-$1 2>/dev/null || echo 0)
            if [[ $1 == mode ]]; then echo "mode=$(cat {self.control}/$server.mode)"; fi
            if [[ $1 == roll && $status == 0 && $(cat {self.control}/$server.mode) == leader ]]; then
              for other in {self.control}/*.mode; do echo leader >"$other"; done
              echo follower >{self.control}/$server.mode
            fi
            echo "zookeeper $1 on $server: output line"
            exit "$status"
            """))

    def modes(self, **modes: str) -> None:
        for host, mode in modes.items():
            (self.control / f"{HOSTS[host.replace('_', '-')]}.mode").write_text(mode)

    def exit_with(self, host: str, phase: str, status: int) -> None:
        (self.control / f"{HOSTS[host]}-{phase}").write_text(str(status))

    def runs(self, *phases: str) -> list[str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [line for line in lines if not phases or line.split()[1] in phases]


@pytest.fixture()
def staged(tmp_path):
    return StagedZooKeeper(tmp_path)


def props(sshd, staged: StagedZooKeeper, record: str = "v1", **records: str) -> dict:
    return {"restart_records": {key: records.get(key.split("/")[0].replace("-", "_"), record) for key in KEYS},
            "hosts": HOSTS, "staged_dir": str(staged.dir),
            "access": {"user": sshd.user, "port": sshd.port, "private_key": sshd.client_key_path.read_text(),
                       "bastion": None, "known_hosts": [sshd.pin(address) for address in sorted(set(HOSTS.values()))]}}


def test_the_leader_restarts_only_when_no_follower_is_due():
    modes = {"zk-0/zookeeper": "leader", "zk-1/zookeeper": "follower", "zk-2/zookeeper": "follower"}
    assert next_to_restart(["zk-0/zookeeper", "zk-2/zookeeper"], modes) == "zk-2/zookeeper"
    assert next_to_restart(["zk-0/zookeeper"], modes) == "zk-0/zookeeper"
    # A server that does not serve (restarting, or down) goes before the leader too.
    assert next_to_restart(["zk-0/zookeeper", "zk-1/zookeeper"], {**modes, "zk-1/zookeeper": ""}) == "zk-1/zookeeper"


def test_a_changed_ensemble_rolls_its_followers_first_and_the_leader_last(sshd, staged):
    staged.modes(zk_0="leader", zk_1="follower")
    staged.exit_with("zk-0", "probe", 3)
    staged.exit_with("zk-1", "probe", 3)

    result = ZooKeeperRollProvider().update("id", props(sshd, staged), props(sshd, staged, "v2"))

    assert staged.runs("roll") == ["127.0.0.2 roll", "127.0.0.1 roll"]
    assert result.outs["restarted"] == ["zk-1/zookeeper", "zk-0/zookeeper"]
    # Before each restart it asked every server who leads (the leadership moves at an election).
    assert len(staged.runs("mode")) == 4


def test_a_server_that_already_runs_its_newest_files_is_not_restarted(sshd, staged):
    # The replacement of a server started with the new files at its install.
    staged.modes(zk_0="follower", zk_1="leader")
    staged.exit_with("zk-1", "probe", 3)

    result = ZooKeeperRollProvider().update("id", props(sshd, staged), props(sshd, staged, "v2"))

    assert staged.runs("roll") == ["127.0.0.2 roll"] and result.outs["restarted"] == ["zk-1/zookeeper"]


def test_a_server_that_does_not_come_back_stops_the_roll_before_the_leader(sshd, staged):
    staged.modes(zk_0="leader", zk_1="follower")
    staged.exit_with("zk-0", "probe", 3)
    staged.exit_with("zk-1", "probe", 3)
    staged.exit_with("zk-1", "roll", 1)

    with pytest.raises(RollFailed) as failure:
        ZooKeeperRollProvider().update("id", props(sshd, staged), props(sshd, staged, "v2"))

    assert staged.runs("roll") == ["127.0.0.2 roll"]
    message = str(failure.value)
    assert "zk-1/zookeeper did not restart serving" in message and "not restarted: zk-0/zookeeper" in message
    assert "zookeeper roll on 127.0.0.2: output line" in message


def test_a_new_address_or_key_alone_restarts_nothing_and_opens_no_connection(sshd, staged):
    old = props(sshd, staged)
    new = {**props(sshd, staged), "hosts": {"zk-0": "127.0.0.1", "zk-1": "127.0.0.2", "zk-9": "x"}}
    logins = sshd.accepted_logins()
    assert ZooKeeperRollProvider().diff("id", old, new).changes is True
    assert ZooKeeperRollProvider().update("id", old, new).outs["restarted"] == []
    assert sshd.accepted_logins() == logins


def test_create_restarts_what_is_due_then_checks_every_server(sshd, staged):
    staged.modes(zk_0="leader", zk_1="follower")

    result = ZooKeeperRollProvider().create(props(sshd, staged))

    assert staged.runs("roll") == [] and result.outs["restarted"] == []
    assert sorted(staged.runs("check")) == ["127.0.0.1 check", "127.0.0.2 check"]
