"""resolve_nic inside a private network namespace with a veth pair.

Needs root and `ip netns`; the interfaces and the documentation address
(192.0.2.0/24, never routed) exist only inside the namespace this test makes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from components.render import templates

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (`ip`) is missing"),
]

MAC = "02:00:5e:10:20:30"


@pytest.fixture
def netns():
    name = f"pegasus-nic-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    try:
        veth = subprocess.run(
            ["ip", "netns", "exec", name, "ip", "link", "add", "data0", "address", MAC,
             "type", "veth", "peer", "name", "peer0"],
            capture_output=True, text=True,
        )
        if veth.returncode != 0:
            pytest.skip(f"cannot create a veth pair here: {veth.stderr.strip()}")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def run_in(netns: str, script: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "resolve_nic.sh"
    path.write_text(script)
    return subprocess.run(["ip", "netns", "exec", netns, "bash", str(path)],
                          capture_output=True, text=True, timeout=60)


def ns_ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "ip", *args], check=True)


def test_prints_only_the_interface_name_and_brings_it_up(netns, tmp_path):
    ns_ip(netns, "addr", "add", "192.0.2.10/24", "dev", "data0")
    ns_ip(netns, "link", "set", "peer0", "up")
    script = templates.render("resolve_nic.sh", mac=MAC.upper(), wait_seconds=15)
    result = run_in(netns, script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "data0\n"
    assert "brought data0 up" in result.stderr and "192.0.2.10/24" in result.stderr


def test_traffic_from_its_address_leaves_through_it_and_a_rerun_adds_nothing(netns, tmp_path):
    ns_ip(netns, "link", "add", "main0", "type", "veth", "peer", "name", "mainpeer0")
    for link in ("main0", "mainpeer0", "peer0"):
        ns_ip(netns, "link", "set", link, "up")
    ns_ip(netns, "addr", "add", "192.0.2.5/24", "dev", "main0")
    ns_ip(netns, "route", "add", "default", "via", "192.0.2.1", "dev", "main0")
    ns_ip(netns, "addr", "add", "192.0.2.10/24", "dev", "data0")  # the same subnet, as on AWS
    script = templates.render("resolve_nic.sh", mac=MAC, wait_seconds=15)
    for _ in range(2):
        result = run_in(netns, script, tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "data0\n"
    rules = ns_out(netns, "-4", "rule", "show")
    assert rules.count("from 192.0.2.10 lookup") == 1, rules
    # Replies from the extra address go out of data0; everything else keeps the main table.
    assert "dev data0" in ns_out(netns, "route", "get", "198.51.100.1", "from", "192.0.2.10")
    assert "dev data0" in ns_out(netns, "route", "get", "192.0.2.77", "from", "192.0.2.10")
    assert "dev main0" in ns_out(netns, "route", "get", "198.51.100.1", "from", "192.0.2.5")


def ns_out(netns: str, *args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", netns, "ip", *args], check=True,
                          capture_output=True, text=True).stdout


def test_fails_naming_the_mac_when_no_interface_has_it(netns, tmp_path):
    script = templates.render("resolve_nic.sh", mac="02:00:5e:99:99:99", wait_seconds=1)
    result = run_in(netns, script, tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "02:00:5e:99:99:99" in result.stderr


def test_fails_when_the_interface_never_gets_an_ipv4_address(netns, tmp_path):
    script = templates.render("resolve_nic.sh", mac=MAC, wait_seconds=2)
    result = run_in(netns, script, tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "data0" in result.stderr and "no IPv4 address" in result.stderr


def test_a_stale_rule_of_a_renumbered_interface_is_replaced(netns, tmp_path):
    # An interface that came back with another index (a re-plugged NIC) leaves a rule
    # for its address pointing at the old table: the rerun must replace it, not fail.
    for link in ("peer0",):
        ns_ip(netns, "link", "set", link, "up")
    ns_ip(netns, "addr", "add", "192.0.2.10/24", "dev", "data0")
    ns_ip(netns, "-4", "rule", "add", "from", "192.0.2.10", "lookup", "10999", "priority", "10999")
    script = templates.render("resolve_nic.sh", mac=MAC, wait_seconds=15)
    result = run_in(netns, script, tmp_path)
    assert result.returncode == 0, result.stderr
    rules = ns_out(netns, "-4", "rule", "show")
    assert "lookup 10999" not in rules and rules.count("from 192.0.2.10 lookup") == 1, rules
