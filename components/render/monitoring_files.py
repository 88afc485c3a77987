"""Everything the monitoring host and the exporters receive, as text.

Pure functions of the spec and the cluster's addresses, like server_files:
Prometheus's config and alert rules, Alertmanager's config with the
receivers, the targets Prometheus discovers, the units, Grafana's
provisioning and dashboards, and the scripts that install and remove them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from components.render import host_layout as hl
from components.render import monitoring_layout as ml
from components.render.templates import TEMPLATES_DIR, as_root, render
from components.spec.model import ClusterSpec
from components.spec.monitoring import DEFAULT_PROMETHEUS_PORT

MONITORING_TEMPLATES = TEMPLATES_DIR / "monitoring"
DASHBOARDS_DIR = MONITORING_TEMPLATES / "dashboards"
# Uploaded as it is and run by Debian's python3 (it is no module of the program).
EXPORTER_SOURCE = Path(__file__).with_name("pegasus_exporter.py")
EXPORTER_TIMEOUT_SECONDS = 5
WAIT_SECONDS = 60
# Grafana's own apt repository and signing key (https://apt.grafana.com).
GRAFANA_REPOSITORY = "https://apt.grafana.com"
GRAFANA_KEY_URL = "https://apt.grafana.com/gpg.key"
GRAFANA_KEYRING = "/etc/apt/keyrings/grafana.asc"
GRAFANA_SOURCES = "/etc/apt/sources.list.d/grafana.list"
GRAFANA_DROP_IN = "/etc/systemd/system/grafana-server.service.d/pegasus.conf"
GRAFANA_DATASOURCE_UID = "pegasus-prometheus"


def perf_counters(spec: ClusterSpec) -> bool:
    """2.4 and 2.5 serve perf counters in Prometheus's format on `prometheus_port`;
    2.6 (master) serves JSON at /metrics on each role's port (#1548)."""
    return spec.package.name.version_tuple < (2, 6, 0)


def release_family(spec: ClusterSpec) -> str:
    """Which metric names the release serves: its rules and dashboards are chosen by it."""
    return "2.5" if perf_counters(spec) else "2.6"


# ------------------------------------------------------------ targets


@dataclass(frozen=True)
class Target:
    """One host or Pegasus process Prometheus scrapes."""

    node: str  # the host's name in the plan: replica-0, zk-1, monitoring
    kind: str  # what the host is for: zookeeper, meta, replica, collector, monitoring
    address: str  # ip:port


def node_targets(hosts: Mapping[str, tuple[str, str]]) -> list[Target]:
    """`hosts`: host name -> (kind, cluster address), every host of the cluster and the monitoring host."""
    return [Target(node=name, kind=kind, address=f"{ip}:{ml.NODE_EXPORTER_PORT}")
            for name, (kind, ip) in sorted(hosts.items())]


def _file_sd(targets: Sequence[Target], label: str) -> str:
    """Prometheus's file_sd format: one group per target, so each keeps its own labels."""
    groups = [{"targets": [t.address], "labels": {"node": t.node, label: t.kind}} for t in targets]
    return json.dumps(groups, indent=1, sort_keys=True) + "\n"


def targets_files(spec: ClusterSpec, hosts: Mapping[str, tuple[str, str]],
                  pegasus: Mapping[str, Sequence[tuple[str, str]]], zookeeper: Sequence[str]) -> dict[str, str]:
    """Path -> content of every file_sd file. `pegasus`: role -> [(host name, cluster IP)];
    `zookeeper`: the ensemble's ip:port."""
    files = {ml.targets_file(ml.NODE_JOB): _file_sd(node_targets(hosts), "kind")}
    ports = pegasus_metrics_ports(spec)
    for role, job in ml.PEGASUS_JOBS.items():
        servers = pegasus.get(role, ())
        targets = [Target(node=name, kind=role, address=f"{ip}:{ports[role]}") for name, ip in servers]
        files[ml.targets_file(job)] = _file_sd(targets, "role")
    zk = [{"targets": [server], "labels": {}} for server in zookeeper]
    files[ml.targets_file(ml.ZOOKEEPER_JOB)] = json.dumps(zk, indent=1) + "\n"
    return files


def pegasus_metrics_ports(spec: ClusterSpec) -> dict[str, int]:
    """Where Prometheus reads each role. 2.4/2.5: the `prometheus_port` the program
    gives it (distinct for a Collector on a MetaServer's host); 2.6: its RPC port."""
    if not perf_counters(spec):
        return dict(hl.ROLE_PORTS)
    from components.render.server_files import metrics_port

    return {role: metrics_port(spec, role) or DEFAULT_PROMETHEUS_PORT for role in hl.ROLE_PORTS}


