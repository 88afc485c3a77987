"""Realistic render contexts of the monitoring templates (templates/monitoring/), as
components/monitoring_files.py passes them: merged into host_contexts.script_contexts,
so each is rendered, parsed and shellchecked with the others."""

from __future__ import annotations

from components.render import host_layout as hl
from components.render import monitoring_layout as ml

UNIT = {"description": "Prometheus of the Pegasus cluster", "user": ml.SERVICE_USER, "binary": "/usr/bin/prometheus",
        "args": ["--config.file=/etc/pegasus-monitoring/prometheus.yml", "--web.listen-address=0.0.0.0:9090"],
        "protect_home": True}
FILES = [
    {"path": f"{ml.CONF_DIR}/prometheus.yml", "content": "global: {}\n", "mode": "644",
     "service": ml.PROMETHEUS_UNIT, "on_change": "reload", "check": "prometheus"},
    {"path": f"{ml.CONF_DIR}/alertmanager.yml", "content": "route: {receiver: operators}\n", "mode": "640",
     "service": ml.ALERTMANAGER_UNIT, "on_change": "reload", "check": "alertmanager"},
    {"path": f"{ml.RULES_DIR}/hosts.yml", "content": "groups: []\n", "mode": "644",
     "service": ml.PROMETHEUS_UNIT, "on_change": "reload", "check": "rules"},
    {"path": ml.EXPORTER_SCRIPT, "content": "print('exporter')\n", "mode": "644", "service": ml.EXPORTER_UNIT,
     "on_change": "restart", "check": "python"},
]


def monitoring_contexts() -> dict[str, dict]:
    units = [{"name": ml.PROMETHEUS_UNIT, "path": f"{hl.SYSTEMD_DIR}/{ml.PROMETHEUS_UNIT}", "text": "[Unit]\n"},
             {"name": ml.ALERTMANAGER_UNIT, "path": f"{hl.SYSTEMD_DIR}/{ml.ALERTMANAGER_UNIT}", "text": "[Unit]\n"}]
    return {
        "monitoring/monitoring.service": UNIT,
        "monitoring/prometheus.yml": {
            "cluster_name": "prod_kv", "scrape_interval": 15, "prometheus_port": ml.PROMETHEUS_PORT,
            "alertmanager": "127.0.0.1:9093", "rules_dir": ml.RULES_DIR,
            "node_targets": ml.targets_file(ml.NODE_JOB), "zookeeper_targets": ml.targets_file(ml.ZOOKEEPER_JOB),
            "exporter": f"127.0.0.1:{ml.EXPORTER_PORT}",
            "pegasus_jobs": [{"job": "pegasus-meta", "targets_file": ml.targets_file("pegasus-meta"),
                              "via_exporter": True}]},
        "monitoring/alertmanager.yml": {
            "cluster_name": "prod_kv", "webhook": "https://hooks.example.com/pegasus", "email": None, "sns": None,
            "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"},
        "monitoring/rules/hosts.yml": {"disk_full_percent": 85, "data_mounts": "/home/pegasus/ssd1",
                                       "restart_window": "30m", "clock_offset_seconds": 1,
                                       "down_for": "60s"},
        "monitoring/rules/pegasus-perf-counters.yml": {"availability_percent": "99", "down_for": "60s"},
        "monitoring/rules/pegasus-metrics.yml": {"down_for": "60s"},
        "monitoring/install_node_exporter.sh": {
            "package": ml.NODE_EXPORTER_PACKAGE, "binary": ml.NODE_EXPORTER_BINARY,
            "package_unit": "prometheus-node-exporter.service", "unit_name": ml.NODE_EXPORTER_UNIT,
            "unit_path": f"{hl.SYSTEMD_DIR}/{ml.NODE_EXPORTER_UNIT}", "unit_text": "[Unit]\n",
            "port": ml.NODE_EXPORTER_PORT, "wait_seconds": 60},
        "monitoring/remove_node_exporter.sh": {"unit_name": ml.NODE_EXPORTER_UNIT,
                                               "unit_path": f"{hl.SYSTEMD_DIR}/{ml.NODE_EXPORTER_UNIT}"},
        "monitoring/install_monitoring.sh": {
            "packages": ["prometheus=/usr/bin/prometheus=prometheus.service",
                         "python3-prometheus-client=/usr/lib/python3/dist-packages/prometheus_client/__init__.py="],
            "require_mount": ml.DATA_MOUNT,
            "dirs": [ml.CONF_DIR, ml.RULES_DIR, ml.TARGETS_DIR], "data_dirs": [ml.PROMETHEUS_DATA],
            "user": ml.SERVICE_USER, "files": FILES, "rules_dir": ml.RULES_DIR,
            "rules_service": ml.PROMETHEUS_UNIT, "units": units,
            "ready_urls": ["http://127.0.0.1:9090/-/ready"], "wait_seconds": 60},
        "monitoring/remove_monitoring.sh": {"units": units, "dirs": [ml.CONF_DIR, ml.PROMETHEUS_DATA],
                                            "data_mount": ml.DATA_MOUNT},
        "monitoring/write_targets.sh": {
            "targets_dir": ml.TARGETS_DIR,
            "files": [{"path": ml.targets_file("node"), "content": '[{"targets": ["10.0.1.21:9100"]}]\n'}]},
        "monitoring/install_grafana.sh": {
            "repository": "https://apt.grafana.com", "key_url": "https://apt.grafana.com/gpg.key",
            "keyring": "/etc/apt/keyrings/grafana.asc", "sources_list": "/etc/apt/sources.list.d/grafana.list",
            "provisioning_dir": f"{ml.GRAFANA_CONF_DIR}/provisioning",
            "dashboards_dir": f"{ml.GRAFANA_CONF_DIR}/dashboards",
            "files": [{"path": f"{ml.GRAFANA_CONF_DIR}/dashboards/pegasus-nodes.json", "content": "{}\n"}],
            "password": "", "password_file": f"{ml.GRAFANA_CONF_DIR}/admin-password",
            "drop_in_path": "/etc/systemd/system/grafana-server.service.d/pegasus.conf",
            "drop_in": "[Service]\n", "port": ml.GRAFANA_PORT, "wait_seconds": 60},
        "monitoring/remove_grafana.sh": {"drop_in_path": "/etc/systemd/system/grafana-server.service.d/pegasus.conf",
                                         "dirs": [ml.GRAFANA_CONF_DIR]},
    }
