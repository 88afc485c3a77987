"""What the e2e scenarios check of a cluster's monitoring, asked where it runs.

Prometheus and Alertmanager answer on the monitoring host's loopback address in
every placement; each check runs one small Python script there (standard
library, as on the host), so a wait polls every 0.2 s without an SSH connection
per poll, and times come from the same clock the machines share with this
process (they are containers on one kernel).
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from components.render import monitoring_files as mf
from components.render import monitoring_layout as ml
from tests.support.grafana_queries import grafana_expression, variable_queries

PROMETHEUS = f"http://127.0.0.1:{ml.PROMETHEUS_PORT}"
ALERTMANAGER = f"http://127.0.0.1:{ml.ALERTMANAGER_PORT}"

# Runs on the monitoring host: argv[1] is a base64 JSON request, the answer is JSON on stdout.
ASK = r'''
import base64, json, sys, time, urllib.parse, urllib.request
req = json.loads(base64.b64decode(sys.argv[1]))

def get(url):
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)

def prom(path, **params):
    return get(req["prometheus"] + path + "?" + urllib.parse.urlencode(params, doseq=True))["data"]

kind = req["kind"]
if kind == "targets":
    print(json.dumps(prom("/api/v1/targets", state="active")["activeTargets"]))
elif kind == "queries":
    out = {}
    for expr in req["queries"]:
        data = prom("/api/v1/query", query=expr)
        out[expr] = len(data["result"]) if data["resultType"] in ("vector", "matrix") else 1
    for metric, label in req["labels"]:
        out[f"label_values({metric}, {label})"] = len(prom(f"/api/v1/label/{label}/values", **{"match[]": metric}))
    print(json.dumps(out))
elif kind == "samples":
    print(json.dumps(prom("/api/v1/query", query=req["query"])["result"]))
elif kind == "alert":
    # Wait until the alert with these labels is active in Alertmanager (want true) or gone (false).
    deadline = time.time() + req["timeout"]
    while True:
        alerts = get(req["alertmanager"] + "/api/v2/alerts?active=true&silenced=false&inhibited=false")
        found = [a for a in alerts if all(a["labels"].get(k) == v for k, v in req["labels"].items())]
        if bool(found) == req["want"]:
            print(json.dumps({"at": time.time(), "alert": found[0] if found else None}))
            break
        if time.time() > deadline:
            print(json.dumps({"at": None, "alerts": alerts}))
            break
        time.sleep(0.2)
'''


def ask(machine, kind: str, **request) -> object:
    payload = base64.b64encode(json.dumps({"kind": kind, "prometheus": PROMETHEUS, "alertmanager": ALERTMANAGER,
                                           **request}).encode()).decode()
    out = machine.check(f"python3 -c {shlex.quote(ASK)} {payload}", timeout=request.get("timeout", 60) + 60)
    return json.loads(out)


def wait_until_every_target_is_up(machine, expected: dict[str, set[str]], seconds: float) -> float:
    """Every target Prometheus scrapes answers, and the targets are `expected`
    (job -> the `node` labels of its targets, or their instances where there is no node).
    Returns how long it took."""
    started = time.monotonic()
    while True:
        targets = ask(machine, "targets")
        assert isinstance(targets, list)
        seen: dict[str, set[str]] = {}
        for t in targets:
            labels = t["labels"]
            seen.setdefault(labels["job"], set()).add(labels.get("node") or labels["instance"])
        down = [(t["labels"]["job"], t["labels"].get("node") or t["labels"]["instance"], t["lastError"])
                for t in targets if t["health"] != "up"]
        if seen == expected and not down:
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise AssertionError(f"after {seconds:.0f} s: targets {seen}, expected {expected}; not up: {down}")
        time.sleep(1)


@dataclass
class AlertTimes:
    stopped: float  # the server's unit stopped (systemctl returned)
    first_failed_scrape: float  # the first scrape that found it down (Prometheus's sample time)
    fired: float  # the alert's startsAt in Alertmanager
    seen: float  # when Alertmanager listed it here
    back: float  # the server serves again
    resolved: float  # when the alert left Alertmanager's active alerts


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def down_alert_fires_and_resolves(monitoring, server, unit: str, alert_labels: dict[str, str], series: str,
                                  down_for: int, scrape: int, back) -> AlertTimes:
    """Stops `unit` on `server` and waits for the alert of `alert_labels` in Alertmanager; then
    starts the unit and waits for the alert to resolve. `series`: the selector Prometheus
    reads the server's health from (0 while it is down); `back`: waits until the server
    serves again. The bounds: Prometheus sees the server down at its next scrape, the alert
    fires `for` later, give or take one evaluation (as often as scrapes here)."""
    server.check(f"systemctl stop {unit}")
    stopped = time.time()
    limit = down_for + 2 * scrape + 10
    answer = ask(monitoring, "alert", labels=alert_labels, want=True, timeout=limit)
    assert isinstance(answer, dict)
    assert answer["at"] is not None, f"no {alert_labels} in Alertmanager {limit} s after the stop: {answer}"
    seen, fired = answer["at"], _epoch(answer["alert"]["startsAt"])
    samples = ask(monitoring, "samples", query=f"{series}[{int(time.time() - stopped) + 2 * scrape}s]")
    assert isinstance(samples, list) and len(samples) == 1, samples
    values = [(float(at), float(value)) for at, value in samples[0]["values"]]
    last_up = max((at for at, value in values if value != 0), default=0.0)
    first_failed = min(at for at, value in values if value == 0 and at > last_up)
    server.check(f"systemctl start {unit}")
    back()
    serving = time.time()
    answer = ask(monitoring, "alert", labels=alert_labels, want=False, timeout=down_for + 4 * scrape + 30)
    assert isinstance(answer, dict) and answer["at"] is not None, f"{alert_labels} did not resolve: {answer}"
    times = AlertTimes(stopped, first_failed, fired, seen, serving, answer["at"])
    # Within `for` and one scrape interval of the scrape that saw it down (one evaluation may
    # fall between them), and within one more scrape interval of the stop itself.
    assert times.fired - times.first_failed_scrape <= down_for + scrape + 0.5, times
    assert times.fired - times.first_failed_scrape >= down_for, times
    assert -scrape <= times.first_failed_scrape - times.stopped <= scrape + 0.5, times
    assert times.seen - times.fired <= 1.5, times
    return times


def dashboards_of(release_family: str) -> list[Path]:
    return sorted((mf.DASHBOARDS_DIR / release_family).glob("*.json")) + sorted(mf.DASHBOARDS_DIR.glob("*.json"))


def panels_without_data(monitoring, release_family: str, scrape: int) -> dict[str, list[str]]:
    """Dashboard -> its queries (panels' and variables') that returned nothing, run as
    Grafana would with every variable at "All"."""
    missing: dict[str, list[str]] = {}
    asked = 0
    for path in dashboards_of(release_family):
        text = path.read_text()
        queries = [grafana_expression(expr, scrape) for _, expr in mf.dashboard_queries(text)]
        labels = [(metric, label) for _, metric, label in variable_queries(text)]
        counts = ask(monitoring, "queries", queries=queries, labels=labels)
        assert isinstance(counts, dict)
        asked += len(counts)
        empty = [q for q, n in counts.items() if n == 0]
        if empty:
            missing[f"{release_family}/{path.name}" if path.parent.name == release_family else path.name] = empty
    print(f"\n{release_family}: {asked} dashboard queries (panels' and variables') run against Prometheus, "
          f"{sum(len(m) for m in missing.values())} without data")
    return missing


def print_alert_times(release: str, times: AlertTimes, down_for: int, scrape: int) -> None:
    print(f"\n{release}: down alert fired {times.fired - times.first_failed_scrape:.1f} s after the first failed "
          f"scrape ({times.first_failed_scrape - times.stopped:.1f} s after the stop; `for` {down_for} s, scrape "
          f"{scrape} s), listed by Alertmanager {times.seen - times.stopped:.1f} s after the stop; resolved "
          f"{times.resolved - times.back:.1f} s after the server served again")
