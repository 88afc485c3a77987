"""components.render.templates: rendering, the quoting filters and as_root."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import jinja2
import pytest

from components.render import templates
from tests.unit.host_contexts import script_contexts


def test_every_template_has_a_realistic_context_in_the_tests():
    # A new template must come with a context here, or it escapes shellcheck.
    assert sorted(script_contexts()) == templates.template_names()


@pytest.mark.parametrize("name", templates.template_names())
def test_every_template_starts_with_a_comment_naming_its_context(name):
    source = (templates.TEMPLATES_DIR / f"{name}.j2").read_text()
    head = "\n".join(source.splitlines()[:12])
    assert source.startswith(("#!/usr/bin/env bash\n#", "{##")), name
    assert "Context:" in head, name


def test_render_accepts_the_name_with_or_without_j2():
    context = script_contexts()["zoo.cfg"]
    assert templates.render("zoo.cfg", **context) == templates.render("zoo.cfg.j2", **context)


def test_missing_context_value_names_it():
    context = dict(script_contexts()["remove_app_dir.sh"])
    del context["marker"]
    with pytest.raises(jinja2.UndefinedError, match="marker"):
        templates.render("remove_app_dir.sh", **context)


def test_q_quotes_values_for_bash():
    assert templates.shell_quote("plain/path") == "plain/path"
    assert templates.shell_quote("it's $HOME; rm -rf /") == "'it'\"'\"'s $HOME; rm -rf /'"
    assert templates.shell_quote(2181) == "2181"


@pytest.mark.parametrize("value", [True, None, ["a"], {"a": 1}])
def test_q_refuses_values_that_would_render_as_python(value):
    with pytest.raises(TypeError, match="`q` expects"):
        templates.shell_quote(value)


def test_q_list_quotes_each_item_and_refuses_a_bare_string():
    assert templates.shell_quote_list(["a b", "c"]) == "'a b' c"
    with pytest.raises(TypeError, match="got a string"):
        templates.shell_quote_list("abc")


def test_flag_only_takes_bools():
    assert templates.shell_flag(True) == "true"
    assert templates.shell_flag(False) == "false"
    with pytest.raises(TypeError, match="expects a bool"):
        templates.shell_flag("false")


@pytest.mark.parametrize("value", ["/a b", "50%", "$HOME", 'x"y', "a\nb"])
def test_plain_refuses_what_systemd_would_interpret(value):
    with pytest.raises(ValueError, match="cannot be written"):
        templates.plain_value(value)


def test_unit_refuses_a_path_with_a_blank():
    context = dict(script_contexts()["pegasus.service"], bin_dir="/opt/my app/bin")
    with pytest.raises(ValueError, match="/opt/my app/bin"):
        templates.render("pegasus.service", **context)


def test_rendering_a_cluster_worth_of_scripts_takes_milliseconds():
    contexts = script_contexts()
    started = time.perf_counter()
    for _ in range(25):  # 17 templates x 25 = 425 renders
        for name, context in contexts.items():
            templates.render(name, **context)
    assert time.perf_counter() - started < 1.0


# --- as_root -----------------------------------------------------------------


def run_command(command: str, **kwargs) -> subprocess.CompletedProcess:
    """Run as_root's output the way sshd does: `<login shell> -c <command>`."""
    return subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, timeout=30, **kwargs
    )


def test_as_root_refuses_a_script_holding_the_delimiter():
    script = f"echo hi\n{templates.HEREDOC_DELIMITER}\necho after\n"
    with pytest.raises(ValueError, match=templates.HEREDOC_DELIMITER):
        templates.as_root(script)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: checks the root branch of as_root")
def test_as_root_round_trip_as_root_keeps_text_exit_code_and_stdin_safety():
    script = (
        "#!/usr/bin/env bash\nset -euo pipefail\n"
        "value='$HOME `id` \\\\ \"quoted\"'\n"
        'printf "%s\\n" "$value"\n'
        "cat\n"  # reads stdin: must not eat the rest of the script
        "echo \"after cat as uid $(id -u)\"\n"
        "exit 7\n"
    )
    result = run_command(templates.as_root(script))
    assert result.returncode == 7, result.stderr
    assert result.stdout.splitlines() == ['$HOME `id` \\\\ "quoted"', "after cat as uid 0"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_as_root_uses_sudo_when_the_ssh_user_is_not_root():
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user on this machine to run as")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is missing")
    # pytest's tmp_path is private to root; the unprivileged user needs a
    # directory it can traverse.
    with tempfile.TemporaryDirectory(prefix="as-root-") as shared:
        os.chmod(shared, 0o755)
        result, calls = _run_as_nobody(Path(shared), nobody)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran by nobody"  # the stand-in does not change user
    assert calls == ["-n", "bash", "-s"]


def _run_as_nobody(tmp_path: Path, nobody) -> tuple[subprocess.CompletedProcess, list[str]]:
    # A stand-in sudo: records how it was called, then runs the command.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "sudo-calls"
    calls.touch()
    calls.chmod(0o666)
    (fake_bin / "sudo").write_text(f'#!/bin/sh\necho "$*" >>{calls}\nshift\nexec "$@"\n')
    (fake_bin / "sudo").chmod(0o755)
    command = templates.as_root("echo ran by $(id -un)\n")
    result = subprocess.run(
        ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
         "sh", "-c", command],
        capture_output=True, text=True, timeout=30,
        env={"PATH": f"{fake_bin}:/usr/bin:/bin"},
    )
    return result, calls.read_text().split()


def test_as_root_parses_the_whole_script_before_running_it():
    # A syntax error at the end must stop the script before its first line runs.
    if os.geteuid() != 0:
        pytest.skip("needs root: as_root runs bash directly only for root")
    result = run_command(templates.as_root("echo started\nif then fi\n"))
    assert result.returncode != 0
    assert "started" not in result.stdout


@pytest.mark.parametrize("name", [n for n in templates.template_names() if n.endswith(".sh")])
def test_every_wrapped_script_still_parses(name):
    # What bash -s receives is the script inside `{ ... } </dev/null`.
    command = templates.as_root(templates.render(name, **script_contexts()[name]))
    lines = command.splitlines()
    assert lines[-1] == templates.HEREDOC_DELIMITER
    body = "\n".join(lines[1:-1]) + "\n"
    result = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
