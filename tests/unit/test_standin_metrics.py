"""The stand-in's metrics (tests/e2e/standin/standin_metrics.py), per release.

Pure parts against the rules in docs/metrics-reference.md; then clusters of the
stand-in on loopback with a real ZooKeeper: 2.5 serves Prometheus gauges on
prometheus_port that follow the client load, 2.6 serves JSON entities at /metrics.
"""

from __future__ import annotations

import importlib.util
import json
import re
import uuid
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.standin.standin_client import StandinClient
from tests.support.package_builder import METRICS_STANDIN
from tests.support.zookeeper_server import free_port
from tests.unit.test_standin import Node, alive, get, values, wait_for

spec = importlib.util.spec_from_file_location("standin_metrics_under_test", METRICS_STANDIN)
metrics = importlib.util.module_from_spec(spec)
spec.loader.exec_module(metrics)
exporter_spec = importlib.util.spec_from_file_location(
    "pegasus_exporter_of_standin", Path(__file__).resolve().parents[2] / "components" / "render" / "pegasus_exporter.py")
exporter = importlib.util.module_from_spec(exporter_spec)
exporter_spec.loader.exec_module(exporter)


@pytest.mark.parametrize("full_name, series", [
    # pegasus_counter_reporter.cpp:256-283 (v2.5.0): the comment's own examples
    ("collector*app.pegasus*app_stat_multi_put_qps@1.0.p999", ("collector_app_pegasus_app_stat_multi_put_qpsp999", "1", "0")),
    ("collector*app.pegasus*app_stat_multi_put_qps@1.0", ("collector_app_pegasus_app_stat_multi_put_qps", "1", "0")),
    ("replica*eon.replica*table.level.RPC_RRDB_RRDB_GET.latency(ns)@temp.p999",
     ("replica_eon_replica_table_level_RPC_RRDB_RRDB_GET_latency_ns_p999", "temp", "")),
    ("replica*eon.replica_stub*replica(Count)", ("replica_eon_replica_stub_replica_Count_", "", "")),
    ("collector*app.pegasus*app.stat.get_qps#temp", ("collector_app_pegasus_app_stat_get_qps:temp", "", "")),
    ("replica*server*memused.res(MB)", ("replica_server_memused_res_MB_", "", "")),
])
def test_perf_counter_names_become_series_as_the_reporter_builds_them(full_name, series):
    assert metrics.prometheus_series(full_name) == series


def test_rate_counters_are_per_second_and_percentiles_give_p99_and_p999():
    counts = {"replica*app.pegasus*put_qps@1.0": 0}
    samples = {"replica*app.pegasus*put_latency@1.0": {"p50": 1, "p90": 2, "p95": 3, "p99": 40, "p999": 50}}
    counters = metrics.PerfCounters("replica", lambda: ({"n": 7}, dict(counts), samples))
    counters.snapshot()
    counts["replica*app.pegasus*put_qps@1.0"] = 30
    counters.last_time -= 2.0  # two seconds since the previous snapshot
    snap = counters.snapshot()
    assert snap["n"] == 7 and 14 <= snap["replica*app.pegasus*put_qps@1.0"] <= 15.1
    assert snap["replica*app.pegasus*put_latency@1.0"] == 40 and snap["replica*app.pegasus*put_latency@1.0.p999"] == 50


def test_reporter_text_is_gauges_with_the_reporters_labels_and_keeps_closed_series():
    numbers = {"replica*app.pegasus*put_qps@2.3": 1.0}
    reporter = metrics.PrometheusReporter(metrics.PerfCounters("replica", lambda: (dict(numbers), {}, {})),
                                          "c1", "replica", 34801, 10)
    assert "replica_app_pegasus_put_qps" not in reporter.text()  # nothing before the first snapshot
    reporter.update()
    numbers.clear()  # the replica closed: its counters leave the snapshot, the gauge stays
    reporter.update()
    text = reporter.text()
    assert "# TYPE replica_app_pegasus_put_qps gauge\n" in text
    line = re.search(r"^replica_app_pegasus_put_qps\{.*$", text, re.M).group(0)
    assert re.fullmatch(r'replica_app_pegasus_put_qps\{cluster="c1",host_name="[^"]+",pegasus_job="replica",'
                        r'port="34801",service="pegasus",app="2",partition="3"\} 1\.000000', line), line
    assert "# TYPE exposer_scrapes_total counter" in text and "# HELP replica_app_pegasus_put_qps" not in text


