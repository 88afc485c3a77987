"""The program reads and edits config.ini as rDSN's parser does (src/utils/configuration.cpp,
v2.5.0 lines 131-255; strings.cpp trim_string), checked against the stand-in server's own
parser of that code (tests/e2e/standin/pegasus_server.py, Config)."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.render.config_ini import apply_overrides, read_sections
from tests.e2e.standin.pegasus_server import Config, Refusal
from tests.support.package_builder import FIXTURES

# (config.ini text, what rDSN stores), each from a line of configuration.cpp at v2.5.0
READS = [
    # 187-197: a duplicate key keeps its first value
    ("[a]\nk = 1\nk = 2\n", {"a": {"k": "1"}}),
    # 141: a line ends at \n only; other line breaks are characters of the value
    ("[a]\nk = x\x85y\n", {"a": {"k": "x\x85y"}}),
    ("[a]\nk = x\u2028[b]\nj = 2\n", {"a": {"k": "x\u2028[b]", "j": "2"}}),
    ("[a]\nk = x\x0cy\x0b\n", {"a": {"k": "x\x0cy\x0b"}}),  # trim_string strips " \t\r\n" only
    # 142-152: ; and # start comments unless escaped with ^
    ("[a]\nk = a^;b ; comment\nj = c^#d#e\n", {"a": {"k": "a;b", "j": "c#d"}}),
    # 222-227: a section is named by what lies before the first ], trimmed
    ("[ a ] trailing words\nk\n", {"a": {"k": ""}}),  # 165: a key without = has an empty value
    # 136: leading blanks, tabs and \r are skipped; trim_string drops \r behind
    ("\r[a]\r\n\tk = v \r\n", {"a": {"k": "v"}}),
    # 207: a value %...% is an argument not given: empty
    ("[a]\nk = %port%\nj = %%\n", {"a": {"k": "", "j": "%%"}}),
]

REFUSED = [
    "[a]\n[a]\n",  # 232: a section defined twice
    "k = v\n",  # 176: a key before any section
    "[a=b]\n",  # 168: a line that starts with [ and holds =
    "[a]\n = v\n",  # 184: an empty key
    "[ ]\n",  # 228: an empty section name
    "[a\nk = v\n",  # 223: no ]
]


def standin_reads(text: str, tmp_path: Path) -> dict[str, dict[str, str]]:
    path = tmp_path / "config.ini"
    path.write_bytes(text.encode())
    return {s: {k: v for k, (v, _) in keys.items()} for s, keys in Config(str(path)).sections.items()}


@pytest.mark.parametrize("text,stored", READS, ids=[repr(t)[:40] for t, _ in READS])
def test_the_program_reads_config_ini_as_rdsn(text, stored, tmp_path):
    assert read_sections(text) == stored
    assert standin_reads(text, tmp_path) == stored


@pytest.mark.parametrize("text", REFUSED, ids=[repr(t) for t in REFUSED])
def test_what_rdsn_refuses_is_refused(text, tmp_path):
    with pytest.raises(ValueError, match="rDSN refuses"):
        read_sections(text)
    with pytest.raises(Refusal):
        standin_reads(text, tmp_path)


def test_an_edit_keeps_every_line_whole(tmp_path):
    # A release's comment holding U+2028 stays one line: the edit splits at \n only.
    text = "[core]\n; note\u2028[meta_server]\ntool = nativerun\n"
    out = apply_overrides(text, [{"core": {"tool": "fastrun"}}])
    assert out == "[core]\n; note\u2028[meta_server]\ntool = fastrun\n"
    assert standin_reads(out, tmp_path) == {"core": {"tool": "fastrun"}}


def test_a_key_without_a_value_is_edited_where_rdsn_reads_it(tmp_path):
    out = apply_overrides("[core]\nflag\nother = 1\n", [{"core": {"flag": "on"}}])
    assert read_sections(out)["core"]["flag"] == "on" == standin_reads(out, tmp_path)["core"]["flag"]


def test_the_first_of_duplicate_keys_is_the_one_edited(tmp_path):
    out = apply_overrides("[core]\nk = 1\nk = 2\n", [{"core": {"k": "3"}}])
    assert read_sections(out)["core"]["k"] == "3" == standin_reads(out, tmp_path)["core"]["k"]


def test_comment_marks_in_a_value_reach_the_server(tmp_path):
    out = apply_overrides("[core]\nk = 1\n", [{"core": {"k": "a;b#c^;d"}}])
    assert read_sections(out)["core"]["k"] == "a;b#c^;d" == standin_reads(out, tmp_path)["core"]["k"]


OVERRIDES = {"pegasus.server": {"rocksdb_write_buffer_size": "134217728", "a]b": "x", "x^y": "tab\tinside"},
             "meta_server.apps.stat": {"app_name": "stat"}, "task.RPC_FD_FAILURE_DETECTOR_PING": {"x": "a;b#c"},
             "odd[name": {"key": "value with spaces"}, "replication": {"gc_interval_ms": "45000"}}


@pytest.mark.parametrize("fixture", ["config-2.4.ini", "config-2.5.ini", "config-2.6.ini"])
def test_an_accepted_override_is_what_the_server_reads_and_changes_nothing_else(fixture, tmp_path):
    template = (FIXTURES / fixture).read_text()
    before = standin_reads(template, tmp_path)
    after = standin_reads(apply_overrides(template, [OVERRIDES]), tmp_path)
    for section, entries in OVERRIDES.items():
        assert {k: after[section][k] for k in entries} == entries, section
    untouched = {(s, k): v for s, keys in before.items() for k, v in keys.items()
                 if k not in OVERRIDES.get(s, {})}
    assert {(s, k): after[s][k] for s, k in untouched} == untouched
    assert set(after) == set(before) | set(OVERRIDES)
