"""`configOverrides` and each role's: `{section: {key: value}}` applied to the release's config.ini.

A name is accepted only when rDSN's parser reads it back as written (rdsn_ini.py,
src/utils/configuration.cpp): a section or key holding a line break, `]`, `=` or a
comment mark would write other sections and keys into config.ini, or make the
server refuse the file. A value must be one line. Keys the program fills itself
are refused, with the reason.
"""

from __future__ import annotations

from typing import Any, Mapping

from components.spec import rdsn_ini
from components.spec.reader import ConfigReader

# Keys the program fills itself; an override of one would break the cluster.
OWNED_KEYS = {
    ("core", "data_dir"): "it is %{app.dir}, derived from appDir",
    ("meta_server", "server_list"): "it is the MetaServer list the program provisions",
    ("meta_server", "cluster_root"): "it is /pegasus/<clusterName>, which the ZooKeeper guard protects",
    ("meta_server", "distributed_lock_service_parameters"): "it is the lock under the cluster root",
    ("replication", "data_dirs"): "it is made from replica.dataDisks",
    ("replication", "slog_dir"): "it is made from replica.slogDisk",
    ("replication", "data_dirs_black_list_file"): "it lives under homeDir",
    ("zookeeper", "hosts_list"): "it is the ZooKeeper ensemble (zookeeper.servers or the provisioned one)",
    ("network", "primary_interface"): "set network.primaryInterface instead",
}
OWNED_SECTIONS = {"pegasus.clusters": "it maps clusterName to the MetaServer list"}

SECTION_FIX = "write the section's name as the release's config.ini spells it between [ and ], e.g. pegasus.server"
KEY_FIX = "write the key as the release's config.ini spells it before its =, e.g. rocksdb_write_buffer_size"


def read_overrides(r: ConfigReader, raw: Any, key: str) -> dict[str, dict[str, str]]:
    """`raw` validated into {section: {key: value}}; problems are recorded under `key`."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        r.problem(key, "must map section names to {key: value}",
                  "e.g. {replication: {mutation_2pc_min_replica_count: 2}}")
        return {}
    result: dict[str, dict[str, str]] = {}
    for section, entries in raw.items():
        section = str(section)
        name_problem = rdsn_ini.section_name_problem(section)
        if name_problem:
            r.problem(key, f"section name {section!r} {name_problem}", SECTION_FIX)
            continue
        where = f"{key}.{section}"
        if section in OWNED_SECTIONS:
            r.problem(where, f"the program owns this section: {OWNED_SECTIONS[section]}", "remove the override")
            continue
        if not isinstance(entries, Mapping):
            r.problem(where, "must map keys to values", f"e.g. {{{section}: {{some_key: value}}}}")
            continue
        clean = {}
        for name, value in entries.items():
            name = str(name)
            checked = _value(r, where, section, name, value)
            if checked is not None:
                clean[name] = checked
        result[section] = clean
    return result


def _value(r: ConfigReader, where: str, section: str, name: str, value: Any) -> str | None:
    """The value config.ini gets, or None after recording what is wrong (`where`: key.section)."""
    name_problem = rdsn_ini.key_name_problem(name)
    if name_problem:
        r.problem(where, f"key name {name!r} {name_problem}", KEY_FIX)
        return None
    if (section, name) in OWNED_KEYS:
        r.problem(f"{where}.{name}", f"the program owns this key: {OWNED_KEYS[(section, name)]}",
                  "remove the override")
        return None
    if isinstance(value, (dict, list)) or value is None:
        r.problem(f"{where}.{name}", "must be a single value", "write a string, number or boolean")
        return None
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if rdsn_ini.value_has_line_break(text) or "%{" in text:
        r.problem(f"{where}.{name}", "must be one line with no %{...} variable", "write the literal value")
        return None
    control = rdsn_ini.value_control_character(text)
    if control:
        r.problem(f"{where}.{name}", f"holds the control character {control}", "write printable text")
        return None
    return text
