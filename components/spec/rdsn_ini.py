"""config.ini as rDSN reads it, and the names and values an override may use.

Every Pegasus role reads its config.ini with rDSN's parser
(`configuration::load`, src/utils/configuration.cpp at v2.5.0, lines 131-255;
the same code at v2.4.0 in src/rdsn/src/utils/configuration.cpp and on
master). Line by line:

- a line ends at `\\n` only (line 141); leading blanks, tabs and `\\r` are
  skipped (136);
- `#` or `;` starts a comment, unless the character before it is `^`, which
  the pair then collapses to (142-152);
- after that, an empty line is skipped (162); a line that starts with `[`
  and holds `=` is an error (168); a line that starts with `[` is a section,
  named by what lies before the first `]`, trimmed, and must not be empty
  or defined before (222-236); any other line is a key: up to the first `=`,
  trimmed, must not be empty, and a line without `=` is a key with an empty
  value (164-185);
- a key before any section is an error (176); a key seen twice in a section
  keeps its first value (187-197); a value `%...%` (more than two
  characters) reads as empty (207).

`trim_string` (src/utils/strings.cpp) strips ` \\t` in front and ` \\t\\r\\n`
behind. The program edits config.ini (config_ini.py) and reads it back with
this module, so what it believes a server runs with is what that server reads.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

LEADING_SPACE = " \t"  # kLeadingSpaces
TRAILING_SPACE = " \t\r\n"  # kTrailingSpaces
LINE_START_SKIP = " \t\r"  # configuration.cpp:136
COMMENT_MARKS = "#;"
ESCAPE = "^"
# Everything Python's str.splitlines() ends a line at: a name or a value holding one
# would read as two lines to some reader (an editor, a diff, the preview).
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


class IniError(ValueError):
    """A config.ini that rDSN refuses to load (the server exits at start)."""


@dataclass(frozen=True)
class Line:
    kind: str  # "blank", "section", "entry" or "error"
    name: str = ""  # the section's name, or the entry's key
    value: str = ""  # an entry's value as rDSN stores it
    indent: str = ""  # what was skipped in front (kept when the line is edited)
    why: str = ""  # an error's cause


def _trim(text: str) -> str:
    return text.lstrip(LEADING_SPACE).rstrip(TRAILING_SPACE)


def _strip_comment(text: str) -> str:
    """The line up to its first comment mark; `^#` and `^;` collapse to `#` and `;`.
    A NUL ends the text as it ends a C string."""
    out: list[str] = []
    for index, char in enumerate(text):
        if char in COMMENT_MARKS:
            if index > 0 and text[index - 1] == ESCAPE:
                out[-1] = char
                continue
            break
        out.append(char)
    return "".join(out).split("\0", 1)[0]


def parse_line(raw: str) -> Line:
    """One line of config.ini (without its `\\n`), as configuration::load takes it."""
    body = raw.lstrip(LINE_START_SKIP)
    indent = raw[:len(raw) - len(body)]
    text = _strip_comment(body)
    if text == "":
        return Line("blank", indent=indent)
    equal = text.find("=")
    if text.startswith("["):
        if equal >= 0:
            return Line("error", indent=indent, why="a line that starts with [ holds =")
        close = text.find("]")
        if close < 0:
            return Line("error", indent=indent, why="a section's [ has no ]")
        name = _trim(text[1:close])
        if not name:
            return Line("error", indent=indent, why="a section without a name")
        return Line("section", name=name, indent=indent)
    key = _trim(text[:equal] if equal >= 0 else text)
    if not key:
        return Line("error", indent=indent, why="a key without a name")
    value = _trim(text[equal + 1:]) if equal >= 0 else ""
    if len(value) > 2 and value.startswith("%") and value.endswith("%"):
        value = ""  # an argument the file was loaded without
    return Line("entry", name=key, value=value, indent=indent)


def lines(text: str) -> list[str]:
    """The file's lines as rDSN splits them (at `\\n` only), without the last empty one."""
    parts = text.split("\n")
    return parts[:-1] if text.endswith("\n") else parts


