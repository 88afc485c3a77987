"""What the monitoring host receives, checked by the tools that will read it: Prometheus's config
(`promtool check config`), Alertmanager's with every receiver (`amtool check-config`), the
exporter's unit, and Grafana's provisioning and dashboards. Grafana itself is not installed
here (no Debian package; the test machines reach no Grafana repository): its files are
checked against what Grafana reads from them, and every dashboard query is PromQL that
`promtool` accepts. The e2e suite runs those queries against a real Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.render import monitoring_files as mf
from components.render import monitoring_layout as ml
from components.spec import ClusterSpec, build_spec
from tests.support.grafana_queries import grafana_expression, variable_queries
from tests.support.package_builder import build_package

PROMTOOL, AMTOOL = shutil.which("promtool"), shutil.which("amtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) is not "
                                    "installed: scripts/install-test-deps.sh installs it")
needs_amtool = pytest.mark.skipif(AMTOOL is None, reason="amtool (Debian's prometheus-alertmanager package) is not "
                                  "installed: scripts/install-test-deps.sh installs it")
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\ntest-only\n-----END OPENSSH PRIVATE KEY-----\n"
RECEIVERS = {"webhook": {"url": "https://hooks.example.com/pegasus?token=hook-secret"},
             "email": {"to": "oncall@example.com", "from": "pegasus@example.com", "smarthost": "smtp.example.com:587",
                       "username": "pegasus", "password": "mail-secret"},
             "sns": {"topicArn": "arn:aws:sns:eu-west-1:123456789012:pegasus-alerts"}}


def spec_of(tmp_path: Path, release: str, **monitoring) -> ClusterSpec:
    package = build_package(tmp_path / f"package-{release}", version=release, server="placeholder")
    raw = {"clusterName": "c1", "package": str(package), "monitoring": monitoring,
           "ssh": {"user": "admin", "privateKey": KEY, "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 ops"},
           "network": {"adminCidr": "203.0.113.0/24"}}
    return build_spec(raw, stack="test", secret_keys={"pegasus:ssh", "pegasus:monitoring"})


@needs_promtool
@pytest.mark.parametrize("release", ["2.5.0", "2.6.0"])
def test_prometheus_config_passes_promtool_and_reads_26_and_zookeeper_through_the_exporter(tmp_path, release):
    spec = spec_of(tmp_path, release, scrapeIntervalSeconds=5)
    (tmp_path / "prometheus.yml").write_text(mf.prometheus_config(spec))
    done = subprocess.run([PROMTOOL, "check", "config", "--syntax-only", str(tmp_path / "prometheus.yml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load(mf.prometheus_config(spec))
    assert config["global"]["scrape_interval"] == "5s" == config["global"]["evaluation_interval"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    exporter = f"127.0.0.1:{ml.EXPORTER_PORT}"
    assert jobs["zookeeper"]["params"] == {"module": ["zookeeper"]}
    for name in ("zookeeper", *ml.PEGASUS_JOBS.values()):
        through_exporter = name == "zookeeper" or release == "2.6.0"
        assert (jobs[name].get("metrics_path") == "/probe") == through_exporter, name
        if through_exporter:  # `instance` stays the server; the exporter is where Prometheus asks
            assert {"target_label": "__address__", "replacement": exporter} in jobs[name]["relabel_configs"]
    assert jobs["pegasus-exporter"]["static_configs"] == [{"targets": [exporter]}]


def test_the_exporter_unit_listens_for_the_prometheus_beside_it_and_probes_what_it_scrapes(tmp_path):
    spec = spec_of(tmp_path, "2.6.0", scrapeIntervalSeconds=2)
    unit = mf.monitoring_units(spec)[ml.EXPORTER_UNIT]
    [exec_start] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    words = exec_start.removeprefix("ExecStart=").split()
    assert words[:2] == ["/usr/bin/python3", ml.EXPORTER_SCRIPT]
    assert words[words.index("--listen") + 1] == f"127.0.0.1:{ml.EXPORTER_PORT}"
    assert words[words.index("--timeout") + 1] == "2"  # no longer than a scrape
    probed = {words[i + 1] for i, w in enumerate(words) if w == "--targets-file"}
    scraped = {f for job in yaml.safe_load(mf.prometheus_config(spec))["scrape_configs"]
               if job.get("metrics_path") == "/probe" for c in job["file_sd_configs"] for f in c["files"]}
    assert probed == scraped
    script = mf.install_monitoring_script(spec)
    assert "python3-prometheus-client" in script and "pegasus_exporter.py" in script


@needs_amtool
def test_alertmanager_config_with_every_receiver_passes_amtool_and_is_secret(tmp_path):
    spec = spec_of(tmp_path, "2.5.0", receivers=RECEIVERS)
    text = mf.alertmanager_config(spec)
    (tmp_path / "alertmanager.yml").write_text(text)
    done = subprocess.run([AMTOOL, "check-config", str(tmp_path / "alertmanager.yml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    receiver = yaml.safe_load(text)["receivers"][0]
    assert receiver["webhook_configs"][0]["url"].endswith("token=hook-secret")
    assert receiver["email_configs"][0]["auth_password"] == "mail-secret"
    assert receiver["sns_configs"][0]["sigv4"] == {"region": "eu-west-1"}
    # Root and Alertmanager's group only; the install script holding it goes into the state as a secret
    # (components/resources/monitoring.py; tests/program/test_monitoring.py).
    [entry] = [line for line in mf.install_monitoring_script(spec).splitlines()
               if "install_file" in line and "alertmanager.yml" in line]
    assert " 640 " in entry


@needs_amtool
def test_alertmanager_without_receivers_only_lists_alerts(tmp_path):
    (tmp_path / "alertmanager.yml").write_text(mf.alertmanager_config(spec_of(tmp_path, "2.5.0")))
    done = subprocess.run([AMTOOL, "check-config", str(tmp_path / "alertmanager.yml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert yaml.safe_load((tmp_path / "alertmanager.yml").read_text())["receivers"] == [{"name": "operators"}]


# ---------------------------------------------------------------- Grafana's files


def test_grafana_reads_the_provisioned_source_and_the_dashboards_where_the_install_puts_them(tmp_path):
    spec = spec_of(tmp_path, "2.5.0", scrapeIntervalSeconds=10)
    files = mf.grafana_provisioning(spec)
    [source] = yaml.safe_load(files["datasources/pegasus.yml"])["datasources"]
    assert source["uid"] == mf.GRAFANA_DATASOURCE_UID and source["type"] == "prometheus"
    assert source["url"] == f"http://127.0.0.1:{ml.PROMETHEUS_PORT}" and source["jsonData"]["timeInterval"] == "10s"
    [provider] = yaml.safe_load(files["dashboards/pegasus.yml"])["providers"]
    script = mf.install_grafana_script(spec)
    assert provider["type"] == "file" and f"{provider['options']['path']}/pegasus-cluster.json" in script
    drop_in = mf.grafana_drop_in(spec)
    assert f"GF_PATHS_PROVISIONING={ml.GRAFANA_CONF_DIR}/provisioning" in drop_in
    assert all(f"{ml.GRAFANA_CONF_DIR}/provisioning/{name}" in script for name in files)
    # The release's dashboards, and the hosts' one, by file name.
    assert set(mf.dashboards(spec)) == {"pegasus-cluster.json", "pegasus-tables.json", "pegasus-nodes.json"}
    assert mf.dashboards(spec)["pegasus-cluster.json"] == (mf.DASHBOARDS_DIR / "2.5" / "pegasus-cluster.json").read_text()


def _datasources(node) -> list[dict]:
    """Every `datasource` object of a dashboard, panels', targets' and variables' alike."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            found.append(node["datasource"])
        for value in node.values():
            found += _datasources(value)
    elif isinstance(node, list):
        for value in node:
            found += _datasources(value)
    return found


