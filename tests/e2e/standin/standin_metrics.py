"""Metrics of the pegasus_server stand-in, served as each release serves them.

Shipped beside the stand-in as `bin/standin_metrics.py`; pegasus_server.py calls
`attach()` once its role is up. The series, labels and their sources are listed in
docs/metrics-reference.md; in short (apache/incubator-pegasus):

- 2.4 and 2.5 (`src/reporter/pegasus_counter_reporter.cpp`): with `[pegasus.server]
  perf_counter_sink = prometheus` the process listens on `prometheus_port` and serves
  its perf counters as Prometheus gauges at `/metrics`, refreshed from a snapshot every
  `perf_counter_update_interval_seconds`. A port already taken stops the start.
- 2.6 (master, `src/utils/metrics.cpp`): JSON entities at `/metrics` on the role's RPC
  port, with the handler's query arguments and errors.

What moves: requests and their latency as the ReplicaServer serves them (`record`),
partition health and ALIVE nodes from the MetaServer's state, disk space of the data
directories (statvfs), the process's memory, and the Collector's availability from its
own probes of `[pegasus.collector] available_detect_app` (`AvailabilityDetector`).

Python 3.11 standard library only, like pegasus_server.py.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import random
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, urlsplit

log = logging.getLogger("pegasus_server")

# Request kinds as the server counts them: (2.4/2.5 counter stem, 2.6 metric stem, is a read).
OPERATIONS = {
    "get": ("get", "get", True),
    "multi_get": ("multi_get", "multi_get", True),
    "scan": ("scan", "scan", True),
    "put": ("put", "put", False),
    "multi_put": ("multi_put", "multi_put", False),
    "remove": ("remove", "remove", False),
    "multi_remove": ("multi_remove", "multi_remove", False),
}
# Kinds with a latency series served here (pegasus_server_impl_init.cpp:628, pegasus_write_service.cpp:109
# at v2.5.0; get_latency_ns / put_latency_ns on master).
LATENCY_KINDS = ("get", "put")
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))
SAMPLES_KEPT = 4096  # a percentile counter's window of recent samples
RETIREMENT_SECONDS = 600  # [metrics] entity_retirement_delay_ms default (metrics.cpp:46-49, master)


def release_of(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


# ---------------------------------------------------------------- what the server measures

class RequestStats:
    """Requests a ReplicaServer served, per replica (app_id, pidx) and kind; failures
    per node as replica_stub::response_client counts them (read or write)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.totals: dict[tuple[int, int], dict[str, int]] = {}
        self.samples: dict[tuple[int, int, str], deque] = {}
        self.failed = {"read": 0, "write": 0}

    def record(self, app_id: int, pidx: int, kind: str, latency_ns: int, ok: bool) -> None:
        is_read = OPERATIONS[kind][2]
        with self.lock:
            if not ok:
                self.failed["read" if is_read else "write"] += 1
                return
            per = self.totals.setdefault((app_id, pidx), {})
            per[kind] = per.get(kind, 0) + 1
            self.samples.setdefault((app_id, pidx, kind), deque(maxlen=SAMPLES_KEPT)).append(latency_ns)

    def count(self, gpid: tuple[int, int], kind: str) -> int:
        with self.lock:
            return self.totals.get(gpid, {}).get(kind, 0)

    def failures(self) -> dict[str, int]:
        with self.lock:
            return dict(self.failed)

    def percentiles(self, gpid: tuple[int, int], kind: str) -> dict[str, int]:
        """Nearest-rank percentiles of the recent samples; 0 without any."""
        with self.lock:
            values = sorted(self.samples.get((*gpid, kind), ()))
        if not values:
            return {name: 0 for name, _ in PERCENTILES}
        return {name: values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))] for name, q in PERCENTILES}


