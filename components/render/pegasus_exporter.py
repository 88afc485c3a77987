#!/usr/bin/env python3
"""pegasus_exporter: Pegasus 2.6's JSON metrics, and ZooKeeper's four-letter words, as Prometheus text.

Runs on the monitoring host; this file is uploaded as it is (Python 3.11 standard
library plus Debian 12's `python3-prometheus-client`, 0.16, the same library as
PyPI's `prometheus-client`). Prometheus scrapes it once per server, the way it
scrapes blackbox_exporter, so `instance` is the server and a server added to the
targets file is scraped at once, without a restart of either program:

    GET /probe?target=10.0.2.5:34801                    a Pegasus server's /metrics (any role)
    GET /probe?module=zookeeper&target=10.0.0.1:2181    a ZooKeeper server (ruok, mntr)
    GET /metrics                                        the exporter's own process metrics

Command line:

    python3 /opt/pegasus-exporter/pegasus_exporter.py \\
        --listen 0.0.0.0:9760 \\
        --targets-file '/etc/prometheus/file_sd/pegasus-*.json' \\
        --targets-file /etc/prometheus/file_sd/zookeeper.json \\
        [--timeout 5]

- `--listen` (default 0.0.0.0:9760): where Prometheus reaches it; on the monitoring host
  the firewall admits only Prometheus (the same host) and the admin range.
- `--targets-file` (one or more; shell-style patterns allowed): Prometheus file_sd
  files, `[{"targets": ["10.0.2.5:34801", ...], "labels": {...}}]`, the very files
  Prometheus reads. Only a target listed in one of them is probed (anything else is
  refused with 403): the exporter is no open proxy into the cluster. They are read
  again whenever one changes.
- `--timeout` (default 5 s): per probe, lowered to Prometheus's own scrape timeout
  (`X-Prometheus-Scrape-Timeout-Seconds`) less half a second.

Prometheus scrape configuration (one job per module):

    - job_name: pegasus-2.6
      metrics_path: /probe
      file_sd_configs: [{files: ['/etc/prometheus/file_sd/pegasus-*.json']}]
      relabel_configs:
        - {source_labels: [__address__], target_label: __param_target}
        - {source_labels: [__param_target], target_label: instance}
        - {target_label: __address__, replacement: '127.0.0.1:9760'}
    - job_name: zookeeper
      metrics_path: /probe
      params: {module: [zookeeper]}
      file_sd_configs: [{files: [/etc/prometheus/file_sd/zookeeper.json]}]
      relabel_configs: (the same three)

The systemd unit is `templates/pegasus_exporter.service.j2`.

What it emits (docs/metrics-reference.md lists it all, with the Pegasus sources):

- Pegasus (apache/incubator-pegasus master, `src/utils/metrics.cpp` 333-386 and
  558-567, `src/utils/metrics.h` 355-365 and 930-1015): `pegasus_up` (1 when the
  server answered JSON of the registry's shape), `pegasus_scrape_duration_seconds`,
  `pegasus_server_info{cluster,role,host,port}`, and per metric `pegasus_<name>`:
  Gauge -> gauge, Counter/VolatileCounter -> counter (`_total`), Percentile -> summary
  with `quantile` 0.5 0.9 0.95 0.99 0.999 and no `_sum`/`_count` (the server has none).
  Labels: `cluster`, `role`, `entity` (the entity type) and every entity attribute
  (`table_id`, `partition_id`, `tag`, `data_dir`). A leading MetaServer also gives
  `pegasus_table_info{table_id,table_name}` from its `/meta/apps` (a follower answers
  307 and gives none).
- ZooKeeper (3.8, `4lw.commands.whitelist` with ruok and mntr): `zookeeper_ruok`,
  `zookeeper_serving` (0 when mntr says the server is not serving: no quorum),
  `zookeeper_server_state{state}`, `zookeeper_info{version}`, and `zookeeper_<key>`
  for every numeric `zk_<key>` line of mntr (`zookeeper_synced_followers`,
  `zookeeper_quorum_size`, `zookeeper_znode_count`, ...).

It replaces blackbox_exporter for ZooKeeper: blackbox can expect `imok` from ruok but
cannot turn mntr into numbers (which server leads, how many followers are in sync).
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, Metric

log = logging.getLogger("pegasus_exporter")

DEFAULT_LISTEN = "0.0.0.0:9760"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUANTILES = (("p50", "0.5"), ("p90", "0.9"), ("p95", "0.95"), ("p99", "0.99"), ("p999", "0.999"))
ZK_STATES = ("leader", "follower", "observer", "standalone")
NAME_OK = re.compile(r"[^a-zA-Z0-9_]")


def label_name(text: str) -> str:
    name = NAME_OK.sub("_", text)
    return name if name and not name[0].isdigit() else f"_{name}"


# ---------------------------------------------------------------- targets

class Targets:
    """The allowed targets: every one listed in the file_sd files the patterns match,
    read again when a file appears, goes or changes."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = patterns
        self.lock = threading.Lock()
        self.stamp: tuple = ()
        self.allowed: set[str] = set()

    def _files(self) -> list[str]:
        return sorted({f for p in self.patterns for f in glob.glob(p)})

    def refresh(self) -> None:
        stamp = []
        for f in self._files():
            try:
                st = os.stat(f)
                stamp.append((f, st.st_mtime_ns, st.st_size))
            except OSError:
                continue
        with self.lock:
            if tuple(stamp) == self.stamp:
                return
            allowed: set[str] = set()
            for f, _, _ in stamp:
                try:
                    with open(f, encoding="utf-8") as fh:
                        groups = json.load(fh)
                    for group in groups:
                        allowed.update(str(t) for t in group.get("targets", []))
                except (OSError, ValueError, AttributeError, TypeError) as e:
                    log.warning("targets file %s unreadable, ignored: %s", f, e)
            self.allowed, self.stamp = allowed, tuple(stamp)

    def allows(self, target: str) -> bool:
        self.refresh()
        with self.lock:
            return target in self.allowed


