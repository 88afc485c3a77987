"""scripts/prepare-stack.sh, what `make up` runs before `pulumi up`, against a fake `pulumi`.

The fake keeps a stack's config in a JSON file and answers `stack select`,
`config get --path` and `config set [--secret] --path` as the CLI does
(exit 1 for a missing key), so the script's questions and messages can be
checked without the Pulumi CLI, which cannot be installed here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "prepare-stack.sh"

FAKE_PULUMI = r'''#!/usr/bin/env python3
import json, os, sys
state_path = os.environ["FAKE_PULUMI_STATE"]
state = json.load(open(state_path)) if os.path.exists(state_path) else {"config": {}, "secret": [], "calls": []}
args = sys.argv[1:]
state["calls"].append(args)
def save():
    json.dump(state, open(state_path, "w"))
if args[:2] == ["stack", "select"]:
    state["stack"] = args[-1]; save(); sys.exit(0)
if args[:2] == ["config", "get"]:
    key = args[-1]; save()
    if key not in state["config"]:
        print(f"error: configuration key '{key}' not found for stack", file=sys.stderr); sys.exit(1)
    print(state["config"][key]); sys.exit(0)
if args[:2] == ["config", "set"]:
    rest = [a for a in args[2:] if a not in ("--path",)]
    rest = rest[2:] if rest[:1] == ["--stack"] else rest
    secret = "--secret" in rest
    rest = [a for a in rest if a != "--secret"]
    key, value = rest[0], (rest[1] if len(rest) > 1 else sys.stdin.read())
    state["config"][key] = value
    if secret: state["secret"].append(key)
    save(); sys.exit(0)
print("fake pulumi: unexpected " + " ".join(args), file=sys.stderr); sys.exit(2)
'''


@pytest.fixture
def fake(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(FAKE_PULUMI)
    (bin_dir / "pulumi").chmod(0o755)
    state = tmp_path / "pulumi.json"

    home = tmp_path / "home"  # no ~/.aws here: AWS credentials only where a test gives them
    home.mkdir()

    def run(config: dict | None = None, script: Path = SCRIPT, **env) -> subprocess.CompletedProcess:
        if config is not None:
            state.write_text(json.dumps({"config": config, "secret": [], "calls": []}))
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith(("PULUMI_CONFIG_PASSPHRASE", "AWS_", "PEGASUS_"))}
        environment.update(PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_PULUMI_STATE=str(state), HOME=str(home),
                           PEGASUS_KEY_DIR=str(tmp_path / "keys"), PULUMI_BACKEND_URL="file:///tmp/state", **env)
        return subprocess.run(["bash", str(script), "trial"], capture_output=True, text=True,
                              env=environment, stdin=subprocess.DEVNULL, timeout=60)

    run.state = lambda: json.loads(state.read_text())
    run.tmp = tmp_path
    return run


def test_a_fresh_stack_gets_a_key_pair_and_one_message_with_every_decision_left(fake):
    result = fake({}, ASSUME_YES="1")
    assert result.returncode == 1
    state = fake.state()
    assert state["stack"] == "trial"
    key = fake.tmp / "keys" / "pegasus_trial"
    assert key.exists() and state["config"]["pegasus:ssh.privateKey"] == key.read_text()
    assert "pegasus:ssh.privateKey" in state["secret"] and "pegasus:ssh.publicKey" not in state["secret"]
    assert state["config"]["pegasus:ssh.publicKey"].startswith("ssh-ed25519 ")
    out = result.stdout
    assert "Pulumi asks for it below" in out  # the passphrase, explained once
    decisions = out[out.index("needs a few decisions"):]
    for needed in ("aws:region", "pegasus:network.adminCidr", "pack_server", "pegasus:clusterName"):
        assert needed in decisions, needed
    assert "SSH key pair" not in decisions


def test_without_an_answer_no_key_is_made_and_the_commands_are_given(fake):
    result = fake({"aws:region": "eu-west-1"})
    assert result.returncode == 1
    assert not (fake.tmp / "keys" / "pegasus_trial").exists()
    assert "pulumi config set --secret --path pegasus:ssh.privateKey < ~/.ssh/pegasus_trial" in result.stdout
    assert "aws:region" not in result.stdout


def test_a_documentation_admin_range_and_a_missing_package_are_named(fake):
    result = fake({"pegasus:network.adminCidr": "203.0.113.0/24", "pegasus:package": "packages/nope.tar.gz"})
    assert "203.0.113.0/24 is a documentation range" in result.stdout
    assert "packages/nope.tar.gz: no such file" in result.stdout and "pack_server" in result.stdout


def test_a_complete_stack_goes_on_to_pulumi_up(fake, tmp_path):
    package = tmp_path / "pegasus-server-2.5.0-8f3c2ab-glibc2.17-release.tar.gz"
    package.write_bytes(b"x")
    result = fake({"aws:region": "eu-west-1", "pegasus:clusterName": "trial", "pegasus:package": str(package),
                   "pegasus:network.adminCidr": "198.51.100.0/24", "pegasus:ssh.privateKey": "k",
                   "pegasus:ssh.publicKey": "ssh-ed25519 AAAA x"}, PULUMI_CONFIG_PASSPHRASE="p")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "decisions" not in result.stdout and "passphrase" not in result.stdout


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the project's scripts/ and stacks/ (the script finds the project from its own place)."""
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    (root / "stacks").mkdir()
    shutil.copy(SCRIPT, root / "scripts" / SCRIPT.name)
    return root