def memory_mb() -> tuple[int, int]:
    """(virtual, resident) MB of this process, as utils::process_mem_usage reads /proc."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = [int(v) for v in f.read().split()[:2]]
    except (OSError, ValueError):
        return 0, 0
    page = os.sysconf("SC_PAGE_SIZE")
    return pages[0] * page >> 20, pages[1] * page >> 20


def data_dirs(config) -> list[tuple[str, str]]:
    """[replication] data_dirs as (tag, path), as fs_manager reads them."""
    out = []
    for entry in [e.strip() for e in config.get("replication", "data_dirs", "").split(",") if e.strip()]:
        tag, sep, path = entry.partition(":")
        out.append((tag, path) if sep else ("default", entry))
    return out


def disk_space(dirs: list[tuple[str, str]]) -> list[dict]:
    """dir_node::update_disk_stat (fs_manager.cpp:127-143 at v2.5.0): capacity and
    available space in MB (statvfs >> 20), available ratio rounded to a percent."""
    out = []
    for tag, path in dirs:
        try:
            st = os.statvfs(path)
        except OSError:
            continue  # get_disk_space_info failed: the dir keeps no figure
        capacity, available = (st.f_blocks * st.f_frsize) >> 20, (st.f_bavail * st.f_frsize) >> 20
        ratio = 0 if capacity == 0 else int(round(available * 100.0 / capacity))
        out.append({"tag": tag, "path": path, "capacity_mb": capacity, "available_mb": available, "ratio": ratio})
    return out


def min_2pc_count(config, max_replica_count: int) -> int:
    """replication_options::app_mutation_2pc_min_replica_count (replication_common.cpp:157-165)."""
    configured = config.integer("replication", "mutation_2pc_min_replica_count", 2)
    if configured > 0:
        return configured
    return 1 if max_replica_count <= 2 else max_replica_count // 2 + 1


def health_status(part: dict, min_count: int) -> str:
    """partition_health_status (meta_data.h:517-534 at v2.5.0)."""
    if not part["primary"]:
        return "unreadable" if part["secondaries"] else "dead"
    n = 1 + len(part["secondaries"])
    if n < min_count:
        return "unwritable"
    return "writable_ill" if n < part["max_replica_count"] else "healthy"


HEALTH = ("dead", "unreadable", "unwritable", "writable_ill", "healthy")


def table_health(meta) -> dict[int, dict[str, int]]:
    """app_id -> partitions by health, from the leading MetaServer's state."""
    out = {}
    for app in list(meta.apps.values()):
        counts = dict.fromkeys(HEALTH, 0)
        for part in app["partitions"]:
            counts[health_status(part, min_2pc_count(meta.config, part["max_replica_count"]))] += 1
        out[app["app_id"]] = counts
    return out


# ---------------------------------------------------------------- 2.4 / 2.5: perf counters

def prometheus_series(full_name: str) -> tuple[str, str, str]:
    """A perf counter's full name -> (series name, app, partition), as
    pegasus_counter_reporter.cpp:254-290 (v2.5.0) builds them: the part after `@`
    split at `.` gives app, partition and a `p999` that goes back onto the name."""
    head, sep, tail = full_name.partition("@")
    parts = ["", "", ""]
    if sep:
        for i, v in enumerate([p for p in tail.split(".") if p][:3]):
            parts[i] = v
    if parts[1] == "p999":
        parts[2], parts[1] = parts[1], ""
    name = head + parts[2]
    for ch, new in (("@", ":"), ("#", ":"), (".", "_"), ("*", "_"), ("(", "_"), (")", "_")):
        name = name.replace(ch, new)
    return name, parts[0], parts[1]