def write_targets_script(files: Mapping[str, str]) -> str:
    return as_root(render("monitoring/write_targets.sh", targets_dir=ml.TARGETS_DIR,
                          files=[{"path": p, "content": c} for p, c in sorted(files.items())]))


# ------------------------------------------------------------ configs and rules


def prometheus_config(spec: ClusterSpec) -> str:
    jobs = [{"job": job, "targets_file": ml.targets_file(job), "via_exporter": not perf_counters(spec)}
            for job in ml.PEGASUS_JOBS.values()]
    return render("monitoring/prometheus.yml", cluster_name=spec.cluster_name,
                  scrape_interval=spec.monitoring.scrape_interval_seconds,
                  alertmanager=f"127.0.0.1:{ml.ALERTMANAGER_PORT}", prometheus_port=ml.PROMETHEUS_PORT,
                  rules_dir=ml.RULES_DIR, node_targets=ml.targets_file(ml.NODE_JOB),
                  zookeeper_targets=ml.targets_file(ml.ZOOKEEPER_JOB),
                  exporter=f"127.0.0.1:{ml.EXPORTER_PORT}", pegasus_jobs=jobs)


def alertmanager_config(spec: ClusterSpec) -> str:
    m = spec.monitoring
    email = None
    if m.email:
        email = {"to": m.email.to, "from": m.email.sender, "smarthost": m.email.smarthost,
                 "username": m.email.username, "password": m.email.password, "require_tls": True}
    sns = {"topic_arn": m.sns_topic_arn, "region": m.sns_region} if m.sns_topic_arn else None
    return render("monitoring/alertmanager.yml", cluster_name=spec.cluster_name, webhook=m.webhook_url,
                  email=email, sns=sns, group_wait="30s", group_interval="5m", repeat_interval="4h")


def data_mounts(spec: ClusterSpec) -> list[str]:
    """Mount points whose fill DataDiskNearlyFull watches: every data and shared-log disk
    of a ReplicaServer, and Prometheus's own storage."""
    from components.render.server_files import layout

    lay = layout(spec)
    mounts = [lay.data_mount(i) for i in range(spec.replica.data_disks.count)]
    if spec.replica.slog_disk is not None:
        mounts.append(lay.slog_mount)
    return [*mounts, ml.DATA_MOUNT]


def _promql_regex(paths: Sequence[str]) -> str:
    """An alternation matching exactly these paths, written inside a PromQL string
    (a `.` is `\\.` there: one backslash for the string, one for the regex)."""
    return "|".join(path.replace(".", "\\\\.") for path in paths)


def alert_rules(spec: ClusterSpec) -> dict[str, str]:
    """Rule file name -> content: the hosts' and ZooKeeper's, and the release's."""
    m = spec.monitoring
    down_for = f"{m.down_for_seconds}s"
    rules = {"hosts.yml": render("monitoring/rules/hosts.yml", disk_full_percent=m.disk_full_percent,
                                 data_mounts=_promql_regex(data_mounts(spec)), restart_window="30m",
                                 clock_offset_seconds=1, down_for=down_for)}
    if perf_counters(spec):
        rules["pegasus-perf-counters.yml"] = render("monitoring/rules/pegasus-perf-counters.yml",
                                                    availability_percent=f"{m.availability_percent:g}",
                                                    down_for=down_for)
    else:
        rules["pegasus-metrics.yml"] = render("monitoring/rules/pegasus-metrics.yml", down_for=down_for)
    return rules


# ------------------------------------------------------------ units and scripts


def _unit(description: str, binary: str, args: list[str], protect_home: bool = True) -> str:
    return render("monitoring/monitoring.service", description=description, user=ml.SERVICE_USER,
                  binary=binary, args=args, protect_home=protect_home)


def node_exporter_unit() -> str:
    # systemd: restarts and failed units of this program's services (NRestarts, the unit's state).
    return _unit("node_exporter for the Pegasus cluster's Prometheus", ml.NODE_EXPORTER_BINARY, [
        f"--web.listen-address=:{ml.NODE_EXPORTER_PORT}", "--collector.systemd",
        "--collector.systemd.unit-include=pegasus-.+", "--collector.systemd.enable-restarts-metrics",
        "--no-collector.textfile"], protect_home=False)


def install_node_exporter_script() -> str:
    return as_root(render("monitoring/install_node_exporter.sh", package=ml.NODE_EXPORTER_PACKAGE,
                          binary=ml.NODE_EXPORTER_BINARY, package_unit=ml.PACKAGE_UNITS[ml.NODE_EXPORTER_PACKAGE],
                          unit_name=ml.NODE_EXPORTER_UNIT, unit_path=f"{hl.SYSTEMD_DIR}/{ml.NODE_EXPORTER_UNIT}",
                          unit_text=node_exporter_unit(), port=ml.NODE_EXPORTER_PORT, wait_seconds=WAIT_SECONDS))


