"""The stack's `monitoring` key, validated into `MonitoringSpec`.

Monitoring is on unless `monitoring.enabled: false`. Where its host runs:
on AWS its own small instance (`host: own`, the default) or the first
MetaServer's host (`host: meta`, cheap: the dev stack); on your own servers
the one server listed under `servers.monitoring`, else the first MetaServer's.
The keys are declared in keys.py; what is here is what a declaration cannot
say: ranges, receivers' shapes, and the 2.4/2.5 exporter settings the
monitoring needs (`[pegasus.server] perf_counter_sink` and `prometheus_port`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from components.spec import keys

if TYPE_CHECKING:
    from components.spec.reader import ConfigReader

# Matched against the whole value (`fullmatch`), as spec/values.py's: with `match` and `$`, a value
# ending in a newline passed and reached Alertmanager's configuration.
URL = re.compile(r"https?://[^\s\"']+")
EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+")
SMARTHOST = re.compile(r"[A-Za-z0-9.-]+:[0-9]{1,5}")
SNS_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:([a-z0-9-]+):[0-9]{12}:[A-Za-z0-9_-]{1,256}")

# Ports of the monitoring: node_exporter on every host; on the monitoring host
# Prometheus, Alertmanager, Grafana and this project's exporter
# (components/render/pegasus_exporter.py; its own default port).
NODE_EXPORTER_PORT = 9100
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
GRAFANA_PORT = 3000
EXPORTER_PORT = 9760
# 2.4/2.5: `[pegasus.server]` of the release's config.ini, where the reporter
# reads `perf_counter_sink` and `prometheus_port` (9091 in the release's file;
# src/reporter/pegasus_counter_reporter.cpp and src/server/config.ini, v2.5.0).
METRICS_SECTION = "pegasus.server"
DEFAULT_PROMETHEUS_PORT = 9091
ROLE_PORTS = {"meta": 34601, "replica": 34801, "collector": 34101}


@dataclass(frozen=True)
class EmailReceiver:
    to: str
    sender: str
    smarthost: str  # host:port of the SMTP server
    username: str
    password: str


@dataclass(frozen=True)
class MonitoringSpec:
    enabled: bool
    placement: str = "own"  # "own": a host of its own; "meta": the first MetaServer's host
    instance_type: str = keys.key("monitoring.instanceType").default
    data_disk_gib: int = keys.key("monitoring.dataDiskGiB").default
    retention_days: int = keys.key("monitoring.retentionDays").default
    scrape_interval_seconds: int = keys.key("monitoring.scrapeIntervalSeconds").default
    disk_full_percent: int = keys.key("monitoring.diskFullPercent").default
    availability_percent: float = keys.key("monitoring.availabilityPercent").default
    down_for_seconds: int = keys.key("monitoring.downForSeconds").default
    grafana: bool = True
    grafana_admin_password: str = ""  # "" makes one on the host, kept root-only
    webhook_url: str = ""
    email: EmailReceiver | None = None
    sns_topic_arn: str = ""

    @property
    def own_host(self) -> bool:
        return self.enabled and self.placement == "own"

    @property
    def sns_region(self) -> str:
        match = SNS_TOPIC.fullmatch(self.sns_topic_arn)
        return match.group(1) if match else ""


DISABLED = MonitoringSpec(enabled=False)


def listed_monitoring_server(raw: Mapping[str, Any]) -> bool:
    """`servers.monitoring` lists a server (its entries are checked with the other servers')."""
    servers = raw.get("servers")
    listed = servers.get("monitoring") if isinstance(servers, Mapping) else None
    return isinstance(listed, list) and len(listed) > 0


def read_monitoring(r: "ConfigReader", raw: Mapping[str, Any], *, own_servers: bool, secret: bool) -> MonitoringSpec:
    """`secret`: the `monitoring` key was set with --secret. Every key is read even when
    monitoring is off (a typo is an error either way)."""
    d = r.obj(raw, "monitoring")
    enabled = r.boolean(d, "monitoring.enabled")
    listed = listed_monitoring_server(raw)
    default_placement = "own" if listed or not own_servers else "meta"
    placement = r.string(d, "monitoring.host", default_placement) or default_placement
    if placement not in keys.key("monitoring.host").choices:
        r.problem("monitoring.host", f"{placement!r} is not supported",
                  "use own (a host of its own) or meta (the first MetaServer's host)")
        placement = default_placement
    if enabled and own_servers:
        if placement == "own" and not listed:
            r.problem("monitoring.host", "'own' needs a server of its own, and servers.monitoring lists none",
                      "list one under servers.monitoring, or set monitoring.host: meta")
        elif placement == "meta" and listed:
            r.problem("monitoring.host", "'meta' puts monitoring on the first MetaServer's host, yet "
                      "servers.monitoring lists a server for it", "remove one of the two")
    instance_type = r.instance_type(d, "monitoring.instanceType")
    data_disk_gib = _bounded(r, d, "monitoring.dataDiskGiB", 10, 16384, "GiB of Prometheus storage")
    if enabled and not own_servers and placement == "meta":
        for key, what in (("instanceType", "is the type of the monitoring host's own instance"),
                          ("dataDiskGiB", "sizes the volume of the monitoring host's own instance")):
            if key in d:
                r.problem(f"monitoring.{key}", f"{what}, and monitoring.host is meta (Prometheus runs on the "
                          "first MetaServer's host, its storage on that host's root disk)",
                          "remove it, or set monitoring.host: own")
    retention = _bounded(r, d, "monitoring.retentionDays", 1, 3650, "days of metrics kept")
    interval = _bounded(r, d, "monitoring.scrapeIntervalSeconds", 1, 300, "seconds between two scrapes")
    disk_full = _bounded(r, d, "monitoring.diskFullPercent", 1, 99,
                         "percent of a data disk in use before DataDiskNearlyFull fires")
    availability = _percent(r, d, "monitoring.availabilityPercent")
    down_for = _bounded(r, d, "monitoring.downForSeconds", 0, 3600, "seconds down before the alert fires")
    grafana, password = _grafana(r, d, secret)
    webhook, email, sns = _receivers(r, d, secret, own_servers=own_servers, own_host=placement == "own")
    if not enabled:
        if own_servers and listed:
            r.problem("servers.monitoring", "lists a server, and monitoring.enabled is false",
                      "remove it, or turn the monitoring on")
        return DISABLED
    return MonitoringSpec(
        enabled=True, placement=placement, instance_type=instance_type, data_disk_gib=data_disk_gib,
        retention_days=retention, scrape_interval_seconds=interval, disk_full_percent=disk_full,
        availability_percent=availability, down_for_seconds=down_for, grafana=grafana,
        grafana_admin_password=password, webhook_url=webhook, email=email, sns_topic_arn=sns)


def _bounded(r: "ConfigReader", d: Mapping[str, Any], key: str, low: int, high: int, what: str) -> int:
    default = keys.key(key).default
    value = r.integer(d, key)
    if value is None or not low <= value <= high:
        r.problem(key, f"{value} is outside {low}..{high} ({what})", f"pick a value in range (default {default})")
        return default
    return value


def _percent(r: "ConfigReader", d: Mapping[str, Any], key: str) -> float:
    default = keys.key(key).default
    value = d.get(key.rsplit(".", 1)[-1], default)
    try:
        number = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        number = -1.0
    if not 0 < number < 100:
        r.problem(key, f"{value!r} is not a percentage between 0 and 100",
                  f"write a number such as 99.5 (default {default:g})")
        return default
    return number


def _grafana(r: "ConfigReader", d: Mapping[str, Any], secret: bool) -> tuple[bool, str]:
    g = r.obj(d, "monitoring.grafana")
    enabled = r.boolean(g, "monitoring.grafana.enabled")
    password = r.string(g, "monitoring.grafana.adminPassword") or ""
    if password and not secret:
        r.problem("monitoring.grafana.adminPassword", "is stored in plain text in the stack file",
                  "set it again with --secret: pulumi config set --secret --path "
                  "pegasus:monitoring.grafana.adminPassword <password>")
    if password and len(password) < 8:
        r.problem("monitoring.grafana.adminPassword", "is shorter than 8 characters", "choose a longer one")
    return enabled, password


def _receivers(r: "ConfigReader", d: Mapping[str, Any], secret: bool, *, own_servers: bool,
               own_host: bool) -> tuple[str, EmailReceiver | None, str]:
    rec = r.obj(d, "monitoring.receivers")
    webhook = ""
    if rec.get("webhook") is not None:
        w = r.obj(rec, "monitoring.receivers.webhook")
        webhook = r.string(w, "monitoring.receivers.webhook.url") or ""
        if not URL.fullmatch(webhook):
            r.problem("monitoring.receivers.webhook.url", f"{webhook!r} is not an http(s) URL",
                      "give the URL Alertmanager posts alerts to (set it with --secret if it holds a token)")
    email = None
    if rec.get("email") is not None:
        e = r.obj(rec, "monitoring.receivers.email")
        values = {k: r.string(e, f"monitoring.receivers.email.{k}") or "" for k in keys.children(
            "monitoring.receivers.email")}
        for key in ("to", "from"):
            if not EMAIL.fullmatch(values[key]):
                r.problem(f"monitoring.receivers.email.{key}", f"{values[key]!r} is not an e-mail address",
                          "write one address, e.g. pegasus-oncall@example.com")
        if not SMARTHOST.fullmatch(values["smarthost"]):
            r.problem("monitoring.receivers.email.smarthost", f"{values['smarthost']!r} is not host:port",
                      "name the SMTP server and its port, e.g. smtp.example.com:587")
        if bool(values["username"]) != bool(values["password"]):
            r.problem("monitoring.receivers.email.password", "username and password go together",
                      "set both for an SMTP server that wants a login, or neither")
        elif values["password"] and not secret:
            r.problem("monitoring.receivers.email.password", "is stored in plain text in the stack file",
                      "set it again with --secret: pulumi config set --secret --path "
                      "pegasus:monitoring.receivers.email.password <password>")
        email = EmailReceiver(to=values["to"], sender=values["from"], smarthost=values["smarthost"],
                              username=values["username"], password=values["password"])
    sns = ""
    if rec.get("sns") is not None:
        s = r.obj(rec, "monitoring.receivers.sns")
        sns = r.string(s, "monitoring.receivers.sns.topicArn") or ""
        if not SNS_TOPIC.fullmatch(sns):
            r.problem("monitoring.receivers.sns.topicArn", f"{sns!r} is not an SNS topic ARN",
                      "copy it from the SNS console: arn:aws:sns:<region>:<account>:<topic>")
        elif own_servers:
            r.problem("monitoring.receivers.sns", "needs an AWS role to publish with, and `servers` lists your "
                      "own servers", "use a webhook or e-mail receiver instead")
        elif not own_host:
            r.problem("monitoring.receivers.sns", "needs the monitoring host's own instance role, and "
                      "monitoring.host is meta", "set monitoring.host: own, or use a webhook or e-mail receiver")
    return webhook, email, sns


# ---------------------------------------------------------------- 2.4/2.5: each process's exporter


def check_exporter_overrides(r: "ConfigReader", monitoring: MonitoringSpec, *, perf_counters: bool,
                             shared: Mapping[str, Mapping[str, str]],
                             roles: Mapping[str, Mapping[str, Mapping[str, str]]], colocated_collector: bool) -> None:
    """With monitoring on 2.4/2.5, every process exports on its `prometheus_port`
    (the program sets `perf_counter_sink = prometheus`): refuse an override that turns
    the exporter off, or a port another process of the same host holds.

    `shared`: `configOverrides`; `roles`: role -> its own overrides (meta, replica,
    collector); `colocated_collector`: the Collector runs on the first MetaServer's host."""
    if not monitoring.enabled or not perf_counters:
        return
    layers = {role: [("configOverrides", shared), (f"{role}.configOverrides", roles.get(role, {}))]
              for role in ROLE_PORTS}
    ports: dict[str, int] = {}
    for role, role_layers in layers.items():
        port, port_key = DEFAULT_PROMETHEUS_PORT, ""
        for prefix, overrides in role_layers:
            section = overrides.get(METRICS_SECTION, {})
            key = f"{prefix}.{METRICS_SECTION}"
            sink = section.get("perf_counter_sink")
            if sink is not None and sink != "prometheus":
                r.problem(f"{key}.perf_counter_sink", f"{sink!r} turns off the exporter the monitoring reads "
                          "(2.4/2.5 serve their metrics to Prometheus only with perf_counter_sink = prometheus)",
                          "remove the override (the program sets prometheus), or set monitoring.enabled: false")
            if "prometheus_port" in section:
                value = section["prometheus_port"]
                if not value.isdigit() or not 0 < int(value) < 65536:
                    r.problem(f"{key}.prometheus_port", f"{value!r} is not a TCP port", "use 1..65535")
                else:
                    port, port_key = int(value), f"{key}.prometheus_port"
        if role == "collector" and colocated_collector and not port_key.startswith("collector."):
            port, port_key = ports["meta"] + 1, ""  # the program's choice (server_files.py): the next port
        ports[role] = port
        taken = {NODE_EXPORTER_PORT: "node_exporter", ROLE_PORTS[role]: f"the {role} role's RPC port"}
        on_monitoring_host = monitoring.placement == "meta" and (
            role == "meta" or role == "collector" and colocated_collector)
        if on_monitoring_host:
            taken.update({PROMETHEUS_PORT: "Prometheus", ALERTMANAGER_PORT: "Alertmanager",
                          EXPORTER_PORT: "the monitoring's exporter"})
            if monitoring.grafana:
                taken[GRAFANA_PORT] = "Grafana"
        if role == "collector" and colocated_collector:
            taken.update({ports["meta"]: "the MetaServer's prometheus_port", ROLE_PORTS["meta"]:
                          "the MetaServer's RPC port"})
        if port in taken:
            where = port_key or "collector.configOverrides.pegasus.server.prometheus_port"
            r.problem(where, f"{role} would export on port {port}, which {taken[port]} holds on the same host",
                      "pick another port" if port_key else
                      "the Collector takes the MetaServer's port + 1: set the Collector's prometheus_port")
