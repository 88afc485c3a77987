"""End to end: `make local-machines` and `make local-machines-destroy` as a user runs them.

The machines outlive the command that made them and any sweep of an earlier
run; the stack file it writes is a valid stack of your own servers once `make
up` sets the key pair; the machines answer the user's key as the login user;
destroy leaves nothing of them on this host.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from components.spec.validation import build_spec
from tests.e2e.localcloud.testing import skip_unless_local_cloud_possible
from tests.e2e.test_localcloud import NOTHING, traces_of
from tests.support.package_builder import build_package
from tools.localcloud import sweep_leftovers
from tools.localcloud.leftovers import read_record
from tools.localcloud.local_machines import PROJECT_DIR, kept_runs
from tools.localcloud.ssh import run_over_ssh

pytestmark = [pytest.mark.e2e, skip_unless_local_cloud_possible()]


def tool(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.localcloud", *args], cwd=PROJECT_DIR, env=env,
                          capture_output=True, text=True, timeout=600)


def test_local_machines_are_kept_listed_and_removed_without_a_trace(tmp_path):
    if kept_runs():
        pytest.skip(f"a user's local machines exist on this host ({kept_runs()[0]}): the test would remove them")
    package = build_package(tmp_path / "packages")
    stack_file = tmp_path / "Pulumi.local.yaml"
    env = {**os.environ, "PEGASUS_KEY_DIR": str(tmp_path / "keys"), "PYTHONPATH": str(PROJECT_DIR)}
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "id_ed25519").write_text("the user's own key\n")
    made = tool("create", "--package", str(package), "--stack-file", str(stack_file), env=env)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "make up STACK=local" in made.stdout
    assert (tmp_path / "keys" / "id_ed25519").read_text() == "the user's own key\n"
    [run_dir] = kept_runs()
    tag = read_record(run_dir)["tag"]
    try:
        sweep_leftovers()  # what the next test run does first: the user's machines stay
        config = yaml.safe_load(stack_file.read_text())["config"]
        servers = config["pegasus:servers"]
        assert [len(servers[role]) for role in ("zookeeper", "meta", "replica")] == [1, 2, 3]
        key = (tmp_path / "keys" / "pegasus_local").read_text()
        public = (tmp_path / "keys" / "pegasus_local.pub").read_text().strip()
        for entry in [e for role in servers.values() for e in role]:
            rc, _, err = run_over_ssh(entry["host"], key, "sudo -n true", user="admin", timeout=30)
            assert rc == 0, f"{entry['host']}: {err}"
            # The stack holds each machine's host key, as it offers it: nothing is trusted on a first answer.
            _, offered, _ = run_over_ssh(entry["host"], key, "cat /etc/ssh/ssh_host_ed25519_key.pub", user="admin",
                                         timeout=30)
            assert entry["hostKey"] == " ".join(offered.split()[:2]), entry["host"]
            # Your own servers use no AWS service: no route to a metadata service or S3
            # that would die with the command that made the machines.
            _, out, _ = run_over_ssh(entry["host"], key, "curl -s -o /dev/null -w '%{http_code}' -m 3 -X PUT "
                                     "-H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "
                                     "http://169.254.169.254/latest/api/token", user="admin", timeout=30)
            assert out.strip() == "000", f"{entry['host']}: a metadata service answered ({out})"
        for replica in servers["replica"]:
            assert all(d.startswith("/dev/disk/by-id/virtio-") for d in replica["dataDisks"])
        # What `make up STACK=local` adds (the key pair) makes it a valid stack of your own servers.
        values = {key_.split(":", 1)[1]: value for key_, value in config.items()}
        values["ssh"] = {**values["ssh"], "privateKey": key, "publicKey": public}
        spec = build_spec(values, stack="local", secret_keys={"pegasus:ssh"}, project_dir=PROJECT_DIR)
        assert spec.servers is not None and spec.replica.data_disks.count == 2
        # Monitoring on the first MetaServer's host, without Grafana (its repository is out of reach).
        assert spec.monitoring.placement == "meta" and not spec.monitoring.grafana
        # A second create refuses while these machines exist.
        again = tool("create", "--package", str(package), "--stack-file", str(stack_file), env=env)
        assert again.returncode != 0 and "make local-machines-destroy" in again.stderr
    finally:
        removed = tool("destroy", env=env)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert traces_of(tag, run_dir) == NOTHING
    assert kept_runs() == []