# ---------------------------------------------------------------- Pegasus JSON -> families

def http_get(target: str, path: str, timeout: float) -> tuple[int, bytes]:
    host, _, port = target.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class ShapeError(ValueError):
    """The answer is not the metric registry's JSON."""


def parse_snapshot(body: bytes) -> dict:
    """metric_registry::take_snapshot's object, checked field by field."""
    try:
        data = json.loads(body)
    except ValueError as e:
        raise ShapeError(f"not JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("entities"), list):
        raise ShapeError("no 'entities' list")
    for entity in data["entities"]:
        if not isinstance(entity, dict) or not isinstance(entity.get("type"), str) \
                or not isinstance(entity.get("attributes", {}), dict) or not isinstance(entity.get("metrics"), list):
            raise ShapeError(f"malformed entity {str(entity)[:200]}")
    return data


def pegasus_families(data: dict, tables: dict[str, str]) -> Iterator[Metric]:
    """Prometheus families for one server's snapshot (fetched with ?detail=true, so each
    metric says its type)."""
    cluster, role = str(data.get("cluster", "unknown")), str(data.get("role", "unknown"))
    info = GaugeMetricFamily("pegasus_server_info", "What the Pegasus server says of itself",
                             labels=["cluster", "role", "host", "port"])
    info.add_metric([cluster, role, str(data.get("host", "unknown")), str(data.get("port", "unknown"))], 1)
    yield info
    families: dict[str, Metric] = {}
    for entity in data["entities"]:
        attrs = {label_name(k): str(v) for k, v in sorted(entity.get("attributes", {}).items())
                 if label_name(k) not in ("cluster", "role", "entity", "quantile")}
        base = {"cluster": cluster, "role": role, "entity": str(entity["type"]), **attrs}
        for m in entity["metrics"]:
            if not isinstance(m, dict) or not isinstance(m.get("name"), str):
                continue
            name = "pegasus_" + label_name(m["name"])
            kind = m.get("type")
            desc = str(m.get("desc") or m["name"])
            if kind == "Percentile":
                family = families.setdefault(name, Metric(name, desc, "summary"))
                for field, quantile in QUANTILES:
                    if isinstance(m.get(field), (int, float)):
                        family.add_sample(name, {**base, "quantile": quantile}, float(m[field]))
                continue
            if not isinstance(m.get("value"), (int, float)):
                continue
            if kind in ("Counter", "VolatileCounter"):
                family = families.setdefault(name, CounterMetricFamily(name, desc))
                family.add_sample(name + "_total", base, float(m["value"]))
            else:  # Gauge (and any type the server may add later, read as a gauge)
                family = families.setdefault(name, GaugeMetricFamily(name, desc))
                family.add_sample(name, base, float(m["value"]))
    yield from families.values()
    if tables:
        table_info = GaugeMetricFamily("pegasus_table_info", "Table names of a leading MetaServer's /meta/apps",
                                       labels=["table_id", "table_name"])
        for table_id, table_name in sorted(tables.items()):
            table_info.add_metric([table_id, table_name], 1)
        yield table_info


def table_names(target: str, timeout: float) -> dict[str, str]:
    """table_id -> name from a MetaServer's /meta/apps; {} from a follower (307) or on error."""
    try:
        status, body = http_get(target, "/meta/apps", timeout)
        if status != 200:
            return {}
        general = json.loads(body).get("general_info", {})
        return {str(v["app_id"]): str(v["app_name"]) for v in general.values()}
    except (OSError, http.client.HTTPException, ValueError, KeyError, AttributeError, TypeError):
        return {}


class PegasusProbe:
    def __init__(self, target: str, timeout: float) -> None:
        self.target, self.timeout = target, timeout

    def collect(self) -> Iterable[Metric]:
        started = time.monotonic()
        up = GaugeMetricFamily("pegasus_up", "1 when the server answered /metrics with its JSON")
        families: list[Metric] = []
        try:
            status, body = http_get(self.target, "/metrics?detail=true", self.timeout)
            if status != 200:
                raise ShapeError(f"HTTP {status}")
            data = parse_snapshot(body)
            tables = table_names(self.target, self.timeout) if data.get("role") == "meta" else {}
            families = list(pegasus_families(data, tables))
            up.add_metric([], 1)
        except (OSError, http.client.HTTPException, ShapeError) as e:
            log.info("probe of %s failed: %s", self.target, e)
            up.add_metric([], 0)
        duration = GaugeMetricFamily("pegasus_scrape_duration_seconds", "How long the probe took")
        duration.add_metric([], time.monotonic() - started)
        return [up, duration, *families]


# ---------------------------------------------------------------- ZooKeeper

def four_letter_word(target: str, word: str, timeout: float) -> str:
    host, _, port = target.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(word.encode())
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def zookeeper_families(ruok: str | None, mntr: str | None) -> list[Metric]:
    out: list[Metric] = []
    ok = GaugeMetricFamily("zookeeper_ruok", "1 when the server answered ruok with imok")
    ok.add_metric([], 1 if ruok is not None and ruok.strip() == "imok" else 0)
    out.append(ok)
    stats: dict[str, str] = {}
    for line in (mntr or "").splitlines():
        key, sep, value = line.partition("\t")
        if sep and key.startswith("zk_"):
            stats[key[3:]] = value.strip()
    serving = GaugeMetricFamily("zookeeper_serving", "1 when mntr answered statistics (the server serves requests)")
    serving.add_metric([], 1 if stats else 0)
    out.append(serving)
    if not stats:
        return out
    state = GaugeMetricFamily("zookeeper_server_state", "The server's role in the ensemble", labels=["state"])
    for s in ZK_STATES:
        state.add_metric([s], 1 if stats.get("server_state") == s else 0)
    out.append(state)
    if "version" in stats:
        info = GaugeMetricFamily("zookeeper_info", "The server's version", labels=["version"])
        info.add_metric([stats["version"]], 1)
        out.append(info)
    for key, value in sorted(stats.items()):
        try:
            number = float(value)
        except ValueError:
            continue
        gauge = GaugeMetricFamily(f"zookeeper_{label_name(key)}", f"mntr zk_{key}")
        gauge.add_metric([], number)
        out.append(gauge)
    return out


class ZooKeeperProbe:
    def __init__(self, target: str, timeout: float) -> None:
        self.target, self.timeout = target, timeout

    def collect(self) -> Iterable[Metric]:
        answers: dict[str, str | None] = {}
        for word in ("ruok", "mntr"):
            try:
                answers[word] = four_letter_word(self.target, word, self.timeout)
            except OSError as e:
                log.info("%s of %s failed: %s", word, self.target, e)
                answers[word] = None
        return zookeeper_families(answers["ruok"], answers["mntr"])


# ---------------------------------------------------------------- HTTP

PROBES = {"pegasus": PegasusProbe, "zookeeper": ZooKeeperProbe}


def probe_answer(query: str, targets: Targets, timeout: float) -> tuple[int, bytes]:
    params = parse_qs(query)
    target = (params.get("target") or [""])[0]
    module = (params.get("module") or ["pegasus"])[0]
    if module not in PROBES:
        return 400, f"unknown module {module!r}: pegasus or zookeeper\n".encode()
    if not re.fullmatch(r"[A-Za-z0-9.\-]+:\d{1,5}", target):
        return 400, b"target must be host:port\n"
    if not targets.allows(target):
        return 403, f"target {target} is in no targets file\n".encode()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PROBES[module](target, timeout))  # type: ignore[arg-type]
    return 200, generate_latest(registry)


