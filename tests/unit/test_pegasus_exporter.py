"""pegasus_exporter (components/render/pegasus_exporter.py): 2.6 JSON and ZooKeeper to Prometheus text.

The JSON is built from the shape master's source writes (apache/incubator-pegasus
db756dcdf24e2af6169659a67548501ed61f106c: `src/utils/metrics.cpp` 558-567 for the
top-level object, 125-210 for entities, `src/utils/metrics.h` 930-1015 and 1367-1392
for a metric's fields), served by a local HTTP server standing for a Pegasus role;
ZooKeeper is Debian's real one. Output is read back with prometheus_client's parser.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

EXPORTER = Path(__file__).resolve().parents[2] / "components" / "render" / "pegasus_exporter.py"
spec = importlib.util.spec_from_file_location("pegasus_exporter_under_test", EXPORTER)
exporter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(exporter)


def snapshot(role="replica") -> dict:
    """A ReplicaServer's /metrics?detail=true as metric_registry::take_snapshot writes it."""
    return {
        "cluster": "c1", "role": role, "host": "pegasus-replica-0", "port": 34801, "timestamp_ns": 1700000000000000000,
        "entities": [
            {"type": "server", "id": "server", "attributes": {}, "metrics": [
                {"type": "Gauge", "name": "total_replicas", "unit": "Replicas", "desc": "The total number", "value": 8},
                {"type": "Counter", "name": "read_failed_requests", "unit": "Requests", "desc": "failed", "value": 3}]},
            {"type": "replica", "id": "replica@2.5", "attributes": {"table_id": "2", "partition_id": "5"}, "metrics": [
                {"type": "Counter", "name": "put_requests", "unit": "Requests", "desc": "puts", "value": 120},
                {"type": "Percentile", "name": "put_latency_ns", "unit": "NanoSeconds", "desc": "latency",
                 "p50": 1000, "p90": 2000, "p95": 3000, "p99": 4000, "p999": 5000}]},
            {"type": "disk", "id": "disk@ssd1", "attributes": {"tag": "ssd1", "data_dir": "/home/pegasus/ssd1/c1"},
             "metrics": [{"type": "Gauge", "name": "disk_capacity_avail_mb", "unit": "MegaBytes", "desc": "avail",
                          "value": 1024}]},
        ]}