def test_request_stats_count_served_requests_and_failures_by_kind():
    stats = metrics.RequestStats()
    for ns in range(1, 101):
        stats.record(1, 0, "put", ns * 1000, True)
    stats.record(1, 0, "get", 5, True)
    stats.record(-1, -1, "get", 5, False)
    stats.record(-1, -1, "put", 5, False)
    assert stats.count((1, 0), "put") == 100 and stats.count((1, 0), "get") == 1
    assert stats.failures() == {"read": 1, "write": 1}
    p = stats.percentiles((1, 0), "put")
    assert p["p50"] == 50_000 and p["p99"] == 99_000 and p["p999"] == 100_000
    assert stats.percentiles((9, 9), "put") == {"p50": 0, "p90": 0, "p95": 0, "p99": 0, "p999": 0}


def test_partition_health_as_the_meta_classifies_it():
    def part(primary, secondaries, max_count=3):
        return {"primary": primary, "secondaries": secondaries, "max_replica_count": max_count}
    assert metrics.health_status(part("", []), 2) == "dead"
    assert metrics.health_status(part("", ["b"]), 2) == "unreadable"
    assert metrics.health_status(part("a", []), 2) == "unwritable"
    assert metrics.health_status(part("a", ["b"]), 2) == "writable_ill"
    assert metrics.health_status(part("a", ["b", "c"]), 2) == "healthy"


ENTITIES = [{"type": "server", "id": "server", "attributes": {}, "metrics": [
    metrics.metric("total_replicas", "Gauge", "Replicas", "n", 3),
    metrics.metric("get_latency_ns", "Percentile", "NanoSeconds", "l", {"p50": 1, "p90": 2, "p95": 3, "p99": 4,
                                                                       "p999": 5})]},
    {"type": "disk", "id": "disk@ssd1", "attributes": {"tag": "ssd1", "data_dir": "/d1"}, "metrics": [
        metrics.metric("disk_capacity_total_mb", "Gauge", "MegaBytes", "t", 100)]}]


def test_json_answer_has_the_registry_shape_brief_by_default_and_full_with_detail():
    status, body = metrics.metrics_answer("c1", "replica", 34801, ENTITIES, [])
    assert status == 200 and list(body) == ["cluster", "role", "host", "port", "timestamp_ns", "entities"]
    assert body["cluster"] == "c1" and body["port"] == 34801 and isinstance(body["timestamp_ns"], int)
    assert body["entities"][0]["metrics"] == [{"name": "total_replicas", "value": 3},
                                              {"name": "get_latency_ns", "p50": 1, "p90": 2, "p95": 3, "p99": 4,
                                               "p999": 5}]
    _, full = metrics.metrics_answer("", "meta", 34601, ENTITIES, [("detail", "true")])
    assert full["cluster"] == "unknown"
    assert list(full["entities"][0]["metrics"][0]) == ["type", "name", "unit", "desc", "value"]


def test_json_answer_filters_and_refuses_as_the_handler_does():
    def answer(*args):
        return metrics.metrics_answer("c1", "replica", 1, ENTITIES, list(args))
    assert [e["id"] for e in answer(("types", "disk"))[1]["entities"]] == ["disk@ssd1"]
    assert [e["id"] for e in answer(("attributes", "tag,ssd1"))[1]["entities"]] == ["disk@ssd1"]
    assert [e["id"] for e in answer(("metrics", "total_replicas"))[1]["entities"]] == ["server"]
    assert answer(("with_metric_fields", "name"))[1]["entities"][1]["metrics"] == [{"name": "disk_capacity_total_mb"}]
    assert answer(("attributes", "tag"))[0] == 400
    assert answer(("detail", "maybe"))[0] == 400
    assert answer(("nope", "1")) == (400, {"error_message": "unknown field nope=1"})


def test_availability_counts_failed_probes_and_reports_millionths(tmp_path):
    class Config:
        def get(self, section, key, default=None):
            return {"available_detect_app": "stat"}.get(key, default)

        def integer(self, section, key, default):
            return default
    detector = metrics.AvailabilityDetector(Config(), ["127.0.0.1:1"], threading.Event())
    numbers = detector.counters()[0]
    assert numbers["collector*app.pegasus*cluster.available.minute"] == 1000000  # until the first report
    detector.primaries = {0: f"127.0.0.1:{free_port()}", 1: "-"}  # nobody answers there; no primary
    detector.detect(0)
    detector.detect(1)
    detector.call = lambda *a, **k: True  # a partition whose primary answers
    detector.primaries[2] = "127.0.0.1:9"
    detector.detect(2)
    detector.detect(2)
    detector.report("minute")
    numbers = detector.counters()[0]
    assert numbers["collector*app.pegasus*cluster.available.detect.times.minute"] == 4
    assert numbers["collector*app.pegasus*cluster.available.fail.times.minute"] == 2
    assert numbers["collector*app.pegasus*cluster.available.minute"] == 500000
    detector.report("minute")  # a minute without probes
    assert detector.counters()[0]["collector*app.pegasus*cluster.available.minute"] == 0


