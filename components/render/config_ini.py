"""Render a release's own `bin/config.ini` for one server.

The release template's `%{name}` variables map onto a jinja2 environment whose
variable delimiters are `%{` and `}`; the block and comment delimiters are set
to strings no ini file contains. Every variable the template uses must be known
(the error names the unknown one and its line); after rendering no `%{` may
remain. Overrides are then applied as line edits that keep the file's comments
and order.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Mapping

import jinja2

VARIABLE = re.compile(r"%\{([^}]*)\}")
SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
KEY = re.compile(r"^(\s*)([^=;#\s][^=]*?)\s*=")

_ENV = jinja2.Environment(
    variable_start_string="%{",
    variable_end_string="}",
    block_start_string="\x00%<",
    block_end_string=">%\x00",
    comment_start_string="\x00#<",
    comment_end_string=">#\x00",
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


class ConfigTemplateError(ValueError):
    """The release's config.ini uses a variable the program does not fill."""


@dataclass(frozen=True)
class NodeValues:
    """The values of every `%{...}` variable for one server of one role."""

    cluster_name: str
    home_dir: str
    app_dir: str
    data_dirs: str
    slog_dir: str
    meta_server_list: str
    zk_server_list: str
    hdfs_service_args: str
    primary_interface: str

    def variables(self) -> dict[str, str]:
        return {
            "cluster.name": self.cluster_name,
            "home.dir": self.home_dir,
            "app.dir": self.app_dir,
            "data.dirs": self.data_dirs,
            "slog.dir": self.slog_dir,
            "meta.server.list": self.meta_server_list,
            "zk.server.list": self.zk_server_list,
            "hdfs_service_args": self.hdfs_service_args,
        }


def _nest(flat: Mapping[str, str]) -> dict:
    """{"app.dir": v} -> {"app": {"dir": v}}: how jinja2 reads a dotted name."""
    nested: dict = {}
    for name, value in flat.items():
        node = nested
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


@lru_cache(maxsize=16)
def _compile(template_text: str) -> jinja2.Template:
    return _ENV.from_string(template_text)


def _check_known(template_text: str, known: Iterable[str]) -> None:
    known = set(known)
    for number, line in enumerate(template_text.splitlines(), start=1):
        for name in VARIABLE.findall(line):
            if name.strip() not in known:
                raise ConfigTemplateError(
                    f"config.ini line {number} uses %{{{name}}}, which this program does not "
                    f"know how to fill (it fills {', '.join(sorted(known))}); this release is "
                    "newer than the program: add the variable to components/render/config_ini.py"
                )


def apply_overrides(text: str, overrides: Iterable[Mapping[str, Mapping[str, str]]]) -> str:
    """Set `[section] key = value` for every override, keeping comments and order.

    An existing key is edited in place; a new key goes after the last entry of
    its section; a new section is appended at the end.
    """
    lines = text.splitlines()
    for layer in overrides:
        for section, entries in layer.items():
            for key, value in entries.items():
                lines = _set_key(lines, section, key, value)
    return "\n".join(lines) + "\n"


def _set_key(lines: list[str], section: str, key: str, value: str) -> list[str]:
    current = None
    last_entry_in_section = None
    for index, line in enumerate(lines):
        header = SECTION.match(line)
        if header:
            current = header.group(1).strip()
            if current == section:
                last_entry_in_section = index
            continue
        if current != section:
            continue
        entry = KEY.match(line)
        if entry:
            last_entry_in_section = index
            if entry.group(2).strip() == key:
                lines = list(lines)
                lines[index] = f"{entry.group(1)}{key} = {value}"
                return lines
    lines = list(lines)
    if last_entry_in_section is None:
        while lines and not lines[-1].strip():
            lines.pop()
        return lines + ["", f"[{section}]", f"{key} = {value}"]
    indent = KEY.match(lines[last_entry_in_section])
    prefix = indent.group(1) if indent else ""
    lines.insert(last_entry_in_section + 1, f"{prefix}{key} = {value}")
    return lines


def render_config_ini(
    template_text: str,
    values: NodeValues,
    overrides: Iterable[Mapping[str, Mapping[str, str]]] = (),
) -> str:
    """The config.ini one server runs with: variables filled, then overrides."""
    variables = values.variables()
    _check_known(template_text, variables)
    rendered = _compile(template_text).render(_nest(variables))
    edits = [{"network": {"primary_interface": values.primary_interface}}, *overrides]
    rendered = apply_overrides(rendered, edits)
    leftover = rendered.find("%{")
    if leftover >= 0:
        line = rendered.count("\n", 0, leftover) + 1
        raise ConfigTemplateError(f"rendered config.ini still holds '%{{' at line {line}")
    return rendered


def read_sections(text: str) -> dict[str, dict[str, str]]:
    """{section: {key: value}} of a config.ini; the last of duplicate keys wins
    (rDSN's parser keeps one value per key). Comments start with ; or #."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        header = SECTION.match(line)
        if header:
            current = sections.setdefault(header.group(1).strip(), {})
            continue
        entry = KEY.match(line)
        if entry and current is not None:
            value = line[entry.end():]
            for mark in (";", "#"):
                value = value.split(mark, 1)[0]
            current[entry.group(2).strip()] = value.strip()
    return sections


def declared_tables(text: str) -> list[str]:
    """Tables a fresh MetaServer creates: the `[meta_server.apps.*]` sections
    (first in v2.5.0's src/server/config.ini, `stat`; v2.4.0 declares none)."""
    return [entries.get("app_name") or section.split(".", 2)[2]
            for section, entries in read_sections(text).items() if section.startswith("meta_server.apps.")]


def content_hash(text: str) -> str:
    """The short hash that names a rendered file in triggers and outputs."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]
