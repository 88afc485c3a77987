"""The rolling restart after a roll that failed or was cut short (issue 20, items 8 and 10).

The state keeps the records of the last roll that succeeded: after replica-0
rolled onto a change and replica-1 failed, reverting the change gives records
equal to the state's, while replica-0 runs the reverted-away files. Every
update asks every server what it runs and restarts those too; and the config
commands' stamp of what they staged makes the revert an update at all.
Over a real sshd with doubles of the staged scripts (test_rolling_restart.py).
"""

from __future__ import annotations

import pytest

from components.operations import rolling_restart
from components.ssh import session as ssh_session
from components.operations.rolling_restart import RollingRestartProvider
from components.render.server_files import staged_stamp
from tests.support.staged_scripts import StagedScripts
from tests.unit.test_rolling_restart import HOSTS, KEYS, props, records, run_of


@pytest.fixture()
def staged(tmp_path):
    return StagedScripts(tmp_path, HOSTS)


def test_a_revert_after_a_failed_roll_restarts_the_servers_that_run_the_reverted_away_files(sshd, staged):
    # The state: records v1 (the last roll that succeeded); replica-0 runs v2 since the failed roll.
    state = {**props(sshd, staged, records()), "staged": {k: "stamp-1" for k in KEYS}, "restarted": []}
    reverted = {**props(sshd, staged, records()), "staged": {k: "stamp-3" for k in KEYS}}
    staged.exit_with("replica-0/replica", "probe", 3)

    assert RollingRestartProvider().diff("id", state, reverted).changes is True
    result = RollingRestartProvider().update("id", state, reverted)

    runs = staged.runs()
    assert sorted(runs[:len(KEYS)]) == sorted(run_of(k, "probe") for k in KEYS)
    assert runs[len(KEYS):] == [run_of("replica-0/replica", "roll")]
    assert result.outs["restarted"] == ["replica-0/replica"]
    assert result.outs["staged"] == reverted["staged"]


def test_an_update_restarts_the_union_of_changed_records_and_servers_due(sshd, staged):
    state = props(sshd, staged, records())
    changed = props(sshd, staged, records(meta_1_meta="v2"))
    staged.exit_with("replica-1/replica", "probe", 3)
    staged.exit_with("meta-1/meta", "probe", 3)

    RollingRestartProvider().update("id", state, changed)

    assert staged.runs()[len(KEYS):] == [run_of("replica-1/replica", "roll"), run_of("meta-1/meta", "roll"),
                                         run_of("meta-1/meta", "deferred")]


def test_a_host_that_does_not_answer_the_probe_does_not_stop_the_roll(sshd, staged, monkeypatch):
    monkeypatch.setattr(ssh_session, "DIAL_PAUSE_SECONDS", 0.1)
    monkeypatch.setattr(ssh_session, "DIALS", 1)
    hosts = {**HOSTS, "replica-9": "127.0.0.3"}  # nothing listens there
    state = {**props(sshd, staged, {**records(), "replica-9/replica": "v1"}), "hosts": hosts}
    changed = {**props(sshd, staged, {**records(replica_1_replica="v2"), "replica-9/replica": "v1"}), "hosts": hosts}

    result = RollingRestartProvider().update("id", state, changed)

    assert result.outs["restarted"] == ["replica-1/replica"]


def test_the_config_commands_stamp_is_what_the_roll_compares():
    output = ("stage-config: /a/staged/replica.config.ini is up to date\nstage-config: wrote /a/staged/replica.restart.sh\n"
              "stage-config: staged 1733480000.123456789 1733480001.5")
    assert staged_stamp(output) == "1733480000.123456789 1733480001.5"
    assert staged_stamp("from an older program") == "from an older program"


def test_every_update_and_create_first_puts_back_what_an_interrupted_drain_changed(sshd, staged, monkeypatch):
    put_back = []
    monkeypatch.setattr(rolling_restart, "put_back_interrupted",
                        lambda shell, records, log: put_back.append((shell.tools_dir, records.directory)))
    tools = {"host": "meta-0", "dir": "/app/tools/t", "meta_list": "127.0.0.1:34601", "release": "2.5.0"}
    state = {**props(sshd, staged, records()), "tools": tools}

    RollingRestartProvider().update("id", state, {**state, "staged": {k: "new" for k in KEYS}})
    RollingRestartProvider().create(state)

    assert put_back == [("/app/tools/t", f"{staged.dir}/drains")] * 2