def parse(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(families, name):
    return [(s.name, s.labels, s.value) for s in families[name].samples]


def test_json_becomes_typed_families_with_entity_labels():
    registry = exporter.CollectorRegistry(auto_describe=False)

    class One:
        def collect(self):
            return exporter.pegasus_families(snapshot(), {})
    registry.register(One())
    families = parse(exporter.generate_latest(registry).decode())
    assert families["pegasus_total_replicas"].type == "gauge"
    assert samples(families, "pegasus_total_replicas") == [
        ("pegasus_total_replicas", {"cluster": "c1", "role": "replica", "entity": "server"}, 8.0)]
    assert families["pegasus_put_requests"].type == "counter"
    assert samples(families, "pegasus_put_requests") == [("pegasus_put_requests_total", {
        "cluster": "c1", "role": "replica", "entity": "replica", "partition_id": "5", "table_id": "2"}, 120.0)]
    latency = families["pegasus_put_latency_ns"]
    assert latency.type == "summary"
    assert {s.labels["quantile"]: s.value for s in latency.samples} == {
        "0.5": 1000.0, "0.9": 2000.0, "0.95": 3000.0, "0.99": 4000.0, "0.999": 5000.0}
    assert samples(families, "pegasus_disk_capacity_avail_mb")[0][1]["data_dir"] == "/home/pegasus/ssd1/c1"
    assert samples(families, "pegasus_server_info")[0][1] == {
        "cluster": "c1", "role": "replica", "host": "pegasus-replica-0", "port": "34801"}


@pytest.mark.parametrize("body", [b"<html>", b'{"cluster": "c"}', b'{"entities": [{"type": 1}]}'])
def test_answers_not_in_the_registry_shape_are_refused(body):
    with pytest.raises(exporter.ShapeError):
        exporter.parse_snapshot(body)


class FakeRole:
    """A Pegasus role's HTTP server: /metrics answers, and /meta/apps for a MetaServer."""

    def __init__(self):
        self.metrics_body = json.dumps(snapshot()).encode()
        self.apps_status = 404
        self.apps_body = b""
        self.paths = []
        role = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                role.paths.append(self.path)
                if self.path.startswith("/metrics"):
                    status, body = 200, role.metrics_body
                elif self.path == "/meta/apps":
                    status, body = role.apps_status, role.apps_body
                else:
                    status, body = 404, b""
                self.send_response(status)
                if status == 307:
                    self.send_header("Location", "http://10.0.0.1:34601/meta/apps")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.target = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def running(tmp_path):
    role = FakeRole()
    targets = tmp_path / "pegasus-2.6.json"
    targets.write_text(json.dumps([{"targets": [role.target], "labels": {"job_role": "replica"}}]))
    server = exporter.serve("127.0.0.1:0", exporter.Targets([str(tmp_path / "*.json")]), 2.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield role, targets, base
    server.shutdown()
    server.server_close()
    role.close()


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_probe_converts_a_listed_server_and_refuses_others(running, tmp_path):
    role, targets, base = running
    status, text = fetch(f"{base}/probe?target={role.target}")
    assert status == 200
    families = parse(text)
    assert samples(families, "pegasus_up")[0][2] == 1.0
    assert samples(families, "pegasus_put_requests")[0][2] == 120.0
    assert role.paths == ["/metrics?detail=true"]  # a replica: no /meta/apps
    assert fetch(f"{base}/probe?target=127.0.0.1:1")[0] == 403
    assert fetch(f"{base}/probe?target=127.0.0.1:1;rm")[0] == 400
    assert fetch(f"{base}/probe?module=snmp&target={role.target}")[0] == 400
    assert fetch(f"{base}/metrics")[0] == 200


def test_a_server_added_to_the_targets_file_is_probed_without_a_restart(running):
    role, targets, base = running
    other = FakeRole()
    try:
        assert fetch(f"{base}/probe?target={other.target}")[0] == 403
        targets.write_text(json.dumps([{"targets": [role.target, other.target]}]))
        assert fetch(f"{base}/probe?target={other.target}")[0] == 200
    finally:
        other.close()


def test_a_down_or_wrong_server_gives_pegasus_up_0(running):
    role, targets, base = running
    role.metrics_body = b"not json"
    families = parse(fetch(f"{base}/probe?target={role.target}")[1])
    assert samples(families, "pegasus_up")[0][2] == 0.0 and "pegasus_total_replicas" not in families
    role.close()
    families = parse(fetch(f"{base}/probe?target={role.target}")[1])
    assert samples(families, "pegasus_up")[0][2] == 0.0


def test_a_leading_meta_server_names_its_tables_and_a_follower_does_not(running):
    role, targets, base = running
    role.metrics_body = json.dumps({**snapshot("meta"), "entities": [
        {"type": "table", "id": "table@2", "attributes": {"table_id": "2"}, "metrics": [
            {"type": "Gauge", "name": "healthy_partitions", "unit": "Partitions", "desc": "h", "value": 8}]}]}).encode()
    # meta_http_service.cpp's /meta/apps: general_info keyed by app id
    role.apps_status, role.apps_body = 200, json.dumps({"general_info": {"2": {
        "app_id": "2", "status": "AVAILABLE", "app_name": "temp", "app_type": "pegasus", "partition_count": "8"}},
        "summary": {"total_app_count": "1"}}).encode()
    families = parse(fetch(f"{base}/probe?target={role.target}")[1])
    assert samples(families, "pegasus_table_info") == [("pegasus_table_info", {"table_id": "2", "table_name": "temp"},
                                                        1.0)]
    assert samples(families, "pegasus_healthy_partitions")[0][1]["table_id"] == "2"
    role.apps_status, role.apps_body = 307, b""
    assert "pegasus_table_info" not in parse(fetch(f"{base}/probe?target={role.target}")[1])


MNTR_LEADER = (  # ZooKeeper 3.8's mntr (tab-separated), trimmed
    "zk_version\t3.8.0-debian--1, built on 2023-01-01 00:00 UTC\nzk_server_state\tleader\n"
    "zk_avg_latency\t0.5\nzk_znode_count\t42\nzk_synced_followers\t2\nzk_quorum_size\t3\n")


def test_mntr_and_ruok_become_zookeeper_series():
    registry = exporter.CollectorRegistry(auto_describe=False)

    class One:
        def collect(self):
            return exporter.zookeeper_families("imok", MNTR_LEADER)
    registry.register(One())
    families = parse(exporter.generate_latest(registry).decode())
    assert samples(families, "zookeeper_ruok")[0][2] == 1.0 and samples(families, "zookeeper_serving")[0][2] == 1.0
    states = {s[1]["state"]: s[2] for s in samples(families, "zookeeper_server_state")}
    assert states == {"leader": 1.0, "follower": 0.0, "observer": 0.0, "standalone": 0.0}
    assert samples(families, "zookeeper_synced_followers")[0][2] == 2.0
    assert samples(families, "zookeeper_quorum_size")[0][2] == 3.0
    assert samples(families, "zookeeper_info")[0][1]["version"].startswith("3.8.0")


def test_a_zookeeper_without_quorum_is_not_serving():
    families = {f.name: f for f in exporter.zookeeper_families(
        "imok", "This ZooKeeper instance is not currently serving requests\n")}
    assert families["zookeeper_ruok"].samples[0].value == 1
    assert families["zookeeper_serving"].samples[0].value == 0 and "zookeeper_server_state" not in families
    assert {f.name: f for f in exporter.zookeeper_families(None, None)}["zookeeper_ruok"].samples[0].value == 0


def test_probes_a_real_zookeeper(zookeeper_server, tmp_path):
    target = zookeeper_server.hosts.split(",")[0]
    (tmp_path / "zookeeper.json").write_text(json.dumps([{"targets": [target]}]))
    status, body = exporter.probe_answer(f"module=zookeeper&target={target}",
                                         exporter.Targets([str(tmp_path / "zookeeper.json")]), 3.0)
    families = parse(body.decode())
    assert status == 200 and samples(families, "zookeeper_ruok")[0][2] == 1.0
    assert samples(families, "zookeeper_serving")[0][2] == 1.0
    assert {s[1]["state"] for s in samples(families, "zookeeper_server_state") if s[2] == 1.0} == {"standalone"}
    assert samples(families, "zookeeper_znode_count")[0][2] > 0