def remove_node_exporter_script() -> str:
    return as_root(render("monitoring/remove_node_exporter.sh", unit_name=ml.NODE_EXPORTER_UNIT,
                          unit_path=f"{hl.SYSTEMD_DIR}/{ml.NODE_EXPORTER_UNIT}"))


def listen_address(spec: ClusterSpec) -> str:
    """On AWS the security groups decide who reaches Prometheus, Alertmanager and Grafana
    (adminCidr only); your own servers have no such group: loopback, reached by `ssh -L`."""
    return "127.0.0.1" if spec.servers else "0.0.0.0"


def exporter_unit(spec: ClusterSpec) -> str:
    """The exporter listens on the loopback address: only the Prometheus beside it asks it.
    It probes only the servers of the targets files Prometheus reads."""
    files = [ml.targets_file(job) for job in (*ml.PEGASUS_JOBS.values(), ml.ZOOKEEPER_JOB)]
    timeout = max(1, min(EXPORTER_TIMEOUT_SECONDS, spec.monitoring.scrape_interval_seconds))
    return render("pegasus_exporter.service", script_path=ml.EXPORTER_SCRIPT, listen=f"127.0.0.1:{ml.EXPORTER_PORT}",
                  timeout=timeout, targets_files=files)


def monitoring_units(spec: ClusterSpec) -> dict[str, str]:
    listen = listen_address(spec)
    m = spec.monitoring
    return {
        ml.PROMETHEUS_UNIT: _unit("Prometheus of the Pegasus cluster", ml.PACKAGES["prometheus"], [
            f"--config.file={ml.CONF_DIR}/prometheus.yml", f"--storage.tsdb.path={ml.PROMETHEUS_DATA}",
            f"--storage.tsdb.retention.time={m.retention_days}d",
            f"--web.listen-address={listen}:{ml.PROMETHEUS_PORT}"]),
        ml.ALERTMANAGER_UNIT: _unit("Alertmanager of the Pegasus cluster", ml.PACKAGES["prometheus-alertmanager"], [
            f"--config.file={ml.CONF_DIR}/alertmanager.yml", f"--storage.path={ml.ALERTMANAGER_DATA}",
            f"--web.listen-address={listen}:{ml.ALERTMANAGER_PORT}",
            # One Alertmanager: no gossip port for peers that do not exist.
            "--cluster.listen-address="]),
        ml.EXPORTER_UNIT: exporter_unit(spec),
    }


def install_monitoring_script(spec: ClusterSpec) -> str:
    files = [
        {"path": f"{ml.CONF_DIR}/prometheus.yml", "content": prometheus_config(spec), "mode": "644",
         "service": ml.PROMETHEUS_UNIT, "on_change": "reload", "check": "prometheus"},
        {"path": f"{ml.CONF_DIR}/alertmanager.yml", "content": alertmanager_config(spec), "mode": "640",
         "service": ml.ALERTMANAGER_UNIT, "on_change": "reload", "check": "alertmanager"},
        *({"path": f"{ml.RULES_DIR}/{name}", "content": text, "mode": "644", "service": ml.PROMETHEUS_UNIT,
           "on_change": "reload", "check": "rules"} for name, text in sorted(alert_rules(spec).items())),
        {"path": ml.EXPORTER_SCRIPT, "content": EXPORTER_SOURCE.read_text(), "mode": "644",
         "service": ml.EXPORTER_UNIT, "on_change": "restart", "check": "python"},
    ]
    units = [{"name": name, "path": f"{hl.SYSTEMD_DIR}/{name}", "text": text}
             for name, text in monitoring_units(spec).items()]
    packages = [f"{p}={binary}={ml.PACKAGE_UNITS[p]}" for p, binary in ml.PACKAGES.items()]
    return as_root(render(
        "monitoring/install_monitoring.sh", packages=packages,
        require_mount=ml.DATA_MOUNT if spec.monitoring.own_host and not spec.servers else "",
        dirs=[ml.CONF_DIR, ml.RULES_DIR, ml.TARGETS_DIR, ml.EXPORTER_DIR],
        data_dirs=[ml.PROMETHEUS_DATA, ml.ALERTMANAGER_DATA],
        user=ml.SERVICE_USER, files=files, rules_dir=ml.RULES_DIR, rules_service=ml.PROMETHEUS_UNIT, units=units,
        ready_urls=[f"http://127.0.0.1:{ml.PROMETHEUS_PORT}/-/ready",
                    f"http://127.0.0.1:{ml.ALERTMANAGER_PORT}/-/ready",
                    f"http://127.0.0.1:{ml.EXPORTER_PORT}/metrics"],
        wait_seconds=WAIT_SECONDS))


