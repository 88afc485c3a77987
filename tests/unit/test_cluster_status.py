"""`make status` (components/operations/cluster_status.py, tools/status.py): the host and
cluster scripts run for real against fakes of systemctl, a role's /version, a
MetaServer and Alertmanager; the table from what they report."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from components.operations import cluster_status as cs
from components.render.templates import render
from components.ssh.session import SSH_FAILED, SshResult
from components.ssh.tunnel import SshEndpoint
from tests.unit.script_runner import FakeMeta, run_script


def test_ssh_hints_of_the_stack_output_give_user_address_and_bastion():
    assert cs.parse_ssh_hint("meta-0", "ssh admin@10.0.1.5") == cs.HostAccess("meta-0", "10.0.1.5", "admin", None)
    jumped = cs.parse_ssh_hint("replica-3", "ssh -J ops@bastion.example.net:2222 admin@10.0.2.7")
    assert jumped.address == "10.0.2.7" and jumped.bastion == SshEndpoint("bastion.example.net", "ops", 2222)


class Answers:
    """An HTTP server answering fixed JSON per path (a role's /version, Alertmanager's API)."""

    def __init__(self, answers: dict[str, object]):
        fake = self
        self.answers = answers

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = fake.answers.get(self.path.split("?")[0])
                data = json.dumps(body).encode()
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


FAKE_SYSTEMCTL = """#!/usr/bin/env bash
# systemctl show -p PROP --value UNIT: answers from $STATE/UNIT.PROP (LoadState not-found without one)
unit=${@: -1}
prop=$3
if [ -e "__STATE__/$unit.$prop" ]; then cat "__STATE__/$unit.$prop"; elif [ "$prop" = LoadState ]; then echo not-found; fi
"""


def fake_unit(state: Path, unit: str, **props: str) -> None:
    for prop, value in props.items():
        (state / f"{unit}.{prop}").write_text(value + "\n")


def test_probe_script_reports_units_their_version_uptime_and_data_disks(tmp_path):
    version = Answers({"/version": {"Version": "2.5.0", "GitCommit": "8f3c2ab"}})
    fake_bin, state = tmp_path / "bin", tmp_path / "state"
    fake_bin.mkdir()
    state.mkdir()
    (fake_bin / "systemctl").write_text(FAKE_SYSTEMCTL.replace("__STATE__", str(state)))
    (fake_bin / "systemctl").chmod(0o755)
    for d in ("ssd1", "ssd2"):
        (tmp_path / d).mkdir()
    config = tmp_path / "config.ini"
    config.write_text(f"[replication]\n  data_dirs = ssd1:{tmp_path}/ssd1,ssd2:{tmp_path}/ssd2\n")
    boot = float(Path("/proc/uptime").read_text().split()[0])
    # The replica under the cluster's unit, the meta still under the name stacks deployed before gave it.
    fake_unit(state, "pegasus-c1-replica.service", LoadState="loaded", ActiveState="active",
              ActiveEnterTimestampMonotonic=str(int((boot - 3600) * 1e6)),
              ExecStart=f"{{ path=/x/bin/pegasus_server ; argv[]=/x/bin/pegasus_server {config} -app_list replica ; "
                        "ignore_errors=no ; start_time=[n/a] ; status=0/0 }")
    fake_unit(state, "pegasus-meta.service", LoadState="loaded", ActiveState="failed")
    script = render("status_probe.sh", role_ports={"meta": 1, "replica": version.port, "collector": 2},
                    role_units={role: [f"pegasus-c1-{role}.service", f"pegasus-{role}.service"]
                                for role in ("meta", "replica", "collector")})
    try:
        done = run_script(script, tmp_path, fake_bin=fake_bin)
    finally:
        version.close()
    assert done.returncode == 0, done.stderr
    report = cs.parse_host_report(cs.HostAccess("replica-0", "10.0.2.5", "admin", None),
                                  SshResult("10.0.2.5", 0, done.stdout))
    assert report.reachable and report.hostname
    roles = {r.role: r for r in report.roles}
    assert set(roles) == {"meta", "replica"}  # no collector unit here
    assert roles["meta"].state == "failed" and roles["meta"].version is None
    assert roles["replica"].version == "2.5.0" and 3590 <= roles["replica"].uptime_s <= 3700
    assert [d[1] for d in report.disks] == [f"{tmp_path}/ssd1", f"{tmp_path}/ssd2"]
    assert all(0 < used <= size for _, _, used, size in report.disks)


def test_cluster_script_reads_the_meta_servers_and_alertmanager(tmp_path):
    meta = FakeMeta()
    meta.nodes = {"10.0.2.5:34801": "ALIVE", "10.0.2.6:34801": "UNALIVE"}
    meta.replica_counts = {"10.0.2.5:34801": 8}
    meta.tables = ["temp"]
    meta.unhealthy = {"temp": 2}
    alertmanager = Answers({"/api/v2/alerts": [{"labels": {"alertname": "PegasusReplicaServerDown",
                                                           "severity": "critical", "instance": "10.0.2.6:34801"},
                                                "annotations": {"summary": "replica down"}}]})
    try:
        done = run_script(render("status_cluster.sh", meta_addresses=["127.0.0.1:1", meta.address],
                                 alertmanager=f"127.0.0.1:{alertmanager.port}"), tmp_path)
    finally:
        meta.close()
        alertmanager.close()
    assert done.returncode == 0, done.stderr
    view = cs.parse_cluster_view(SshResult("m", 0, done.stdout))
    assert view.nodes["10.0.2.6:34801"]["status"] == "UNALIVE" and not view.error
    assert cs.unhealthy_partitions(view) and cs.unhealthy_partitions(view)[0].startswith("temp: 2 of 8")
    assert cs.firing_alerts(view) == ["PegasusReplicaServerDown [critical] 10.0.2.6:34801 replica down"]


def host_output(hostname: str, ip: str, *roles: tuple[str, str, str]) -> str:
    lines = [f"host\t{hostname}\t{ip}"]
    for role, state, version in roles:
        lines.append(f"role\t{role}\t{state}\t{7200 if state == 'active' else '-'}\t{version}")
        if role == "replica":
            lines.append(f"disk\treplica\t/home/pegasus/ssd1/c1\t{30 * 2**30}\t{100 * 2**30}")
            lines.append(f"disk\treplica\t/home/pegasus/ssd2/c1\t{70 * 2**30}\t{100 * 2**30}")
    return "\n".join(lines) + "\n"


# `monitoring` as the program exports it (components/resources/monitoring.py), here on its own host.
OUTPUTS = {"clusterName": "c1", "metaServers": "10.0.1.5:34601",
           "monitoring": {"host": "monitoring-0", "ssh": "ssh admin@10.0.3.9", "alertmanager": "http://10.0.3.9:9093",
                          "prometheus": "http://10.0.3.9:9090", "tunnel": "ssh -N -L 9090:127.0.0.1:9090 admin@10.0.3.9"},
           "ssh": {"meta-0": "ssh admin@10.0.1.5", "replica-0": "ssh admin@10.0.2.5", "replica-1": "ssh admin@10.0.2.6",
                   "replica-2": "ssh admin@10.0.2.7", "zk-0": "ssh admin@10.0.0.5"}}


def fake_runner(nodes_status: dict[str, str]):
    hosts = {
        "10.0.1.5": host_output("ip-10-0-1-5", "10.0.1.5", ("meta", "active", "2.6.0"), ("collector", "active", "2.6.0")),
        "10.0.2.5": host_output("ip-10-0-2-5.internal", "10.0.2.5", ("replica", "active", "2.6.0")),
        "10.0.2.6": host_output("ip-10-0-2-6.internal", "10.0.2.6", ("replica", "inactive", "-")),
        "10.0.0.5": host_output("zk0", "10.0.0.5"),
    }
    # 2.6 names nodes host:port (its reverse name)
    details = {f"{name}:34801": {"address": f"{name}:34801", "status": s, "primary_count": "4", "secondary_count": "8"}
               for name, s in nodes_status.items()}
    cluster = (f"nodes\t{json.dumps({'details': details})}\n"
               "apps\t" + json.dumps({"general_info": {"2": {"app_name": "temp"}}, "healthy_info": {"2": {
                   "app_id": "2", "app_name": "temp", "partition_count": "8", "fully_healthy": "5", "unhealthy": "3",
                   "write_unhealthy": "1", "read_unhealthy": "0"}}}) + "\n"
               )
    alerts = "alerts\t" + json.dumps([{"labels": {"alertname": "PegasusServerDown", "severity": "critical",
                                                  "instance": "10.0.2.6:9091"}, "annotations": {"summary": "down"}}])
    calls = []

    def run(address: str, command: str) -> SshResult:
        calls.append(address)
        if address == "10.0.2.7":
            return SshResult(address, SSH_FAILED, "ssh: connect to host 10.0.2.7 port 22: No route to host")
        if "alertmanager=127.0.0.1:9093" in command:  # asked on the monitoring host's loopback
            return SshResult(address, 0, alerts + "\n" if address == "10.0.3.9" else "")
        if "meta_get" in command:
            return SshResult(address, 0, cluster)
        return SshResult(address, 0, hosts[address])
    return run, calls


def test_the_table_shows_each_server_a_stopped_one_and_an_unreachable_host():
    run, calls = fake_runner({"ip-10-0-2-5.internal": "ALIVE", "ip-10-0-2-6.internal": "UNALIVE"})
    status = cs.collect(OUTPUTS, run)
    assert sorted(calls) == sorted(["10.0.1.5", "10.0.1.5", "10.0.2.5", "10.0.2.6", "10.0.2.7", "10.0.0.5",
                                    "10.0.3.9"])
    rows = {(r[0], r[1]): r for r in cs.rows(status)}
    assert rows[("replica-0", "replica")][4:9] == ["ALIVE", "2.6.0", "2h0m", "4", "8"]
    assert rows[("replica-0", "replica")][9] == "50% of 200G (max 70% /home/pegasus/ssd2/c1)"
    assert rows[("replica-1", "replica")][4] == "Down (inactive)"
    assert rows[("replica-2", "?")][4] == "Down (no SSH)"
    assert rows[("meta-0", "meta")][4] == "Up" and rows[("meta-0", "collector")][3] == "34101"
    assert rows[("zk-0", "zookeeper")][4] == "Up (host)"
    text = cs.format_status(status, "c1")
    assert text.splitlines()[1].split() == cs.HEADER[:-1] + ["Data", "disk"]
    assert "Unhealthy partitions: 1 table(s)\n  temp: 3 of 8 partitions unhealthy (1 unwritable, 0 unreadable)\n" in text
    assert "Alerts firing: 1\n  PegasusServerDown [critical] 10.0.2.6:9091 down" in text
    assert "5 hosts asked in" in text
    without = cs.format_status(cs.collect({k: v for k, v in OUTPUTS.items() if k != "monitoring"}, run), "c1")
    assert "Alerts firing: no monitoring in this stack" in without


def test_a_replica_server_the_meta_servers_do_not_count_alive_shows_so():
    run, _ = fake_runner({"ip-10-0-2-5.internal": "UNALIVE"})
    rows = {(r[0], r[1]): r for r in cs.rows(cs.collect(OUTPUTS, run))}
    assert rows[("replica-0", "replica")][4] == "UNALIVE"


def test_a_stack_without_outputs_is_explained():
    try:
        cs.stack_hosts({})
    except ValueError as e:
        assert "make up" in str(e)
    else:
        raise AssertionError("no error")


@pytest.mark.parametrize("outputs, cluster", [
    (OUTPUTS, "c1"),
    # a stack deployed before the clusterName output: the last part of its ZooKeeper path
    ({**{k: v for k, v in OUTPUTS.items() if k != "clusterName"}, "clusterRoot": "/pegasus/old_one"}, "old_one"),
])
def test_each_host_is_asked_for_the_units_of_its_cluster(outputs, cluster):
    probes = []

    def run(address: str, command: str) -> SshResult:
        probes.append(command)
        return SshResult(address, 0, "")

    cs.collect(outputs, run)
    asked = [p for p in probes if "LoadState" in p]
    assert asked and all(f"pegasus-{cluster}-replica.service" in p and "pegasus-replica.service" in p for p in asked)
