"""configOverrides: the keys the program owns, and names and values as rDSN's parser takes them
(src/utils/configuration.cpp, v2.5.0; components/rdsn_ini.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from components.spec.reader import SpecError
from components.spec.validation import build_spec
from tests.support.package_builder import build_package

SECRET = {"pegasus:ssh"}
WHERE = ("configOverrides", "meta.configOverrides", "replica.configOverrides", "collector.configOverrides")

# The keys config.ini gets from the program (README, "Keys the program owns"), listed here
# rather than read from spec.OWNED_KEYS, so that dropping one there fails this test: a
# user's override of it would otherwise win over the program's value.
OWNED = [("core", "data_dir"), ("meta_server", "server_list"), ("meta_server", "cluster_root"),
         ("meta_server", "distributed_lock_service_parameters"), ("replication", "data_dirs"),
         ("replication", "slog_dir"), ("replication", "data_dirs_black_list_file"), ("zookeeper", "hosts_list"),
         ("network", "primary_interface")]


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return build_package(tmp_path_factory.mktemp("pkg"), server="placeholder")


def config(package: Path, where: str, overrides) -> dict:
    raw = {
        "clusterName": "c1",
        "package": str(package),
        "ssh": {"privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n", "publicKey": "ssh-ed25519 AAAAC3Nz me@host"},
        "network": {"adminCidr": "203.0.113.0/24"},
    }
    if where == "configOverrides":
        raw["configOverrides"] = copy.deepcopy(overrides)
    else:
        raw[where.split(".")[0]] = {"configOverrides": copy.deepcopy(overrides)}
    return raw


def problems(package: Path, where: str, overrides) -> list[str]:
    with pytest.raises(SpecError) as error:
        build_spec(config(package, where, overrides), stack="dev", secret_keys=SECRET)
    return error.value.problems


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("section,key", OWNED, ids=[f"{s}.{k}" for s, k in OWNED])
def test_every_key_the_program_fills_is_refused_in_every_override(package, where, section, key):
    found = problems(package, where, {section: {key: "/x"}})
    assert [p for p in found if p.startswith(f"pegasus:{where}.{section}.{key}: the program owns this key")], found


@pytest.mark.parametrize("where", WHERE)
def test_the_clusters_section_is_refused_in_every_override(package, where):
    found = problems(package, where, {"pegasus.clusters": {"c1": "x"}})
    assert [p for p in found if p.startswith(f"pegasus:{where}.pegasus.clusters: the program owns this section")]


# (section name, a fragment of why it is refused)
BAD_SECTIONS = [
    ("core]\n[meta_server", "line break (U+000A)"),  # issue 19: would write [meta_server] cluster_root
    ("core]x", "holds ']', which ends a section's name: rDSN would read the section [core]"),
    ("meta_server=x", "holds '='"),
    ("pegasus;server", "holds ';', which starts a comment"),
    ("pegasus#server", "holds '#', which starts a comment"),
    (" core", "starts or ends with a blank"),
    ("core\t", "starts or ends with a blank"),
    ("core\r", "line break (U+000D)"),
    ("core\x85x", "line break (U+0085)"),
    ("core\u2028x", "line break (U+2028)"),
    ("co\x00re", "control character U+0000"),
    ("co\x1bre", "control character U+001B"),
    ("%{cluster.name}", "%{"),
    ("", "is empty"),
]


@pytest.mark.parametrize("section,why", BAD_SECTIONS, ids=[repr(s) for s, _ in BAD_SECTIONS])
def test_a_section_name_rdsn_would_not_read_back_is_refused(package, section, why):
    for where in WHERE:
        found = problems(package, where, {section: {"cluster_root": "/other"}})
        mine = [p for p in found if p.startswith(f"pegasus:{where}: section name {section!r} ")]
        assert mine and why in mine[0], found
        assert "\n" not in mine[0] and "\u2028" not in mine[0]  # the message stays one line
        assert "e.g. pegasus.server" in mine[0]


BAD_KEYS = [
    ("x\ncluster_root", "line break (U+000A)"),
    ("a=b", "holds '='"),
    ("a;b", "holds ';'"),
    ("a#b", "holds '#'"),
    ("[meta_server", "starts with '['"),
    (" key", "starts or ends with a blank"),
    ("key ", "starts or ends with a blank"),
    ("key\x85", "line break (U+0085)"),
    ("key\u2029", "line break (U+2029)"),
    ("k\x00ey", "control character U+0000"),
    ("", "is empty"),
]


@pytest.mark.parametrize("key,why", BAD_KEYS, ids=[repr(k) for k, _ in BAD_KEYS])
def test_a_key_name_rdsn_would_not_read_back_is_refused(package, key, why):
    found = problems(package, "replica.configOverrides", {"pegasus.server": {key: "1"}})
    mine = [p for p in found if p.startswith(f"pegasus:replica.configOverrides.pegasus.server: key name {key!r} ")]
    assert mine and why in mine[0], found
    assert "e.g. rocksdb_write_buffer_size" in mine[0]


# Every character Python's str.splitlines() breaks at: the existing message, "one line".
LINE_BREAK_VALUES = ["a\nb", "a\rb", "a\r\nb", "a\x0bb", "a\x0cb", "a\x1cb", "a\x1db", "a\x1eb", "a\x85b",
                     "a\u2028b", "a\u2029b", "trailing\r"]


@pytest.mark.parametrize("value", LINE_BREAK_VALUES, ids=[repr(v) for v in LINE_BREAK_VALUES])
def test_every_line_break_in_a_value_is_refused(package, value):
    found = problems(package, "configOverrides", {"core": {"x": value}})
    assert "pegasus:configOverrides.core.x: must be one line with no %{...} variable; write the literal value" \
        in found, found


def test_a_control_character_in_a_value_is_refused(package):
    found = problems(package, "configOverrides", {"core": {"x": "a\x00b"}})
    assert [p for p in found if p.startswith("pegasus:configOverrides.core.x: holds the control character U+0000")]


# Names rDSN reads back as written, odd ones included (a `]` inside a key, `[` inside a section).
GOOD = {"pegasus.server": {"rocksdb_write_buffer_size": "134217728", "a]b": "x", "x^y": "tab\tinside"},
        "meta_server.apps.stat": {"app_name": "stat"}, "task.RPC_FD_FAILURE_DETECTOR_PING": {"x": "a;b#c"},
        "odd[name": {"key": "value with spaces"}}


def test_names_rdsn_reads_back_as_written_are_accepted(package):
    for where in WHERE:
        spec = build_spec(config(package, where, GOOD), stack="dev", secret_keys=SECRET)
        layer = spec.config_overrides if where == "configOverrides" else \
            getattr(spec, where.split(".")[0]).config_overrides
        assert layer == GOOD
