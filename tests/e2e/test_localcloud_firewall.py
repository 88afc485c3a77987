"""Security groups enforced and private DNS, on instances the engine made from a program."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.localcloud.engine import DeploymentError, Engine
from tests.e2e.localcloud.firewall import listing
from tools.localcloud.private_dns import private_dns_name
from tests.e2e.localcloud.testing import skip_unless_local_cloud_possible

pytestmark = [pytest.mark.e2e, skip_unless_local_cloud_possible()]

PROGRAM = Path(__file__).parent / "programs" / "security_groups" / "__main__.py"

UDP_ECHO = """\
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 9000))
while True:
    data, peer = s.recvfrom(100)
    open("/root/udp-seen", "a").write(peer[0] + "\\n")
    s.sendto(data, peer)
"""


@pytest.fixture(scope="module")
def sg(local_cloud, tmp_path_factory):
    started = time.monotonic()
    engine = Engine(local_cloud, tmp_path_factory.mktemp("sg") / "state.json", PROGRAM,
                    project="demo", stack="sg")
    config = {"demo:publicKey": local_cloud.keys.public_key}
    engine.up(config)
    server = engine.machine("server")
    server.check("systemd-run --unit=tcp8080 python3 -m http.server 8080")
    server.check(f"cat > /root/udp_echo.py <<'EOF'\n{UDP_ECHO}EOF\n"
                 "systemd-run --unit=udp9000 python3 /root/udp_echo.py")
    print(f"security-group deployment up in {time.monotonic() - started:.1f}s")
    yield engine, config
    try:
        engine.destroy()
    except DeploymentError:
        pass


def tcp_reaches(client, ip: str) -> bool:
    rc, _, _ = client.ssh(f"python3 -c \"import socket; socket.create_connection(('{ip}', 8080), timeout=3)\"")
    return rc == 0


def udp_echoed(client, ip: str) -> bool:
    rc, out, _ = client.ssh(
        "python3 -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        f"s.settimeout(3); s.sendto(b'ping', ('{ip}', 9000)); print(s.recv(10).decode())\"")
    return rc == 0 and out.strip() == "ping"


def test_a_rule_opens_a_port_to_its_source_group_only(sg):
    engine, config = sg
    engine.up(config)
    server, a, b = (engine.machine(n) for n in ("server", "client-a", "client-b"))
    assert tcp_reaches(a, server.ip)
    assert not tcp_reaches(b, server.ip)
    assert not tcp_reaches(server, a.ip)  # nothing opens 8080 on the clients
    assert "policy drop" in listing(server.netns)


def test_udp_is_dropped_without_a_rule_and_the_reply_comes_back_with_one(sg):
    engine, config = sg
    engine.up(config)
    server, a = engine.machine("server"), engine.machine("client-a")
    server.check("rm -f /root/udp-seen")
    assert not udp_echoed(a, server.ip)
    assert server.check("cat /root/udp-seen 2>/dev/null || true") == ""  # dropped on the way in

    engine.up({**config, "demo:udp": "true"})
    # client-a's group admits no UDP: the echo gets back only as a tracked reply.
    assert udp_echoed(a, server.ip)
    assert server.check("cat /root/udp-seen").split() == [a.ip]


def test_removing_a_rule_closes_the_port(sg):
    engine, config = sg
    engine.up(config)
    server, a = engine.machine("server"), engine.machine("client-a")
    assert tcp_reaches(a, server.ip)
    engine.up({**config, "demo:tcp": "false"})
    assert engine.last_run.names("delete") == ["server-8080-from-a"]
    assert not tcp_reaches(a, server.ip)
    engine.up(config)
    assert tcp_reaches(a, server.ip)


def test_private_dns_resolves_every_machine_both_ways_and_can_be_turned_off(sg):
    engine, config = sg
    engine.up(config)
    server, a = engine.machine("server"), engine.machine("client-a")
    name = private_dns_name(server.ip)
    assert name == f"ip-{server.ip.replace('.', '-')}.local-1.compute.internal"
    assert a.check(f"getent hosts {server.ip}").split()[:2] == [server.ip, name]
    assert a.check(f"getent hosts {name}").split()[0] == server.ip
    lookups = a.check(
        "python3 -c \"import socket; "
        f"print(socket.gethostbyaddr('{server.ip}')[0]); "
        f"print(socket.getnameinfo(('{server.ip}', 0), socket.NI_NAMEREQD)[0])\"").split()
    assert lookups == [name, name]
    # Every machine knows every other one, itself included.
    assert server.check(f"getent hosts {a.ip}").split()[1] == private_dns_name(a.ip)
    assert server.check(f"getent hosts {server.ip}").split()[1] == name

    engine.up({**config, "demo:dnsHostnames": "false"})
    rc, _, _ = a.ssh(f"getent hosts {server.ip}")
    assert rc != 0
    rc, _, err = a.ssh(f"python3 -c \"import socket; socket.getnameinfo(('{server.ip}', 0), "
                       "socket.NI_NAMEREQD)\"")
    assert rc != 0 and "gaierror" in err
    engine.up(config)
    assert a.check(f"getent hosts {server.ip}").split()[1] == name


def test_reboot_through_the_engine_keeps_the_firewall_and_names(sg):
    engine, config = sg
    engine.up(config)
    server, a, b = (engine.machine(n) for n in ("server", "client-a", "client-b"))
    engine.reboot("client-b")
    assert engine.machine("client-b") is b and b.is_running()
    assert not tcp_reaches(b, server.ip)
    assert b.check(f"getent hosts {a.ip}").split()[1] == private_dns_name(a.ip)
    rc, _, _ = a.ssh(f"timeout 3 bash -c 'echo > /dev/tcp/{b.ip}/8080'")
    assert rc != 0
    with pytest.raises(KeyError):
        engine.machine("no-such-instance")