# ------------------------------------------------------------------ running clusters

@pytest.fixture
def cluster_name(zookeeper_client):
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    yield name
    zookeeper_client.delete(f"/pegasus/{name}", recursive=True)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
        return r.read().decode()


def series(text: str, name: str) -> dict[str, float]:
    """{labels text: value} of one gauge family."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", text, re.M)}


def start_cluster(tmp_path, zookeeper_server, cluster_name, version, replicas=3, **overrides):
    meta_port, reps = free_port(), [free_port() for _ in range(replicas)]
    vals = values(cluster_name, zookeeper_server.hosts, [meta_port])
    meta = Node(tmp_path, version, "meta", "m", vals, {"meta": meta_port}, **overrides)
    nodes = [meta] + [Node(tmp_path, version, "replica", f"r{i}", vals, {"replica": p}, **overrides)
                      for i, p in enumerate(reps)]
    meta.start()
    wait_for("meta leads", lambda: get(meta_port, "/meta/cluster")[0] == 200)
    for n in nodes[1:]:
        n.start()
    wait_for(f"{replicas} ALIVE", lambda: alive(meta_port, replicas))
    wait_for("stat healthy", lambda: get(meta_port, "/meta/app?name=stat&detail")[1]["healthy"][
        "fully_healthy_partition_count"] == "4")
    return meta_port, reps, nodes


def test_2_5_serves_prometheus_gauges_that_follow_the_load(tmp_path, zookeeper_server, cluster_name):
    prom = {name: free_port() for name in ("m", "r0", "r1", "r2")}
    over = {"pegasus.server/perf_counter_sink": "prometheus", "pegasus.server/perf_counter_update_interval_seconds": "1"}
    meta_port, reps, nodes = None, None, []
    try:
        # every process of a host gets its own prometheus_port (set per node below)
        meta_port, reps = free_port(), [free_port() for _ in range(3)]
        vals = values(cluster_name, zookeeper_server.hosts, [meta_port])
        nodes = [Node(tmp_path, "2.5.0", "meta", "m", vals, {"meta": meta_port}, **over,
                      **{"pegasus.server/prometheus_port": str(prom["m"])})]
        nodes += [Node(tmp_path, "2.5.0", "replica", f"r{i}", vals, {"replica": p}, **over,
                       **{"pegasus.server/prometheus_port": str(prom[f"r{i}"])}) for i, p in enumerate(reps)]
        nodes[0].start()
        wait_for("meta leads", lambda: get(meta_port, "/meta/cluster")[0] == 200)
        for n in nodes[1:]:
            n.start()
        wait_for("3 ALIVE", lambda: alive(meta_port, 3))
        meta_text = wait_for("meta counts 4 healthy partitions", lambda: (t := scrape(prom["m"])) and series(
            t, "meta_eon_server_state_healthy_partition_count") and list(series(
                t, "meta_eon_server_state_healthy_partition_count").values()) == [4.0] and t)
        assert list(series(meta_text, "meta_eon_meta_service_alive_nodes").values()) == [3.0]
        assert re.search(rf'^replica_server_memused_res_MB_\{{cluster="{cluster_name}",host_name="[^"]+",'
                         rf'pegasus_job="meta",port="{meta_port}",service="pegasus",app="",partition=""\}} '
                         r'[1-9]\d*\.000000$', meta_text, re.M), meta_text

        client = StandinClient([f"127.0.0.1:{meta_port}"], table="stat")
        time.sleep(1.5)
        load = client.run_load(seconds=4, interval=0.05)
        assert load["failed"] == 0 and load["ok"] > 0, load
        texts = [scrape(prom[f"r{i}"]) for i in range(3)]
        puts = {labels: v for t in texts for labels, v in series(t, "replica_app_pegasus_put_qps").items()}
        assert len(puts) == 12  # 4 partitions x 3 replicas, each server's own
        assert any(v > 0 for v in puts.values()), puts
        latencies = [v for t in texts for v in series(t, "replica_app_pegasus_put_latency").values()]
        assert any(v > 0 for v in latencies) and any(series(t, "replica_app_pegasus_put_latencyp999") for t in texts)
        disk = series(texts[0], "replica_eon_replica_stub_disk_capacity_total_MB_")
        assert len(disk) == 1 and list(disk.values())[0] > 0
        assert list(series(texts[0], "replica_eon_replica_stub_replica_Count_").values()) == [4.0]

        # a second process on a port already taken does not start
        clash = Node(tmp_path, "2.5.0", "replica", "clash", vals, {"replica": free_port()}, **over,
                     **{"pegasus.server/prometheus_port": str(prom["r0"])})
        result = clash.run()
        assert result.returncode == 1 and f"prometheus_port {prom['r0']}" in result.stderr, result.stderr
    finally:
        for n in nodes:
            n.stop()


def test_2_5_without_the_prometheus_sink_listens_nowhere(tmp_path, zookeeper_server, cluster_name):
    port = free_port()
    meta_port, _, nodes = start_cluster(tmp_path, zookeeper_server, cluster_name, "2.5.0", replicas=3,
                                        **{"pegasus.server/prometheus_port": str(port)})
    try:
        with pytest.raises(OSError):
            scrape(port)
        assert get(meta_port, "/metrics")[0] == 404  # no /metrics on the RPC port before 2.6
    finally:
        for n in nodes:
            n.stop()


def test_2_6_serves_json_entities_that_follow_the_load(tmp_path, zookeeper_server, cluster_name):
    meta_port, reps, nodes = start_cluster(tmp_path, zookeeper_server, cluster_name, "2.6.0")
    try:
        meta = wait_for("table entity", lambda: (b := get(meta_port, "/metrics")[1]) and any(
            e["type"] == "table" for e in b["entities"]) and b)
        assert meta["cluster"] == cluster_name and meta["role"] == "meta" and meta["port"] == meta_port
        table = next(e for e in meta["entities"] if e["type"] == "table")
        assert table["id"] == "table@1" and table["attributes"] == {"table_id": "1"}
        assert {m["name"]: m["value"] for m in table["metrics"]}["healthy_partitions"] == 4
        server = {m["name"]: m["value"] for m in meta["entities"][0]["metrics"]}
        assert server["alive_replica_servers"] == 3 and server["resident_mem_usage_mb"] > 0

        client = StandinClient([f"127.0.0.1:{meta_port}"], table="stat")
        time.sleep(1.5)
        load = client.run_load(seconds=2, interval=0.05)
        assert load["failed"] == 0 and load["ok"] > 0, load
        answers = [get(p, "/metrics?detail=true")[1] for p in reps]
        puts = sum(m["value"] for a in answers for e in a["entities"] if e["type"] == "replica"
                   for m in e["metrics"] if m["name"] == "put_requests")
        assert puts == load["ok"] // 2  # every put the client counted, on the primary that served it
        replica = next(e for e in answers[0]["entities"] if e["type"] == "replica")
        assert re.fullmatch(r"replica@1\.\d", replica["id"]) and set(replica["attributes"]) == {"table_id", "partition_id"}
        latency = next(m for m in replica["metrics"] if m["name"] == "put_latency_ns")
        assert latency["type"] == "Percentile" and latency["unit"] == "NanoSeconds" and "p999" in latency
        disks = [e for e in answers[0]["entities"] if e["type"] == "disk"]
        assert [e["attributes"]["tag"] for e in disks] == ["ssd1", "ssd2"]
        assert all(m["value"] > 0 for e in disks for m in e["metrics"])
        assert get(reps[0], "/metrics?bogus=1")[0] == 400

        # the converter reads the stand-in's answer as it reads master's
        (tmp_path / "targets.json").write_text(json.dumps([{"targets": [f"127.0.0.1:{p}" for p in [meta_port, *reps]]}]))
        allowed = exporter.Targets([str(tmp_path / "targets.json")])
        text = exporter.probe_answer(f"target=127.0.0.1:{reps[0]}", allowed, 3.0)[1].decode()
        assert re.search(r'^pegasus_up 1\.0$', text, re.M) and "pegasus_put_requests_total{" in text
        text = exporter.probe_answer(f"target=127.0.0.1:{meta_port}", allowed, 3.0)[1].decode()
        assert 'pegasus_table_info{table_id="1",table_name="stat"} 1.0' in text
        assert re.search(r'^pegasus_healthy_partitions\{.*table_id="1".*\} 4\.0$', text, re.M), text
    finally:
        for n in nodes:
            n.stop()