class PerfCounters:
    """The perf counters of one process and their snapshot (perf_counters.cpp take_snapshot):
    NUMBER counters read as they are, RATE counters as the rate since the previous
    snapshot, percentile counters as p99 plus a `<name>.p999` entry."""

    def __init__(self, role: str, source) -> None:
        self.role, self.source = role, source
        self.last_counts: dict[str, int] = {}
        self.last_time = time.monotonic()

    def snapshot(self) -> dict[str, float]:
        numbers, rates, percentiles = self.source()
        now = time.monotonic()
        elapsed = max(now - self.last_time, 1e-3)
        out: dict[str, float] = dict(numbers)
        for name, count in rates.items():
            out[name] = (count - self.last_counts.get(name, 0)) / elapsed
        self.last_counts, self.last_time = dict(rates), now
        for name, values in percentiles.items():
            out[name] = float(values["p99"])
            out[name + ".p999"] = float(values["p999"])
        return out


class PrometheusReporter:
    """pegasus_counter_reporter with perf_counter_sink = prometheus: gauges that appear
    at the first snapshot and stay (a family's gauges are never removed); prometheus-cpp
    0.7.0's exposer metrics; text as its text_serializer.cc writes it."""

    def __init__(self, counters: PerfCounters, cluster: str, role: str, port: int, interval: int) -> None:
        self.counters, self.interval = counters, max(1, interval)
        self.constant = [("cluster", cluster), ("host_name", socket.gethostname()), ("pegasus_job", role),
                         ("port", str(port)), ("service", "pegasus")]
        self.lock = threading.Lock()
        self.gauges: dict[str, dict[tuple[str, str], float]] = {}
        self.scrapes, self.bytes_sent, self.latency_us = 0, 0, 0.0
        self.latencies: deque = deque(maxlen=100)

    def update(self) -> None:
        snapshot = self.counters.snapshot()
        with self.lock:
            for full_name, value in snapshot.items():
                name, app, partition = prometheus_series(full_name)
                self.gauges.setdefault(name, {})[(app, partition)] = value

    def run(self, stop: threading.Event) -> None:
        delay = random.randrange(self.interval) + 1  # on_report_timer's first delay
        while not stop.wait(delay):
            try:
                self.update()
            except Exception:  # noqa: BLE001 - a failed update must not end the reporter
                log.exception("perf counter update failed")
            delay = self.interval

    def text(self) -> str:
        def labels(pairs) -> str:
            escaped = [(k, v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\\n")) for k, v in pairs]
            return "{" + ",".join(f'{k}="{v}"' for k, v in escaped) + "}"
        out = []
        with self.lock:
            out.append("# HELP exposer_transferred_bytes_total Transferred bytes to metrics services\n"
                       "# TYPE exposer_transferred_bytes_total counter\n"
                       f"exposer_transferred_bytes_total {float(self.bytes_sent):f}\n"
                       "# HELP exposer_scrapes_total Number of times metrics were scraped\n"
                       "# TYPE exposer_scrapes_total counter\n"
                       f"exposer_scrapes_total {float(self.scrapes):f}\n"
                       "# HELP exposer_request_latencies Latencies of serving scrape requests, in microseconds\n"
                       "# TYPE exposer_request_latencies summary\n"
                       f"exposer_request_latencies_count {len(self.latencies)}\n"
                       f"exposer_request_latencies_sum {self.latency_us:f}\n")
            recent = sorted(self.latencies)
            for q in (0.5, 0.9, 0.99):
                v = recent[min(len(recent) - 1, int(q * len(recent)))] if recent else float("nan")
                out.append(f'exposer_request_latencies{{quantile="{q:f}"}} {"Nan" if math.isnan(v) else f"{v:f}"}\n')
            for name in sorted(self.gauges):
                out.append(f"# TYPE {name} gauge\n")
                for (app, partition), value in sorted(self.gauges[name].items()):
                    out.append(f"{name}{labels(self.constant + [('app', app), ('partition', partition)])} {value:f}\n")
        return "".join(out)

    def serve(self, port: int, refusal) -> ThreadingHTTPServer:
        """Exposer("0.0.0.0:<prometheus_port>"): civetweb cannot bind -> the constructor throws
        and the process does not start."""
        reporter = self

        class ExposerHandler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                started = time.monotonic()
                if urlsplit(self.path).path != "/metrics":
                    self.send_error(404)
                    return
                data = reporter.text().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                with reporter.lock:
                    reporter.scrapes += 1
                    reporter.bytes_sent += len(data)
                    spent = (time.monotonic() - started) * 1e6
                    reporter.latency_us += spent
                    reporter.latencies.append(spent)
        try:
            server = ThreadingHTTPServer(("0.0.0.0", port), ExposerHandler)
        except OSError as e:
            raise refusal(f"prometheus exposer cannot listen on [pegasus.server] prometheus_port {port}: "
                          f"{e.strerror} (another process on this host uses it?)") from e
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True, name="prometheus-exposer").start()
        log.info("prometheus exposer [0.0.0.0:%d] started", port)
        return server


def meta_counters(meta):
    """meta_service.cpp:165-168 and server_state.cpp:218-237 (v2.5.0); the leader sets them."""
    numbers: dict[str, float] = {}
    leader = meta.is_leader
    with meta.lock:
        alive = sum(1 for w in meta.workers.values() if w["alive"]) if leader else 0
        numbers["meta*eon.meta_service*alive_nodes"] = alive
        numbers["meta*eon.meta_service*unalive_nodes"] = len(meta.workers) - alive if leader else 0
        totals = dict.fromkeys(HEALTH, 0)
        if leader:
            for counts in table_health(meta).values():
                for k, v in counts.items():
                    totals[k] += v
    for k in HEALTH:
        numbers[f"meta*eon.server_state*{k}_partition_count"] = totals[k]
    return numbers, {}, {}


def replica_counters(replica, stats: RequestStats, disks: list[dict]):
    numbers: dict[str, float] = {}
    rates: dict[str, int] = {}
    percentiles: dict[str, dict[str, int]] = {}
    with replica.lock:
        states = list(replica.local.values())
        gpids = sorted(replica.local)
    numbers["replica*eon.replica_stub*replica(Count)"] = states.count("serving")
    numbers["replica*eon.replica_stub*opening.replica(Count)"] = 0
    numbers["replica*eon.replica_stub*closing.replica(Count)"] = states.count("closing")
    failures = stats.failures()
    numbers["replica*eon.replica_stub*recent.read.fail.count"] = failures["read"] - replica.metrics_failed["read"]
    numbers["replica*eon.replica_stub*recent.write.fail.count"] = failures["write"] - replica.metrics_failed["write"]
    replica.metrics_failed = failures  # VOLATILE_NUMBER: reset when read
    if disks:
        total = sum(d["capacity_mb"] for d in disks)
        available = sum(d["available_mb"] for d in disks)
        numbers["replica*eon.replica_stub*disk.capacity.total(MB)"] = total
        numbers["replica*eon.replica_stub*disk.available.total(MB)"] = available
        numbers["replica*eon.replica_stub*disk.available.total.ratio"] = (
            0 if total == 0 else int(round(available * 100.0 / total)))
        numbers["replica*eon.replica_stub*disk.available.min.ratio"] = min(d["ratio"] for d in disks)
        numbers["replica*eon.replica_stub*disk.available.max.ratio"] = max(d["ratio"] for d in disks)
    for gpid in gpids:  # a replica's app (pegasus_server_impl) has its counters while it is open
        tag = f"{gpid[0]}.{gpid[1]}"
        for kind, (stem, _, _) in OPERATIONS.items():
            rates[f"replica*app.pegasus*{stem}_qps@{tag}"] = stats.count(gpid, kind)
        for kind in LATENCY_KINDS:
            percentiles[f"replica*app.pegasus*{kind}_latency@{tag}"] = stats.percentiles(gpid, kind)
    return numbers, rates, percentiles


def with_memory(source):
    def wrapped():
        numbers, rates, percentiles = source()
        virt, res = memory_mb()
        # builtin_counters.cpp:31-40 (v2.5.0): a global counter of app "replica" in every role
        numbers = {**numbers, "replica*server*memused.virt(MB)": virt, "replica*server*memused.res(MB)": res}
        return numbers, rates, percentiles
    return wrapped


# ---------------------------------------------------------------- the Collector's availability

class AvailabilityDetector:
    """available_detector.cpp (v2.5.0; unchanged on master): after a minute, every
    available_detect_interval_seconds, for each partition of available_detect_app, a
    write then a read of one key on its primary within available_detect_timeout; each
    failed call counts. When the wall-clock minute (hour, day) changes (checked each
    minute from two minutes after start) the period's availability is set to
    (probes - failures) / probes * 1000000, or 0 without probes; 1000000 until then."""

    START_DELAY, REPORT_DELAY, REPORT_EVERY = 60.0, 120.0, 60.0

    def __init__(self, config, metas: list[str], stop: threading.Event) -> None:
        self.table = config.get("pegasus.collector", "available_detect_app", "")
        self.interval = config.integer("pegasus.collector", "available_detect_interval_seconds", 3)
        self.timeout = config.integer("pegasus.collector", "available_detect_timeout", 1000) / 1000
        self.metas, self.stop = metas, stop
        self.lock = threading.Lock()
        self.recent = {p: [0, 0] for p in ("minute", "hour", "day")}  # probes, failures
        self.figures = {p: {"detect_times": 0, "fail_times": 0, "available": 1000000} for p in self.recent}
        self.primaries: dict[int, str] = {}

    def start(self) -> None:
        if not self.table:
            return
        threading.Thread(target=self.detect_loop, daemon=True, name="available-detect").start()
        threading.Thread(target=self.report_loop, daemon=True, name="available-report").start()

    def detect_loop(self) -> None:
        if self.stop.wait(self.START_DELAY):
            return
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.refresh()
            except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                log.warning("available detector: cannot list table %s: %s, retry after 60 seconds", self.table, e)
                if self.stop.wait(60):
                    return
                continue
            for pidx in sorted(self.primaries):
                self.detect(pidx)
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def refresh(self) -> None:
        status, body = follow(self.metas, f"/meta/app?name={quote(self.table)}&detail", self.timeout)
        if status != 200 or not isinstance(body, dict):
            raise OSError(f"HTTP {status}")
        self.primaries = {int(p): r["primary"] for p, r in body["replicas"].items()}

    def detect(self, pidx: int) -> None:
        with self.lock:
            for counts in self.recent.values():
                counts[0] += 1
        primary = self.primaries.get(pidx, "-")
        key = f"detect_available_p{pidx}_1"
        ok = primary != "-" and self.call(primary, "put", pidx, key, f"detect_value_{int(time.time())}") \
            and self.call(primary, "get", pidx, key)
        if not ok:
            with self.lock:
                for counts in self.recent.values():
                    counts[1] += 1
            log.error("detect partition[%d] of %s failed (primary %s)", pidx, self.table, primary)

    def call(self, primary: str, op: str, pidx: int, key: str, value: str = "") -> bool:
        # The stand-in's data path (see pegasus_server.py); the real client sends RPC_RRDB_RRDB_PUT/_GET.
        path = f"/standin/{op}?table={quote(self.table)}&partition={pidx}&key={quote(key)}"
        if op == "put":
            path += f"&value={quote(value)}"
        try:
            status, _ = http_get(primary, path, self.timeout)
        except (OSError, http.client.HTTPException):
            return False
        return status == 200

    def report_loop(self) -> None:
        stamps = self.stamps()
        if self.stop.wait(self.REPORT_DELAY):
            return
        while True:
            now = self.stamps()
            for period in ("day", "hour", "minute"):
                if now[period] != stamps[period]:
                    self.report(period)
            stamps = now
            if self.stop.wait(self.REPORT_EVERY):
                return

    @staticmethod
    def stamps() -> dict[str, str]:
        t = time.localtime()
        return {"day": time.strftime("%Y-%m-%d", t), "hour": time.strftime("%Y-%m-%d %H", t),
                "minute": time.strftime("%Y-%m-%d %H:%M", t)}

    def report(self, period: str) -> None:
        with self.lock:
            probes, failures = self.recent[period]
            self.recent[period] = [0, 0]
            available = int(max(0, probes - failures) / probes * 1000000) if probes else 0
            self.figures[period] = {"detect_times": probes, "fail_times": failures, "available": available}
        log.info("availability of the last %s: %d probes, %d failed, %d", period, probes, failures, available)

    def counters(self):
        numbers = {}
        with self.lock:
            for period, f in self.figures.items():
                numbers[f"collector*app.pegasus*cluster.available.detect.times.{period}"] = f["detect_times"]
                numbers[f"collector*app.pegasus*cluster.available.fail.times.{period}"] = f["fail_times"]
                numbers[f"collector*app.pegasus*cluster.available.{period}"] = f["available"]
        return numbers, {}, {}


def http_get(address: str, path: str, timeout: float) -> tuple[int, object]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        data = response.read()
        if response.status == 307:
            return 307, response.getheader("Location", "")
        try:
            return response.status, json.loads(data or b"null")
        except ValueError:
            return response.status, data.decode(errors="replace")
    finally:
        conn.close()


def follow(metas: list[str], path: str, timeout: float) -> tuple[int, object]:
    """Asks the MetaServers in turn, following a follower's 307 to the leader."""
    last: tuple[int, object] = (0, "no MetaServer answered")
    for meta in metas:
        address, target = meta, path
        for _ in range(3):
            try:
                status, body = http_get(address, target, timeout)
            except (OSError, http.client.HTTPException) as e:
                last = (0, str(e))
                break
            if status != 307:
                return status, body
            location = urlsplit(str(body))
            address, target = location.netloc, location.path + (f"?{location.query}" if location.query else "")
    return last


# ---------------------------------------------------------------- 2.6: JSON entities

def metric(name: str, kind: str, unit: str, desc: str, value) -> dict:
    """One metric's fields in the order metric::take_snapshot writes them (metrics.h:965-1015,
    master): type, name, unit, desc, then `value` or p50..p999."""
    out = {"type": kind, "name": name, "unit": unit, "desc": desc}
    if isinstance(value, dict):
        out.update(value)
    else:
        out["value"] = value
    return out


def server_entity(extra: list[dict]) -> dict:
    virt, res = memory_mb()  # builtin_metrics.cpp:29-37, 56-65 (master)
    return {"type": "server", "id": "server", "attributes": {}, "metrics": [
        metric("virtual_mem_usage_mb", "Gauge", "MegaBytes", "The total amount of virtual memory usage in MB", virt),
        metric("resident_mem_usage_mb", "Gauge", "MegaBytes", "The total amount of physical memory usage in MB",
               res), *extra]}


def meta_entities(meta, disconnections: int) -> list[dict]:
    leader = meta.is_leader
    with meta.lock:
        alive = sum(1 for w in meta.workers.values() if w["alive"]) if leader else 0
        unalive = len(meta.workers) - alive if leader else 0
        health = table_health(meta) if leader else {}
    entities = [server_entity([  # meta_service.cpp:136-150 (master)
        metric("replica_server_disconnections", "Counter", "Disconnections",
               "The number of disconnections with replica servers", disconnections),
        metric("unalive_replica_servers", "Gauge", "Servers", "The number of unalive replica servers", unalive),
        metric("alive_replica_servers", "Gauge", "Servers", "The number of alive replica servers", alive)])]
    for app_id, counts in sorted(health.items()):  # table_metrics.cpp:71-105 (master)
        entities.append({"type": "table", "id": f"table@{app_id}", "attributes": {"table_id": str(app_id)},
                         "metrics": [metric(f"{k}_partitions", "Gauge", "Partitions",
                                            f"The number of {k} partitions", counts[k]) for k in HEALTH]})
    return entities


class ReplicaEntities:
    """A ReplicaServer's entities; a closed replica's entity stays listed with its last
    values for RETIREMENT_SECONDS (metric_registry's stale-entity retirement)."""

    def __init__(self) -> None:
        self.last_seen: dict[tuple[int, int], float] = {}

    def entities(self, replica, stats: RequestStats, disks: list[dict]) -> list[dict]:
        with replica.lock:
            states = dict(replica.local)
            roles = [r["role"] for r in replica.roles.values()]
        now = time.monotonic()
        for gpid in states:
            self.last_seen[gpid] = now
        for gpid in [g for g, seen in self.last_seen.items() if now - seen > RETIREMENT_SECONDS]:
            del self.last_seen[gpid]
        failures = stats.failures()
        out = [server_entity([  # replica_stub.cpp:114-148, 207-216 (master)
            metric("total_replicas", "Gauge", "Replicas", "The total number of replicas",
                   sum(1 for s in states.values() if s == "serving")),
            metric("opening_replicas", "Gauge", "Replicas", "The number of opening replicas", 0),
            metric("closing_replicas", "Gauge", "Replicas", "The number of closing replicas",
                   sum(1 for s in states.values() if s == "closing")),
            metric("primary_replicas", "Gauge", "Replicas", "The number of primary replicas", roles.count("primary")),
            metric("secondary_replicas", "Gauge", "Replicas", "The number of secondary replicas",
                   roles.count("secondary")),
            metric("read_failed_requests", "Counter", "Requests", "The number of failed read requests",
                   failures["read"]),
            metric("write_failed_requests", "Counter", "Requests", "The number of failed write requests",
                   failures["write"])])]
        for gpid in sorted(self.last_seen):  # replica_base.cpp:28-41 (master)
            metrics = [metric(f"{stem}_requests", "Counter", "Requests", f"The number of {stem.upper()} requests",
                              stats.count(gpid, kind)) for kind, (_, stem, _) in OPERATIONS.items()]
            metrics += [metric(f"{kind}_latency_ns", "Percentile", "NanoSeconds",
                               f"The latency of {kind.upper()} requests", stats.percentiles(gpid, kind))
                        for kind in LATENCY_KINDS]
            out.append({"type": "replica", "id": f"replica@{gpid[0]}.{gpid[1]}",
                        "attributes": {"table_id": str(gpid[0]), "partition_id": str(gpid[1])}, "metrics": metrics})
        for d in disks:  # fs_manager.cpp:60-106 (master)
            out.append({"type": "disk", "id": f"disk@{d['tag']}", "attributes": {"tag": d["tag"], "data_dir": d["path"]},
                        "metrics": [metric("disk_capacity_total_mb", "Gauge", "MegaBytes",
                                           "The total disk capacity", d["capacity_mb"]),
                                    metric("disk_capacity_avail_mb", "Gauge", "MegaBytes",
                                           "The available disk capacity", d["available_mb"])]})
        return out


BRIEF_FIELDS = {"name", "value", *(name for name, _ in PERCENTILES)}


def metrics_answer(cluster: str, role: str, port: int, entities: list[dict],
                   args: list[tuple[str, str]]) -> tuple[int, dict]:
    """metrics_http_service::get_metrics_handler and metric_registry::take_snapshot
    (metrics.cpp:333-386, 558-567, master)."""
    fields: set[str] | None = None
    types: list[str] = []
    ids: set[str] = set()
    attrs: list[str] = []
    names: list[str] = []
    detail = False
    for key, value in args:
        items = [v for v in value.split(",") if v]
        if key == "with_metric_fields":
            fields = set(items)
        elif key == "types":
            types = items
        elif key == "ids":
            ids = set(items)
        elif key == "attributes":
            attrs = items
            if len(attrs) % 2:
                return 400, {"error_message": "the number of arguments for attributes should be even, "
                                              "since each attribute name always pairs with a value"}
        elif key == "metrics":
            names = items
        elif key == "detail":
            if value.lower() not in ("true", "false"):
                return 400, {"error_message": "the value of detail should be a boolean value, i.e. true or false"}
            detail = value.lower() == "true"
        else:
            return 400, {"error_message": f"unknown field {key}={value}"}
    if fields is None and not detail:
        fields = BRIEF_FIELDS
    chosen = []
    for entity in entities:
        if types and entity["type"] not in types or ids and entity["id"] not in ids:
            continue
        if attrs and not any(entity["attributes"].get(attrs[i]) == attrs[i + 1] for i in range(0, len(attrs), 2)):
            continue
        metrics = [m for m in entity["metrics"] if not names or m["name"] in names]
        if not metrics:
            continue
        chosen.append({**{k: entity[k] for k in ("type", "id", "attributes")},
                       "metrics": [{k: v for k, v in m.items() if not fields or k in fields} for m in metrics]})
    return 200, {"cluster": cluster or "unknown", "role": role, "host": socket.gethostname(), "port": port,
                 "timestamp_ns": time.time_ns(), "entities": chosen}


# ---------------------------------------------------------------- wiring

class Metrics:
    """What a role serves; `http` answers 2.6's /metrics (None on 2.4/2.5)."""

    def __init__(self) -> None:
        self.http = None
        self.reporter: PrometheusReporter | None = None
        self.detector: AvailabilityDetector | None = None
        self.servers: list = []

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def attach(release: str, config, role: str, server, port: int, stop: threading.Event, refusal) -> Metrics:
    """Starts what the role serves: on 2.4/2.5 the perf counter reporter (its Prometheus
    exposer when perf_counter_sink = prometheus), on 2.6 the /metrics answer; the
    Collector's detector on every release. `server` is the stand-in's Meta, Replica or
    Collector; a Replica gets `requests` (RequestStats) to count what it serves."""
    out = Metrics()
    cluster = config.get("replication", "cluster_name", "")
    dirs = data_dirs(config) if role == "replica" else []
    disk_interval = config.integer("replication", "disk_stat_interval_seconds", 600)
    disks: list[list[dict]] = [disk_space(dirs)]  # fs_manager initializes them at start

    def disk_loop() -> None:
        while not stop.wait(disk_interval):
            disks[0] = disk_space(dirs)
    if dirs:
        threading.Thread(target=disk_loop, daemon=True, name="disk-stat").start()
    if role == "replica":
        server.requests = RequestStats()
        server.metrics_failed = {"read": 0, "write": 0}
    if role == "collector":
        metas = [e.strip() for e in config.get("meta_server", "server_list").split(",") if e.strip()]
        out.detector = AvailabilityDetector(config, metas, stop)
        out.detector.start()
    if release_of(release) < (2, 6):
        if role == "meta":
            source = with_memory(lambda: meta_counters(server))
        elif role == "replica":
            source = with_memory(lambda: replica_counters(server, server.requests, disks[0]))
        else:
            detector = out.detector
            source = with_memory(lambda: detector.counters() if detector else ({}, {}, {}))
        if config.get("pegasus.server", "perf_counter_sink", "").lower() == "prometheus":
            out.reporter = PrometheusReporter(
                PerfCounters(role, source), cluster, role, port,
                config.integer("pegasus.server", "perf_counter_update_interval_seconds", 10))
            out.servers.append(out.reporter.serve(config.integer("pegasus.server", "prometheus_port", 9091), refusal))
            threading.Thread(target=out.reporter.run, args=(stop,), daemon=True, name="perf-counter-reporter").start()
        return out
    replica_entities = ReplicaEntities()

    def entities() -> list[dict]:
        if role == "meta":
            return meta_entities(server, getattr(server, "disconnections", 0))
        if role == "replica":
            return replica_entities.entities(server, server.requests, disks[0])
        return [server_entity([])]
    out.http = lambda args: metrics_answer(cluster, role, port, entities(), args)
    return out
