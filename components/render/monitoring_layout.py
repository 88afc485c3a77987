"""Where monitoring lives on a host, and on which ports: one place for scripts, configs and rules.

The monitoring host runs Debian's `prometheus` and `prometheus-alertmanager`
under units of this program, as ZooKeeper does: the packages' own units stay
stopped, so an operator's Prometheus elsewhere on the host is never touched.
Every host of the cluster runs `prometheus-node-exporter` the same way.
ZooKeeper (all releases) and Pegasus 2.6's JSON metrics are read through this
project's exporter (components/render/pegasus_exporter.py, on Debian's
`python3-prometheus-client`), listening on the monitoring host's loopback for
its Prometheus only (docs/metrics-reference.md says what it serves).

    /etc/pegasus-monitoring/prometheus.yml           Prometheus's config
    /etc/pegasus-monitoring/rules/*.yml              alert rules
    /etc/pegasus-monitoring/targets/<job>.json       file-based discovery, rewritten at scale-out/in
    /etc/pegasus-monitoring/alertmanager.yml         Alertmanager's config (receivers: root only)
    /var/lib/pegasus-monitoring/prometheus           Prometheus's storage (on AWS: its own encrypted volume)
    /var/lib/pegasus-monitoring/alertmanager         Alertmanager's silences and notification log
    /opt/pegasus-exporter/pegasus_exporter.py        the exporter
"""

from __future__ import annotations

# The ports, declared with the spec (its validation keeps the Pegasus exporters off them).
from components.spec.monitoring import (ALERTMANAGER_PORT, EXPORTER_PORT, GRAFANA_PORT,  # noqa: F401
                                       NODE_EXPORTER_PORT, PROMETHEUS_PORT)

CONF_DIR = "/etc/pegasus-monitoring"
RULES_DIR = f"{CONF_DIR}/rules"
TARGETS_DIR = f"{CONF_DIR}/targets"
DATA_MOUNT = "/var/lib/pegasus-monitoring"  # the monitoring volume's mount point on AWS
PROMETHEUS_DATA = f"{DATA_MOUNT}/prometheus"
ALERTMANAGER_DATA = f"{DATA_MOUNT}/alertmanager"
GRAFANA_CONF_DIR = f"{CONF_DIR}/grafana"
EXPORTER_DIR = "/opt/pegasus-exporter"
EXPORTER_SCRIPT = f"{EXPORTER_DIR}/pegasus_exporter.py"

# The Debian packages (Ubuntu names them alike), each with the file that shows it is installed
# (the binary this program runs, or the exporter's library).
PACKAGES = {
    "prometheus": "/usr/bin/prometheus",
    "prometheus-alertmanager": "/usr/bin/prometheus-alertmanager",
    # the exporter's library (0.16 on Debian 12); no unit
    "python3-prometheus-client": "/usr/lib/python3/dist-packages/prometheus_client/__init__.py",
}
NODE_EXPORTER_PACKAGE = "prometheus-node-exporter"
NODE_EXPORTER_BINARY = "/usr/bin/prometheus-node-exporter"
# The packages' own units, started by their postinst: stopped and disabled only
# where this program installed the package.
PACKAGE_UNITS = {
    "prometheus": "prometheus.service",
    "prometheus-alertmanager": "prometheus-alertmanager.service",
    NODE_EXPORTER_PACKAGE: "prometheus-node-exporter.service",
    "python3-prometheus-client": "",
}
SERVICE_USER = "prometheus"  # made by the packages

PROMETHEUS_UNIT = "pegasus-prometheus.service"
ALERTMANAGER_UNIT = "pegasus-alertmanager.service"
NODE_EXPORTER_UNIT = "pegasus-node-exporter.service"
EXPORTER_UNIT = "pegasus-exporter.service"
MONITORING_UNITS = (PROMETHEUS_UNIT, ALERTMANAGER_UNIT, EXPORTER_UNIT)

# Prometheus jobs, and the file each one discovers its targets from.
NODE_JOB = "node"
ZOOKEEPER_JOB = "zookeeper"
EXPORTER_JOB = "pegasus-exporter"
PEGASUS_JOBS = {"meta": "pegasus-meta", "replica": "pegasus-replica", "collector": "pegasus-collector"}


def targets_file(job: str) -> str:
    return f"{TARGETS_DIR}/{job}.json"