def make_handler(targets: Targets, timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            log.debug("%s %s", self.address_string(), fmt % args)

        def do_GET(self):
            parts = urlsplit(self.path)
            if parts.path == "/probe":
                limit = timeout
                header = self.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
                try:
                    if header:
                        limit = max(0.5, min(timeout, float(header) - 0.5))
                except ValueError:
                    pass
                status, body = probe_answer(parts.query, targets, limit)
            elif parts.path == "/metrics":
                status, body = 200, generate_latest(REGISTRY)
            else:
                status, body = 404, b"see /probe?target=host:port[&module=zookeeper] and /metrics\n"
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    return Handler


def serve(listen: str, targets: Targets, timeout: float) -> ThreadingHTTPServer:
    host, _, port = listen.rpartition(":")
    server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), make_handler(targets, timeout))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pegasus 2.6 JSON metrics and ZooKeeper mntr as Prometheus text")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="host:port to listen on (default %(default)s)")
    parser.add_argument("--targets-file", action="append", required=True,
                        help="a Prometheus file_sd file (or pattern) listing the targets it may probe; repeatable")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per probe (default %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    server = serve(args.listen, Targets(args.targets_file), args.timeout)
    log.info("listening on %s, targets from %s", args.listen, ", ".join(args.targets_file))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
