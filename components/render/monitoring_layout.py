"""Where monitoring lives on a host, and on which ports: one place for scripts, configs and rules.

The monitoring host runs Debian's `prometheus` and `prometheus-alertmanager`
under units of this program, as ZooKeeper does: the packages' own units stay
stopped, so an operator's Prometheus elsewhere on the host is never touched.
Every host of the cluster runs `prometheus-node-exporter` the same way.
ZooKeeper (all releases) and Pegasus 2.6's JSON metrics are read through this
project's exporter on the monitoring host (docs/metrics-reference.md).

    /etc/pegasus-monitoring/prometheus.yml           Prometheus's config
    /etc/pegasus-monitoring/rules/*.yml              alert rules
    /etc/pegasus-monitoring/targets/<job>.json       file-based discovery, rewritten at scale-out/in
    /etc/pegasus-monitoring/alertmanager.yml         Alertmanager's config (receivers: root only)
    /var/lib/pegasus-monitoring/prometheus           Prometheus's storage (on AWS: its own encrypted volume)
    /var/lib/pegasus-monitoring/alertmanager         Alertmanager's silences and notification log
"""

from __future__ import annotations

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
GRAFANA_PORT = 3000
# This project's exporter (ZooKeeper for every release, 2.6's JSON): on the monitoring host's loopback.
EXPORTER_PORT = 9180
NODE_EXPORTER_PORT = 9100

CONF_DIR = "/etc/pegasus-monitoring"
RULES_DIR = f"{CONF_DIR}/rules"
TARGETS_DIR = f"{CONF_DIR}/targets"
DATA_MOUNT = "/var/lib/pegasus-monitoring"  # the monitoring volume's mount point on AWS
PROMETHEUS_DATA = f"{DATA_MOUNT}/prometheus"
ALERTMANAGER_DATA = f"{DATA_MOUNT}/alertmanager"
GRAFANA_CONF_DIR = f"{CONF_DIR}/grafana"

# The Debian packages (Ubuntu names them alike) and the binaries this program runs from them.
PACKAGES = {
    "prometheus": "/usr/bin/prometheus",
    "prometheus-alertmanager": "/usr/bin/prometheus-alertmanager",
}
NODE_EXPORTER_PACKAGE = "prometheus-node-exporter"
NODE_EXPORTER_BINARY = "/usr/bin/prometheus-node-exporter"
# The packages' own units, started by their postinst: stopped and disabled only
# where this program installed the package.
PACKAGE_UNITS = {
    "prometheus": "prometheus.service",
    "prometheus-alertmanager": "prometheus-alertmanager.service",
    NODE_EXPORTER_PACKAGE: "prometheus-node-exporter.service",
}
SERVICE_USER = "prometheus"  # made by the packages

PROMETHEUS_UNIT = "pegasus-prometheus.service"
ALERTMANAGER_UNIT = "pegasus-alertmanager.service"
NODE_EXPORTER_UNIT = "pegasus-node-exporter.service"
MONITORING_UNITS = (PROMETHEUS_UNIT, ALERTMANAGER_UNIT)

# Prometheus jobs, and the file each one discovers its targets from.
NODE_JOB = "node"
ZOOKEEPER_JOB = "zookeeper"
EXPORTER_JOB = "pegasus-exporter"
PEGASUS_JOBS = {"meta": "pegasus-meta", "replica": "pegasus-replica", "collector": "pegasus-collector"}


def targets_file(job: str) -> str:
    return f"{TARGETS_DIR}/{job}.json"