def read(text: str) -> dict[str, dict[str, str]]:
    """{section: {key: value}}, the first of duplicate keys kept; IniError (naming the
    line) where the server would refuse the file."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for number, raw in enumerate(lines(text), start=1):
        line = parse_line(raw)
        if line.kind == "error":
            raise IniError(f"config.ini line {number} ({raw.strip()!r}): {line.why}; rDSN refuses the file")
        if line.kind == "section":
            if line.name in sections:
                raise IniError(f"config.ini line {number}: section [{line.name}] is defined twice; "
                               "rDSN refuses the file")
            current = sections[line.name] = {}
        elif line.kind == "entry":
            if current is None:
                raise IniError(f"config.ini line {number}: key {line.name!r} comes before any section; "
                               "rDSN refuses the file")
            current.setdefault(line.name, line.value)
    return sections


def escape_value(value: str) -> str:
    """How `value` is written so that rDSN reads it back whole: `#` and `;` would start
    a comment, `^#` and `^;` stand for them."""
    return "".join(f"{ESCAPE}{char}" if char in COMMENT_MARKS else char for char in value)


# ---------------------------------------------------------------- what an override may name


def _character_problem(text: str) -> str | None:
    for char in text:
        if char in LINE_BREAKS:
            return f"holds a line break (U+{ord(char):04X}): what follows it would become lines of its own"
        if unicodedata.category(char) == "Cc" and char != "\t":
            return f"holds the control character U+{ord(char):04X}"
    if "%{" in text:
        return "holds %{, the release template's variable syntax"
    return None


def section_name_problem(name: str) -> str | None:
    """Why `[name]` would not be read back by rDSN as the section `name` (None: it would)."""
    if name == "":
        return "is empty (rDSN refuses a section line without a name)"
    problem = _character_problem(name)
    if problem:
        return problem
    if "]" in name:
        return (f"holds ']', which ends a section's name: rDSN would read the section "
                f"[{_trim(name.split(']', 1)[0])}] and drop the rest of the line")
    if "=" in name:
        return "holds '=': rDSN refuses a config.ini whose section line holds '='"
    for mark in COMMENT_MARKS:
        if mark in name:
            return f"holds '{mark}', which starts a comment in config.ini"
    if _trim(name) != name:
        return "starts or ends with a blank, which rDSN trims: it would name another section"
    line = parse_line(f"[{name}]")
    if line.kind != "section" or line.name != name:
        return "is not read back by rDSN as written"
    return None


def key_name_problem(name: str) -> str | None:
    """Why `name = value` would not be read back by rDSN as the key `name` (None: it would)."""
    if name == "":
        return "is empty (rDSN refuses a key without a name)"
    problem = _character_problem(name)
    if problem:
        return problem
    if "=" in name:
        return "holds '=', which ends a key's name: rDSN would read another key"
    for mark in COMMENT_MARKS:
        if mark in name:
            return f"holds '{mark}', which starts a comment in config.ini"
    if name.startswith("["):
        return "starts with '[': rDSN reads such a line as a section (and refuses it, since it holds '=')"
    if _trim(name) != name:
        return "starts or ends with a blank, which rDSN trims: it would name another key"
    line = parse_line(f"{name} = x")
    if line.kind != "entry" or line.name != name:
        return "is not read back by rDSN as written"
    return None


def value_has_line_break(value: str) -> bool:
    return any(char in LINE_BREAKS for char in value)


def value_control_character(value: str) -> str | None:
    """The first control character (other than a tab or a line break) in `value`, as U+XXXX."""
    for char in value:
        if char not in LINE_BREAKS and char != "\t" and unicodedata.category(char) == "Cc":
            return f"U+{ord(char):04X}"
    return None
