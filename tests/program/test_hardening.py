"""Issue 19 under mocks: what each server is told to run as, who owns it, and what a remote
shell's arguments may hold."""

from __future__ import annotations

import re

from tests.program.test_program import COMMAND, with_
from tests.program.test_two_clusters import two_clusters

HARDENING = ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "PrivateDevices=yes",
             "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectControlGroups=yes",
             "RestrictSUIDSGID=yes", "LockPersonality=yes", "CapabilityBoundingSet=\n", "UMask=0027")


def unit_of(start_script: str) -> str:
    """The unit text a start script installs (its `unit_text='...'` line, as bash quotes it)."""
    match = re.search(r"^unit_text=('(?:[^']|'\"'\"')*')$", start_script, flags=re.M)
    assert match, "no unit_text in the start script"
    return match.group(1)[1:-1].replace("'\"'\"'", "'")


def test_every_role_runs_as_the_dedicated_user_in_a_unit_hardened_to_the_paths_it_writes(deploy, base_config):
    d = deploy(with_(base_config, replica={"dataDisks": {"count": 2}, "slogDisk": {"type": "gp3", "sizeGiB": 50}}))
    replica = unit_of(d.resources["c1-replica-0-replica"].inputs["create"])
    assert "\nUser=pegasus\n" in replica
    for line in HARDENING:
        assert line in replica, line
    # Read-only everywhere but the role's own directory, its data dirs and its shared log.
    assert ("\nReadWritePaths=/home/work/app/pegasus/replica /home/work/ssd1/pegasus/c1 /home/work/ssd2/pegasus/c1 "
            "/home/work/slog/pegasus/c1\n") in replica
    meta = unit_of(d.resources["c1-meta-0-meta"].inputs["create"])
    assert "\nUser=pegasus\n" in meta and "\nReadWritePaths=/home/work/app/pegasus/meta\n" in meta
    collector = unit_of(d.resources["c1-meta-0-collector"].inputs["create"])
    assert "\nReadWritePaths=/home/work/app/pegasus/collector\n" in collector


def test_the_move_to_the_dedicated_user_shows_in_every_servers_restart_record(deploy, base_config):
    records = deploy(base_config).resources["c1-rolling-restart"].inputs["restart_records"]
    assert len(records) == 7 and all("runs as pegasus\n" in record for record in records.values())


def test_units_are_named_per_cluster_and_an_older_versions_unit_is_taken_over(deploy, base_config):
    d = deploy(base_config)
    start = d.resources["c1-replica-0-replica"].inputs["create"]
    assert "unit_name=pegasus-c1-replica.service\n" in start
    assert "legacy_unit_name=pegasus-replica.service\n" in start  # what stacks deployed before named it
    stop = d.resources["c1-replica-0-replica"].inputs["delete"]
    assert "unit_name=pegasus-c1-replica.service\n" in stop and "legacy_unit_name=pegasus-replica.service\n" in stop
    units = d.resources["c1-rolling-restart"].inputs["replica_units"]
    assert units == ["pegasus-c1-replica.service", "pegasus-replica.service"]


def test_two_clusters_of_one_program_never_share_a_unit_name(base_config):
    cloud = two_clusters(base_config)
    starts = {name: r.inputs["create"] for name, r in cloud.resources.items()
              if r.type == COMMAND and name.endswith(("-meta", "-replica", "-collector"))}
    names = {re.search(r"^unit_name=(\S+)$", script, flags=re.M).group(1) for script in starts.values()}
    assert {n for n in names if "-c1-" in n} and {n for n in names if "-c2-" in n}
    assert len(names) == 6  # meta, replica and collector of each


def test_every_host_is_claimed_for_the_stack_and_cluster(deploy, base_config):
    d = deploy(base_config)
    for name in ("c1-zk-0-prepare", "c1-meta-0-prepare", "c1-replica-2-prepare"):
        prepare = d.resources[name].inputs["create"]
        assert re.search(r"^owner_text='stack=[^'\n]*/pegasus/test\ncluster=c1\n'$", prepare, flags=re.M), name
        assert "owner_file=/var/lib/pegasus-pulumi/owner\n" in prepare
        assert re.search(r"^owner_text=", d.resources[name].inputs["delete"], flags=re.M)


def test_no_remote_shell_gets_a_config_or_a_staged_script_in_its_arguments(deploy, base_config):
    raw = with_(base_config, replica={"configOverrides": {"pegasus.server": {"rocksdb_password": "hunter2"}}})
    d = deploy(raw, secret_keys=("pegasus:ssh", "pegasus:replica"))
    for r in d.of_type(COMMAND):
        for field in ("create", "update", "delete"):
            text = str(r.inputs.get(field, ""))
            # config.ini text and the staged restart script travel on standard input only
            assert "[meta_server]" not in text and "hunter2" not in text, (r.name, field)
            assert "restart_script=" not in text, (r.name, field)
    staged = d.resources["c1-replica-0-replica-config"].inputs
    assert "rocksdb_password = hunter2" in staged["stdin"] and "[meta_server]" in staged["stdin"]
    assert len(staged["create"]) < 120  # a fixed line: `ps` shows nothing of the config
    assert "SECRET" not in staged["create"]


def test_the_stack_names_the_server_user(deploy, base_config):
    d = deploy(with_(base_config, serverUser="work"))
    assert "\nUser=work\n" in unit_of(d.resources["c1-replica-0-replica"].inputs["create"])
    assert "\nserver_user=work\n" in d.resources["c1-replica-0-prepare"].inputs["create"]
    assert "\nserver_user=work\n" in d.resources["c1-replica-0-replica"].inputs["create"]
    records = d.resources["c1-rolling-restart"].inputs["restart_records"]
    assert all("runs as work\n" in record for record in records.values())