@pytest.mark.parametrize("path", mf.dashboard_paths(), ids=lambda p: str(p.relative_to(mf.DASHBOARDS_DIR)))
def test_every_dashboard_uses_the_provisioned_source_and_variables_grafana_can_fill(path):
    dashboard = json.loads(path.read_text())
    sources = _datasources(dashboard)
    assert sources and all(s == {"type": "prometheus", "uid": mf.GRAFANA_DATASOURCE_UID} for s in sources)
    queries = " ".join(expr for _, expr in mf.dashboard_queries(path.read_text()))
    used = set(re.findall(r"\$(\w+)", queries)) - {"__rate_interval"}
    declared = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    assert used == set(declared), path.name
    for variable in declared.values():
        # "All" selects everything (the e2e suite runs the queries so)
        assert variable["includeAll"] and variable["allValue"] == ".*"
    assert [name for name, _, _ in variable_queries(path.read_text())] == list(declared)
    assert mf.dashboard_queries(path.read_text()), "a dashboard without a query"


def test_dashboards_have_unique_ids_and_each_release_family_its_own_names():
    uids = [json.loads(p.read_text())["uid"] for p in mf.dashboard_paths()]
    assert len(set(uids)) == len(uids) - 2  # the cluster and table dashboards of 2.5 and 2.6 share theirs
    for path in (mf.DASHBOARDS_DIR / "2.6").glob("*.json"):
        for _, expr in mf.dashboard_queries(path.read_text()):
            assert re.search(r"\b(pegasus|zookeeper)_", expr) and not re.search(r"\b(replica|meta|collector)_", expr)
    for path in (mf.DASHBOARDS_DIR / "2.5").glob("*.json"):
        for _, expr in mf.dashboard_queries(path.read_text()):
            assert not re.search(r"\bpegasus_", expr), expr


@needs_promtool
def test_every_dashboard_query_is_promql_promtool_accepts(tmp_path):
    rules = []
    for path in mf.dashboard_paths():
        for i, (_, expr) in enumerate(mf.dashboard_queries(path.read_text())):
            rules.append({"record": f"check:{path.stem.replace('-', '_')}:{len(rules)}",
                          "expr": grafana_expression(expr, scrape_interval_seconds=15)})
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / "queries.yml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(rules) > 40
