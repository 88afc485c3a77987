"""The `monitoring` stack key: on by default, where its host runs, receivers and secrets,
and the 2.4/2.5 exporter settings a stack may not take from the monitoring."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.spec.reader import SpecError
from components.spec.validation import build_spec
from tests.support.package_builder import build_package

SECRET = {"pegasus:ssh"}
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n"


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, Path]:
    return {v: build_package(tmp_path_factory.mktemp(f"pkg{v}"), version=v, server="placeholder")
            for v in ("2.5.0", "2.6.0")}


def aws(package: Path, **extra) -> dict:
    return {"clusterName": "c1", "package": str(package),
            "ssh": {"privateKey": KEY, "publicKey": "ssh-ed25519 AAAAC3Nz me@host"},
            "network": {"adminCidr": "203.0.113.0/24"}, **extra}


def own(package: Path, monitoring_servers: list | None = None, **extra) -> dict:
    servers = {"zookeeper": [{"host": f"10.0.0.{i}"} for i in range(1, 4)],
               "meta": [{"host": "10.0.0.11"}, {"host": "10.0.0.12"}],
               "replica": [{"host": f"10.0.0.2{i}", "dataDisks": ["/data/ssd1"]} for i in range(3)]}
    if monitoring_servers is not None:
        servers["monitoring"] = monitoring_servers
    return {"clusterName": "c1", "package": str(package), "ssh": {"user": "ops", "privateKey": KEY},
            "servers": servers, **extra}


def problems(raw: dict, secret=SECRET) -> list[str]:
    with pytest.raises(SpecError) as error:
        build_spec(raw, stack="dev", secret_keys=secret)
    return error.value.problems


def test_on_by_default_with_a_host_of_its_own_on_aws(packages):
    m = build_spec(aws(packages["2.5.0"]), stack="dev", secret_keys=SECRET).monitoring
    assert m.enabled and m.placement == "own" and m.own_host
    assert (m.instance_type, m.data_disk_gib, m.retention_days, m.scrape_interval_seconds) == ("t3.medium", 50, 15, 15)
    assert (m.disk_full_percent, m.availability_percent, m.down_for_seconds, m.grafana) == (85, 99.0, 60, True)


def test_off_turns_it_off_and_still_reads_every_key(packages):
    spec = build_spec(aws(packages["2.5.0"], monitoring={"enabled": False}), stack="dev", secret_keys=SECRET)
    assert not spec.monitoring.enabled
    found = problems(aws(packages["2.5.0"], monitoring={"enabled": False, "retentionDays": "long"}))
    assert [p for p in found if p.startswith("pegasus:monitoring.retentionDays:")], found


def test_the_dev_stack_puts_it_on_the_first_metaservers_host(packages):
    m = build_spec(aws(packages["2.5.0"], monitoring={"host": "meta"}), stack="dev", secret_keys=SECRET).monitoring
    assert m.enabled and m.placement == "meta" and not m.own_host
    found = problems(aws(packages["2.5.0"], monitoring={"host": "meta", "dataDiskGiB": 100,
                                                        "instanceType": "t3.small"}))
    assert {p.split(":")[1] for p in found if "monitoring.host is meta" in p} == {"monitoring.dataDiskGiB",
                                                                                 "monitoring.instanceType"}


def test_your_own_servers_use_the_listed_host_or_the_first_metaservers(packages):
    package = packages["2.5.0"]
    listed = build_spec(own(package, [{"host": "10.0.0.31"}]), stack="dev", secret_keys=SECRET)
    assert listed.monitoring.placement == "own" and listed.servers.monitoring[0].host == "10.0.0.31"
    first_meta = build_spec(own(package), stack="dev", secret_keys=SECRET)
    assert first_meta.monitoring.placement == "meta" and first_meta.servers.monitoring == ()
    cases = [
        (own(package, monitoring={"host": "own"}), "pegasus:monitoring.host", "servers.monitoring lists none"),
        (own(package, [{"host": "10.0.0.31"}], monitoring={"host": "meta"}), "pegasus:monitoring.host",
         "remove one of the two"),
        (own(package, [{"host": "10.0.0.31"}, {"host": "10.0.0.32"}]), "pegasus:servers.monitoring",
         "list exactly one"),
        (own(package, [{"host": "10.0.0.31"}], monitoring={"enabled": False}), "pegasus:servers.monitoring",
         "monitoring.enabled is false"),
        (own(package, [{"host": "10.0.0.11"}]), "pegasus:servers.monitoring[0].host", "is also servers.meta[0]"),
        (own(package, monitoring={"instanceType": "t3.small"}), "pegasus:monitoring.instanceType",
         "does not apply to your own servers"),
        (own(package, [{"host": "10.0.0.31"}], monitoring={"receivers": {"sns": {
            "topicArn": "arn:aws:sns:eu-west-1:123456789012:alerts"}}}), "pegasus:monitoring.receivers.sns",
         "use a webhook or e-mail receiver"),
    ]
    for raw, key, fragment in cases:
        found = problems(raw)
        assert any(p.startswith(f"{key}:") and fragment in p for p in found), (key, found)


def test_receivers_and_their_secrets(packages):
    receivers = {"webhook": {"url": "https://hooks.example.com/p?token=x"},
                 "email": {"to": "oncall@example.com", "from": "pegasus@example.com",
                           "smarthost": "smtp.example.com:587", "username": "pegasus", "password": "s3cret-pw"},
                 "sns": {"topicArn": "arn:aws:sns:eu-west-1:123456789012:pegasus-alerts"}}
    raw = aws(packages["2.5.0"], monitoring={"receivers": receivers, "grafana": {"adminPassword": "long-enough"}})
    m = build_spec(raw, stack="dev", secret_keys=SECRET | {"pegasus:monitoring"}).monitoring
    assert m.webhook_url.endswith("token=x") and m.email.password == "s3cret-pw" and m.sns_region == "eu-west-1"
    assert m.grafana_admin_password == "long-enough"
    plain = problems(raw)
    assert {p.split(":")[1] for p in plain} == {"monitoring.receivers.email.password",
                                                "monitoring.grafana.adminPassword"}
    assert all("--secret" in p for p in plain)
    bad = aws(packages["2.5.0"], monitoring={"host": "meta", "receivers": {
        "email": {"to": "oncall", "from": "p@example.com", "smarthost": "smtp.example.com", "username": "u"},
        "sns": {"topicArn": "arn:aws:sns:eu-west-1:123456789012:alerts"}}})
    keys = {p.split(":")[1] for p in problems(bad)}
    assert keys == {"monitoring.receivers.email.to", "monitoring.receivers.email.smarthost",
                    "monitoring.receivers.email.password", "monitoring.receivers.sns"}


@pytest.mark.parametrize("overrides, key, fragment", [
    ({"meta": {"configOverrides": {"pegasus.server": {"perf_counter_sink": ""}}}},
     "meta.configOverrides.pegasus.server.perf_counter_sink", "turns off the exporter"),
    ({"configOverrides": {"pegasus.server": {"prometheus_port": "34801"}}},
     "configOverrides.pegasus.server.prometheus_port", "replica role's RPC port"),
    ({"collector": {"configOverrides": {"pegasus.server": {"prometheus_port": "9091"}}}},
     "collector.configOverrides.pegasus.server.prometheus_port", "the MetaServer's prometheus_port"),
    ({"meta": {"configOverrides": {"pegasus.server": {"prometheus_port": "9099"}}}},
     "collector.configOverrides.pegasus.server.prometheus_port", "node_exporter holds"),
    ({"monitoring": {"host": "meta"}, "meta": {"configOverrides": {"pegasus.server": {"prometheus_port": "9093"}}}},
     "meta.configOverrides.pegasus.server.prometheus_port", "which Alertmanager holds"),
    ({"configOverrides": {"pegasus.server": {"prometheus_port": "port"}}},
     "configOverrides.pegasus.server.prometheus_port", "not a TCP port"),
])
def test_an_exporter_override_that_conflicts_with_the_monitoring_is_refused(packages, overrides, key, fragment):
    found = problems(aws(packages["2.5.0"], **overrides))
    assert any(p.startswith(f"pegasus:{key}:") and fragment in p for p in found), found


def test_exporter_overrides_that_fit_are_taken_and_2_6_or_no_monitoring_ignore_them(packages):
    fits = {"configOverrides": {"pegasus.server": {"perf_counter_sink": "prometheus", "prometheus_port": "9200"}},
            "collector": {"configOverrides": {"pegasus.server": {"prometheus_port": "9300"}}}}
    build_spec(aws(packages["2.5.0"], **fits), stack="dev", secret_keys=SECRET)
    off = {"configOverrides": {"pegasus.server": {"perf_counter_sink": "falcon", "prometheus_port": "9100"}}}
    build_spec(aws(packages["2.6.0"], **off), stack="dev", secret_keys=SECRET)
    build_spec(aws(packages["2.5.0"], monitoring={"enabled": False}, **off), stack="dev", secret_keys=SECRET)
