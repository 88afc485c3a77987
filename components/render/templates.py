"""Renders the files and scripts a host receives (templates/*.j2) and wraps
scripts so that an SSH user, root or not, runs them as root.

Pure module: no Pulumi imports, so it is cheap to call and easy to test.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any, Iterable

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"

# Ends the here-document that feeds a script to `bash -s`; as_root refuses a
# script that contains it anywhere, so the document cannot end early.
HEREDOC_DELIMITER = "PEGASUS_PULUMI_SCRIPT_END"

# Characters a value may hold when it is written into a systemd unit or a
# ZooKeeper config unquoted: no blanks, quotes, backslashes, `%` (a systemd
# specifier) or `$` (expanded by systemd in ExecStart).
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:@+=,-]+")


def _require_defined(value: Any) -> None:
    """Let StrictUndefined raise its own error, which names the missing value."""
    if isinstance(value, jinja2.Undefined):
        str(value)


def _scalar_text(value: Any, filter_name: str) -> str:
    _require_defined(value)
    # A bool, None or a container would render as "True", "None" or a Python
    # repr: always a bug in the caller, so say so instead of shipping it.
    if isinstance(value, bool) or not isinstance(value, (str, int, os.PathLike)):
        raise TypeError(
            f"`{filter_name}` expects a string, an int or a path, "
            f"got {type(value).__name__}: {value!r}"
        )
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def shell_quote(value: Any) -> str:
    """`| q`: one shell word, safe to paste into bash."""
    return shlex.quote(_scalar_text(value, "q"))


def shell_quote_list(values: Iterable[Any]) -> str:
    """`| q_list`: quoted words separated by spaces (for bash arrays)."""
    _require_defined(values)
    if isinstance(values, (str, bytes)):
        raise TypeError(f"`q_list` expects a list of values, got a string: {values!r}")
    return " ".join(shell_quote(v) for v in values)


def shell_flag(value: Any) -> str:
    """`| flag`: a Python bool as the bash word `true` or `false`."""
    _require_defined(value)
    if not isinstance(value, bool):
        raise TypeError(f"`flag` expects a bool, got {type(value).__name__}: {value!r}")
    return "true" if value else "false"


def plain_value(value: Any) -> str:
    """`| plain`: a value written unquoted into a unit file or config."""
    text = _scalar_text(value, "plain")
    if not _PLAIN_VALUE.fullmatch(text):
        raise ValueError(
            f"{text!r} cannot be written into a systemd unit or config file as is: "
            "use only letters, digits and _ . / : @ + = , -"
        )
    return text


def _make_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        # bash uses `${#var}`, so template comments are `{## ... ##}`.
        comment_start_string="{##",
        comment_end_string="##}",
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["q"] = shell_quote
    env.filters["q_list"] = shell_quote_list
    env.filters["flag"] = shell_flag
    env.filters["plain"] = plain_value
    return env


# Built once: jinja2 then compiles each template once and caches it.
_ENVIRONMENT = _make_environment()


def template_names() -> list[str]:
    """Names render() accepts: every template except the `_` partials."""
    return sorted(
        name.removesuffix(".j2")
        for name in _ENVIRONMENT.list_templates(extensions=["j2"])
        if not name.startswith("_")
    )


def render(template_name: str, **context: Any) -> str:
    """Render templates/<template_name>.j2 (the `.j2` may be given or not).

    A missing context value raises jinja2.UndefinedError naming it.
    """
    name = template_name if template_name.endswith(".j2") else f"{template_name}.j2"
    return _ENVIRONMENT.get_template(name).render(**context)


def as_root(script: str) -> str:
    """The command line that runs `script` with bash as root over SSH.

    The script travels in a quoted here-document (no expansion). It is wrapped
    in `{ ... } </dev/null` so bash parses all of it before running any of it,
    and commands inside cannot swallow the rest of the script from stdin.
    A root SSH user runs it directly (images without sudo); others use
    `sudo -n`, which fails at once instead of waiting for a password.
    """
    if HEREDOC_DELIMITER in script:
        raise ValueError(
            f"the script contains {HEREDOC_DELIMITER!r}, which ends the "
            "here-document that carries it: rename that text in the script"
        )
    body = script if script.endswith("\n") else script + "\n"
    return (
        'if [ "$(id -u)" -eq 0 ]; then bash -s; else sudo -n bash -s; fi'
        f" <<'{HEREDOC_DELIMITER}'\n"
        "{\n"
        f"{body}"
        "} </dev/null\n"
        f"{HEREDOC_DELIMITER}\n"
    )