def remove_monitoring_script() -> str:
    return as_root(render("monitoring/remove_monitoring.sh",
                          units=[{"name": u, "path": f"{hl.SYSTEMD_DIR}/{u}"} for u in ml.MONITORING_UNITS],
                          dirs=[ml.CONF_DIR, ml.EXPORTER_DIR, ml.PROMETHEUS_DATA, ml.ALERTMANAGER_DATA],
                          data_mount=ml.DATA_MOUNT))


# ------------------------------------------------------------ Grafana


def dashboards(spec: ClusterSpec) -> dict[str, str]:
    """File name -> dashboard JSON: the node dashboard, and the release's cluster and table ones."""
    found = {path.name: path.read_text() for path in sorted((DASHBOARDS_DIR / release_family(spec)).glob("*.json"))}
    found.update({path.name: path.read_text() for path in sorted(DASHBOARDS_DIR.glob("*.json"))})
    return found


def grafana_provisioning(spec: ClusterSpec) -> dict[str, str]:
    """Relative path under the provisioning directory -> content. The data source carries
    the scrape interval: Grafana's `$__rate_interval` (at least four of them) follows it."""
    datasource = {"apiVersion": 1, "datasources": [{
        "name": "Prometheus", "uid": GRAFANA_DATASOURCE_UID, "type": "prometheus", "access": "proxy",
        "url": f"http://127.0.0.1:{ml.PROMETHEUS_PORT}", "isDefault": True, "editable": False,
        "jsonData": {"timeInterval": f"{spec.monitoring.scrape_interval_seconds}s"}}]}
    provider = {"apiVersion": 1, "providers": [{
        "name": "pegasus", "folder": "Pegasus", "type": "file", "disableDeletion": True,
        "allowUiUpdates": False, "options": {"path": f"{ml.GRAFANA_CONF_DIR}/dashboards"}}]}
    return {"datasources/pegasus.yml": json.dumps(datasource, indent=1) + "\n",
            "dashboards/pegasus.yml": json.dumps(provider, indent=1) + "\n"}


def grafana_drop_in(spec: ClusterSpec) -> str:
    env = {"GF_PATHS_PROVISIONING": f"{ml.GRAFANA_CONF_DIR}/provisioning",
           "GF_SERVER_HTTP_ADDR": listen_address(spec), "GF_SERVER_HTTP_PORT": str(ml.GRAFANA_PORT),
           "GF_SECURITY_ADMIN_PASSWORD__FILE": f"{ml.GRAFANA_CONF_DIR}/admin-password",
           "GF_USERS_ALLOW_SIGN_UP": "false", "GF_ANALYTICS_REPORTING_ENABLED": "false",
           "GF_ANALYTICS_CHECK_FOR_UPDATES": "false"}
    lines = ["# Written by the Pegasus Pulumi program: Grafana reads this program's provisioning.",
             "[Service]", *(f"Environment={key}={value}" for key, value in env.items())]
    return "\n".join(lines) + "\n"


def install_grafana_script(spec: ClusterSpec) -> str:
    provisioning = f"{ml.GRAFANA_CONF_DIR}/provisioning"
    files = [{"path": f"{provisioning}/{name}", "content": text} for name, text in grafana_provisioning(spec).items()]
    files += [{"path": f"{ml.GRAFANA_CONF_DIR}/dashboards/{name}", "content": text}
              for name, text in dashboards(spec).items()]
    return as_root(render(
        "monitoring/install_grafana.sh", repository=GRAFANA_REPOSITORY, key_url=GRAFANA_KEY_URL,
        keyring=GRAFANA_KEYRING, sources_list=GRAFANA_SOURCES, provisioning_dir=provisioning,
        dashboards_dir=f"{ml.GRAFANA_CONF_DIR}/dashboards", files=files,
        password=spec.monitoring.grafana_admin_password, password_file=f"{ml.GRAFANA_CONF_DIR}/admin-password",
        drop_in_path=GRAFANA_DROP_IN, drop_in=grafana_drop_in(spec), port=ml.GRAFANA_PORT,
        wait_seconds=WAIT_SECONDS))


def remove_grafana_script() -> str:
    return as_root(render("monitoring/remove_grafana.sh", drop_in_path=GRAFANA_DROP_IN,
                          dirs=[ml.GRAFANA_CONF_DIR]))


def dashboard_queries(text: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel of a dashboard, rows' panels included."""
    found: list[tuple[str, str]] = []

    def walk(panels: list) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((panel.get("title", ""), target["expr"]))
    walk(json.loads(text).get("panels", []))
    return found


def dashboard_paths() -> list[Path]:
    return sorted(DASHBOARDS_DIR.rglob("*.json"))
