"""The stack's `monitoring` key, validated into `MonitoringSpec`.

Monitoring is on unless `monitoring.enabled: false`. Where its host runs:
on AWS its own small instance (`host: own`, the default) or the first
MetaServer's host (`host: meta`, cheap: the dev stack); on your own servers
the one server listed under `servers.monitoring`, else the first MetaServer's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from components.spec.reader import ConfigReader

PLACEMENTS = ("own", "meta")
KEYS = ("enabled", "host", "instanceType", "dataDiskGiB", "retentionDays", "scrapeIntervalSeconds",
        "diskFullPercent", "availabilityPercent", "grafana", "receivers")
URL = re.compile(r"^https?://[^\s\"']+$")
EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+$")
SMARTHOST = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")
SNS_TOPIC = re.compile(r"^arn:aws[a-z-]*:sns:([a-z0-9-]+):[0-9]{12}:[A-Za-z0-9_-]{1,256}$")


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
    instance_type: str = "t3.medium"
    data_disk_gib: int = 50
    retention_days: int = 15
    scrape_interval_seconds: int = 15
    disk_full_percent: int = 85
    availability_percent: float = 99.0
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
        match = SNS_TOPIC.match(self.sns_topic_arn)
        return match.group(1) if match else ""


DISABLED = MonitoringSpec(enabled=False)


def read_monitoring(r: "ConfigReader", raw: Mapping[str, Any], *, own_servers: bool, listed_host: bool,
                    secret: bool) -> MonitoringSpec:
    """`listed_host`: `servers.monitoring` lists a server; `secret`: the key was set with --secret."""
    d = r.obj(raw, "monitoring", KEYS)
    if not r.boolean(d, "monitoring.enabled", True):
        return DISABLED
    default_placement = "own" if listed_host or not own_servers else "meta"
    placement = r.choice(d, "monitoring.host", default_placement, PLACEMENTS)
    if own_servers:
        for key in ("instanceType", "dataDiskGiB"):
            if key in d:
                r.problem(f"monitoring.{key}", "describes a machine AWS makes, and `servers` lists your own",
                          "remove it: the monitoring host is servers.monitoring or the first MetaServer's host")
        if placement == "own" and not listed_host:
            r.problem("monitoring.host", "'own' needs a server of its own, and servers.monitoring lists none",
                      "list one under servers.monitoring, or set monitoring.host: meta")
        elif placement == "meta" and listed_host:
            r.problem("monitoring.host", "'meta' puts monitoring on the first MetaServer's host, yet "
                      "servers.monitoring lists a server for it", "remove one of the two")
    spec = MonitoringSpec(
        enabled=True, placement=placement,
        instance_type=r.instance_type(d, "monitoring.instanceType", "t3.medium"),
        data_disk_gib=_bounded(r, d, "monitoring.dataDiskGiB", 50, 10, 16384, "GiB of Prometheus storage"),
        retention_days=_bounded(r, d, "monitoring.retentionDays", 15, 1, 3650, "days of metrics kept"),
        scrape_interval_seconds=_bounded(r, d, "monitoring.scrapeIntervalSeconds", 15, 1, 300,
                                         "seconds between two scrapes"),
        disk_full_percent=_bounded(r, d, "monitoring.diskFullPercent", 85, 1, 99,
                                   "percent of a data disk in use before DataDiskNearlyFull fires"),
        availability_percent=_percent(r, d, "monitoring.availabilityPercent", 99.0),
    )
    grafana, password = _grafana(r, d, secret)
    webhook, email, sns = _receivers(r, d, secret, own_servers=own_servers, own_host=placement == "own")
    return MonitoringSpec(**{**spec.__dict__, "grafana": grafana, "grafana_admin_password": password,
                             "webhook_url": webhook, "email": email, "sns_topic_arn": sns})


def _bounded(r: "ConfigReader", d: Mapping[str, Any], key: str, default: int, low: int, high: int, what: str) -> int:
    value = r.integer(d, key, default)
    if value is None or not low <= value <= high:
        r.problem(key, f"{value} is outside {low}..{high} ({what})", f"pick a value in range (default {default})")
        return default
    return value


def _percent(r: "ConfigReader", d: Mapping[str, Any], key: str, default: float) -> float:
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
    g = r.obj(d, "monitoring.grafana", ("enabled", "adminPassword"))
    enabled = r.boolean(g, "monitoring.grafana.enabled", True)
    password = r.string(g, "monitoring.grafana.adminPassword", "") or ""
    if password and not secret:
        r.problem("monitoring.grafana.adminPassword", "is stored in plain text in the stack file",
                  "set it again with --secret: pulumi config set --secret --path "
                  "pegasus:monitoring.grafana.adminPassword <password>")
    if password and len(password) < 8:
        r.problem("monitoring.grafana.adminPassword", "is shorter than 8 characters", "choose a longer one")
    return enabled, password


def _receivers(r: "ConfigReader", d: Mapping[str, Any], secret: bool, *, own_servers: bool,
               own_host: bool) -> tuple[str, EmailReceiver | None, str]:
    rec = r.obj(d, "monitoring.receivers", ("webhook", "email", "sns"))
    webhook = ""
    if rec.get("webhook") is not None:
        w = r.obj(rec, "monitoring.receivers.webhook", ("url",))
        webhook = r.string(w, "monitoring.receivers.webhook.url", "") or ""
        if not URL.match(webhook):
            r.problem("monitoring.receivers.webhook.url", f"{webhook!r} is not an http(s) URL",
                      "give the URL Alertmanager posts alerts to (set it with --secret if it holds a token)")
    email = None
    if rec.get("email") is not None:
        e = r.obj(rec, "monitoring.receivers.email", ("to", "from", "smarthost", "username", "password"))
        values = {k: r.string(e, f"monitoring.receivers.email.{k}", "") or "" for k in
                  ("to", "from", "smarthost", "username", "password")}
        for key in ("to", "from"):
            if not EMAIL.match(values[key]):
                r.problem(f"monitoring.receivers.email.{key}", f"{values[key]!r} is not an e-mail address",
                          "write one address, e.g. pegasus-oncall@example.com")
        if not SMARTHOST.match(values["smarthost"]):
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
        s = r.obj(rec, "monitoring.receivers.sns", ("topicArn",))
        sns = r.string(s, "monitoring.receivers.sns.topicArn", "") or ""
        if not SNS_TOPIC.match(sns):
            r.problem("monitoring.receivers.sns.topicArn", f"{sns!r} is not an SNS topic ARN",
                      "copy it from the SNS console: arn:aws:sns:<region>:<account>:<topic>")
        elif own_servers:
            r.problem("monitoring.receivers.sns", "needs an AWS role to publish with, and `servers` lists your "
                      "own servers", "use a webhook or e-mail receiver instead")
        elif not own_host:
            r.problem("monitoring.receivers.sns", "needs the monitoring host's own instance role, and "
                      "monitoring.host is meta", "set monitoring.host: own, or use a webhook or e-mail receiver")
    return webhook, email, sns
