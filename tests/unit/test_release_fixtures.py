"""Each config fixture against the real src/server/config.ini of its tag (when the mirror exists)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.package_builder import FIXTURES

MIRROR = Path("/work/.mirror/apache+incubator-pegasus/repo")
TAGS = {"config-2.4.ini": "v2.4.0", "config-2.5.ini": "v2.5.0", "config-2.6.ini": "HEAD"}
MODELLED = [("meta_server", k) for k in ("min_live_node_count_for_unfreeze", "stable_rs_min_running_seconds",
                                         "max_succssive_unstable_restart", "replica_assign_delay_ms_for_dropouts",
                                         "meta_function_level_on_start", "distributed_lock_service_parameters",
                                         "cluster_root", "server_list")] + \
    [("replication", k) for k in ("fd_check_interval_seconds", "fd_beacon_interval_seconds", "fd_lease_seconds",
                                  "fd_grace_seconds", "mutation_2pc_min_replica_count", "data_dirs", "slog_dir")] + \
    [("network", "primary_interface"), ("network", "enable_udp"), ("zookeeper", "hosts_list"),
     ("zookeeper", "timeout_ms"), ("zookeeper", "logfile"), ("core", "data_dir"),
     ("pegasus.server", "perf_counter_sink"), ("pegasus.server", "prometheus_port"),
     ("pegasus.collector", "available_detect_app"), ("apps.meta", "ports"), ("apps.replica", "ports"),
     ("apps.collector", "ports")]


def parse(text: str) -> dict[str, dict[str, str]]:
    """Sections -> key -> value, comments cut at ; or # as rDSN does; first key wins."""
    sections, current = {}, None
    for raw in text.split("\n"):
        line = re.split(r"[;#]", raw.strip(), maxsplit=1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            current = sections.setdefault(line[1:line.index("]")].strip(), {})
        else:
            key, _, val = line.partition("=")
            current.setdefault(key.strip(), val.strip())
    return sections


def variables(sections) -> dict[tuple[str, str], list[str]]:
    return {(s, k): re.findall(r"%\{[^}]*\}", k + "=" + v) for s, keys in sections.items()
            for k, v in keys.items() if "%{" in k + v}


def upstream(tag: str) -> str:
    if not (MIRROR / "HEAD").exists():
        pytest.skip(f"the apache/incubator-pegasus mirror is absent at {MIRROR}: cannot compare with upstream")
    return subprocess.run(["git", "-C", str(MIRROR), "show", f"{tag}:src/server/config.ini"], check=True,
                          capture_output=True, text=True).stdout


@pytest.mark.parametrize("fixture", sorted(TAGS))
def test_fixture_matches_its_tag(fixture):
    real, ours = parse(upstream(TAGS[fixture])), parse((FIXTURES / fixture).read_text())
    assert variables(ours) == variables(real)
    assert sorted(s for s in ours if s.startswith("meta_server.apps.")) == \
        sorted(s for s in real if s.startswith("meta_server.apps."))
    for section in ("task.RPC_FD_FAILURE_DETECTOR_PING", "task.RPC_FD_FAILURE_DETECTOR_PING_ACK"):
        assert ours[section]["rpc_call_channel"] == real[section]["rpc_call_channel"] == "RPC_CHANNEL_UDP"
    for app in (s for s in real if s.startswith("meta_server.apps.")):
        assert ours[app] == real[app]
    for section, key in MODELLED:
        assert ours.get(section, {}).get(key) == real.get(section, {}).get(key), f"[{section}] {key}"
