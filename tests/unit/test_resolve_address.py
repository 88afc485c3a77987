"""resolve_address (your own servers) inside a private network namespace: which
interface Pegasus binds and its address, found by name, by MAC or as Pegasus
picks it, and nothing on the host changed.

Needs root and `ip netns`; the interfaces exist only inside the namespace.
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

MAC = "02:00:5e:10:20:31"


@pytest.fixture
def netns():
    """A namespace with docker0 (172.17.0.1), pub0 (198.51.100.7) and data0 (10.9.0.5, MAC above), in that order."""
    name = f"pegasus-addr-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    try:  # veth pairs (the peers have no address): the kernel here may lack the dummy driver
        for link, address, mac in (("docker0", "172.17.0.1/16", None), ("pub0", "198.51.100.7/24", None),
                                   ("data0", "10.9.0.5/24", MAC)):
            ns(name, "link", "add", link, *(("address", mac) if mac else ()), "type", "veth", "peer", "name",
               f"{link}p")
            ns(name, "addr", "add", address, "dev", link)
            ns(name, "link", "set", link, "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def ns(netns: str, *args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", netns, "ip", *args], check=True, capture_output=True,
                          text=True).stdout


def resolve(netns: str, nic: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "resolve_address.sh"
    path.write_text(templates.render("resolve_address.sh", nic=nic))
    return subprocess.run(["ip", "netns", "exec", netns, "bash", str(path)], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("nic", ["data0", MAC, ""], ids=["by name", "by MAC", "Pegasus's choice"])
def test_prints_the_interface_and_its_address_and_changes_nothing(netns, tmp_path, nic):
    before = ns(netns, "-4", "addr") + ns(netns, "rule") + ns(netns, "route")
    result = resolve(netns, nic, tmp_path)
    assert result.returncode == 0, result.stderr
    # Pegasus's own choice skips the Docker bridge and the public address.
    assert result.stdout == "data0 10.9.0.5\n"
    assert ns(netns, "-4", "addr") + ns(netns, "rule") + ns(netns, "route") == before


@pytest.mark.parametrize("nic,fragment", [("eth9", "has no network interface eth9"),
                                          ("02:00:5e:00:00:01", "no network interface has MAC 02:00:5e:00:00:01")])
def test_a_missing_interface_is_named(netns, tmp_path, nic, fragment):
    result = resolve(netns, nic, tmp_path)
    assert result.returncode == 1 and fragment in result.stderr and "servers.<role>[n].nic" in result.stderr


def test_an_interface_without_an_address_is_refused(netns, tmp_path):
    ns(netns, "addr", "flush", "dev", "pub0")
    result = resolve(netns, "pub0", tmp_path)
    assert result.returncode == 1 and "pub0 has no IPv4 address" in result.stderr