def test_no_stack_chosen_and_no_aws_credentials_offers_the_local_stack(fake, project):
    result = fake({}, script=project / "scripts" / SCRIPT.name, PEGASUS_STACK_DEFAULTED="1")
    assert result.returncode == 1
    out = result.stdout
    assert "no AWS credentials" in out and "Try Pegasus on this machine" in out
    # Without a package, how to build one comes first; then the machines, then up.
    steps = [line for line in out.splitlines() if line.startswith("make:   ") and line[8:9].isdigit()]
    assert "./run.sh pack_server" in steps[0] and "packages/" in steps[0]
    assert "sudo make local-machines" in steps[1] and steps[2].endswith("make up STACK=local")
    assert "make up STACK=trial" in out  # the way on to AWS
    assert not fake.tmp.joinpath("pulumi.json").exists() or "stack" not in fake.state(), "a stack was created"


def test_with_local_machines_and_a_package_only_up_is_left(fake, project):
    (project / "packages").mkdir()
    (project / "packages" / "pegasus-server-2.5.0-8f3c2ab-glibc2.17-release.tar.gz").write_bytes(b"x")
    result = fake({}, script=project / "scripts" / SCRIPT.name, PEGASUS_STACK_DEFAULTED="1")
    assert "pack_server" not in result.stdout and "sudo make local-machines" in result.stdout
    (project / "stacks" / "Pulumi.local.yaml").write_text("config: {}\n")
    result = fake({}, script=project / "scripts" / SCRIPT.name, PEGASUS_STACK_DEFAULTED="1")
    steps = [line for line in result.stdout.splitlines() if line.startswith("make:   ") and line[8:9].isdigit()]
    assert steps == ["make:   1. make up STACK=local"]


@pytest.mark.parametrize("credentials", [{"AWS_PROFILE": "ops"}, {"PEGASUS_STACK_DEFAULTED": ""}],
                         ids=["AWS credentials", "a stack chosen"])
def test_aws_credentials_or_a_chosen_stack_go_on_as_before(fake, credentials):
    result = fake({"aws:region": "eu-west-1"}, **{"PEGASUS_STACK_DEFAULTED": "1", **credentials})
    assert "Try Pegasus on this machine" not in result.stdout
    assert fake.state()["stack"] == "trial"


def test_an_own_servers_stack_is_asked_nothing_about_aws(fake, tmp_path):
    package = tmp_path / "pegasus-server-2.5.0-8f3c2ab-glibc2.17-release.tar.gz"
    package.write_bytes(b"x")
    config = {"pegasus:clusterName": "trial", "pegasus:package": str(package), "pegasus:servers": "{}",
              "pegasus:ssh.privateKey": "k", "pegasus:ssh.publicKey": "ssh-ed25519 AAAA x"}
    result = fake(config, PULUMI_CONFIG_PASSPHRASE="p")
    assert result.returncode == 1
    decisions = result.stdout[result.stdout.index("needs a few decisions"):]
    assert "pegasus:ssh.user" in decisions
    assert "aws:region" not in decisions and "adminCidr" not in decisions
    result = fake({**config, "pegasus:ssh.user": "admin"}, PULUMI_CONFIG_PASSPHRASE="p")
    assert result.returncode == 0, result.stdout + result.stderr
