"""The host-key providers (issue 19, item 1): the pair a server is launched with, the pin every
connection checks, and the check at every up, against a real sshd and ssh-keygen."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml
from pulumi.runtime import rpc

from components.operations.host_key_check import HostKeyCheckProvider, HostKeysRefused
from components.operations.host_key_pair import HostKeyPairProvider
from components.operations.host_key_pin import HostKeyPinProvider, NoHostKey
from components.render.cloud_config import host_key_user_data
from components.spec.host_key import parse_host_key
from components.ssh.known_hosts import HostKeyRefused
from tools.localcloud import cloud_init


def new_key(tmp_path, name: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
    return parse_host_key((tmp_path / f"{name}.pub").read_text()).line


# ---------------------------------------------------------------------------
# The pair, and the user data that gives it to an instance


def test_a_pair_is_a_new_ed25519_key_whose_halves_match_and_is_never_regenerated(tmp_path):
    provider = HostKeyPairProvider()
    first = provider.create({"comment": "c1-replica-0"}).outs
    second = provider.create({"comment": "c1-replica-0"}).outs
    assert first["public_key"] != second["public_key"]
    assert parse_host_key(first["public_key"]).type == "ssh-ed25519"
    (tmp_path / "key").write_text(first["private_key"])
    (tmp_path / "key").chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(tmp_path / "key")], check=True, capture_output=True,
                             text=True).stdout
    assert parse_host_key(derived).line == first["public_key"]
    assert provider.diff("id", first, {"comment": "renamed"}).changes is False


def test_the_user_data_is_the_cloud_config_cloud_init_installs_the_key_from(tmp_path):
    pair = HostKeyPairProvider().create({"comment": "c1-meta-0"}).outs
    user_data = host_key_user_data(pair["private_key"], pair["public_key"])
    config = yaml.safe_load(user_data)
    assert user_data.startswith("#cloud-config\n")
    assert config["ssh_keys"] == {"ed25519_private": pair["private_key"], "ed25519_public": pair["public_key"]}
    # What cloud-init's cc_ssh then writes (the local cloud's model of it).
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/ssh/ssh_host_rsa_key").write_text("the image's key")
    cloud_init.apply_first_boot(root, user_data)
    assert sorted(p.name for p in (root / "etc/ssh").iterdir()) == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
    assert (root / "etc/ssh/ssh_host_ed25519_key").read_text() == pair["private_key"]
    assert (root / "etc/ssh/ssh_host_ed25519_key").stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------------------
# The pin


def pin_props(**overrides) -> dict:
    props = {"server": "replica-0", "where": "servers.replica[0]", "identity": "10.0.0.5", "address": "10.0.0.5",
             "port": 22, "configured": "", "launched": "", "may_record": False, "access": None}
    return {**props, **overrides}


@pytest.fixture
def known_hosts(tmp_path, monkeypatch):
    """The operator's known_hosts (~/.ssh/known_hosts of a HOME made for the test)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    path = tmp_path / ".ssh" / "known_hosts"
    path.write_text("")
    return path


def test_a_pin_takes_the_configured_key_then_the_launch_key_then_keeps_what_it_holds(tmp_path, known_hosts):
    configured, launched, other = new_key(tmp_path, "c"), new_key(tmp_path, "l"), new_key(tmp_path, "o")
    provider = HostKeyPinProvider()
    assert provider.create(pin_props(configured=configured, launched=launched)).outs["key"] == configured
    made = provider.create(pin_props(launched=launched, may_record=True)).outs
    assert (made["key"], made["source"]) == (launched, "given to the instance at launch by this stack")
    assert made["fingerprint"] == parse_host_key(launched).fingerprint
    # A new address (a stopped and started instance) or new login keys change nothing...
    moved = pin_props(launched=launched, may_record=True, address="10.0.0.9", access={"user": "x"})
    assert provider.diff("id", made, moved).changes is False
    # ...a new configured key is how a rebuilt server is accepted...
    accepted = provider.update("id", made, pin_props(launched=launched, configured=other))
    assert accepted.outs["key"] == other
    # ...and a configured key taken away leaves the key held for that machine.
    assert provider.diff("id", accepted.outs, pin_props(launched="")).changes is True
    kept = provider.update("id", {**accepted.outs, "launched": ""}, pin_props())
    assert kept.outs["key"] == other


def test_a_pin_takes_the_operators_known_hosts_and_refuses_at_preview_when_nothing_gives_the_key(
        tmp_path, known_hosts):
    provider = HostKeyPinProvider()
    failures = provider.check({}, pin_props()).failures
    assert [f.property for f in failures] == ["configured"]
    message = failures[0].reason
    assert message.startswith("servers.replica[0].hostKey: no SSH host key is known for replica-0 (10.0.0.5)")
    assert "ssh-keyscan -t ed25519 10.0.0.5" in message
    assert "pulumi config set --path 'pegasus:servers.replica[0].hostKey'" in message
    with pytest.raises(NoHostKey):
        provider.create(pin_props())
    # Unknown at preview (a new instance): nothing to judge yet.
    assert provider.check({}, pin_props(address=rpc.UNKNOWN)).failures == []
    # What the operator's known_hosts holds for it.
    key = new_key(tmp_path, "k")
    known_hosts.write_text(f"10.0.0.5 {key}\n")
    assert provider.check({}, pin_props()).failures == []
    made = provider.create(pin_props()).outs
    assert (made["key"], made["source"]) == (key, "your known_hosts")
    # An existing pin is not looked up again (previews elsewhere need no known_hosts).
    known_hosts.write_text("")
    assert provider.check({"identity": "10.0.0.5"}, pin_props()).failures == []


def recording_props(sshd, **overrides) -> dict:
    access = {"user": sshd.user, "private_key": sshd.client_key_path.read_text(), "bastion": None, "bastion_pins": []}
    return pin_props(server="replica-1", where="replica-1", identity="i-0123", address="127.0.0.2", port=sshd.port,
                     may_record=True, access={**access, **overrides})


def test_an_instance_launched_before_keys_has_the_key_it_offers_recorded_through_the_checked_bastion(
        sshd, known_hosts):
    bastion = {"host": "127.0.0.1", "user": sshd.user, "port": sshd.port}
    logins = sshd.accepted_logins()
    made = HostKeyPinProvider().create(recording_props(sshd, bastion=bastion,
                                                       bastion_pins=[sshd.pin("127.0.0.1")])).outs
    assert made["key"] == parse_host_key(sshd.host_key()).line
    assert made["source"].startswith("recorded on ")
    assert sshd.accepted_logins() - logins == 2, "one login on the bastion, one on the server"


def test_a_replacement_launched_without_a_key_from_the_stack_is_not_recorded_until_accepted(sshd, known_hosts):
    # The old instance's key was recorded; Pulumi launched its replacement with the old user data (none).
    recorded = HostKeyPinProvider().create(recording_props(sshd)).outs
    replaced = {**recording_props(sshd), "identity": "i-0456"}
    provider = HostKeyPinProvider()
    assert provider.diff("id", recorded, replaced).changes is True
    logins = sshd.accepted_logins()
    with pytest.raises(NoHostKey) as refused:
        provider.update("id", recorded, replaced)
    assert "its new instance i-0456 was launched without a host key from this stack" in str(refused.value)
    assert "aws ec2 get-console-output --instance-id i-0456 --latest" in str(refused.value)
    assert sshd.accepted_logins() == logins, "the replacement was trusted on its first answer"
    # `pulumi up --replace` on the pin, once the operator read the key on the console: it is recorded.
    assert provider.create(replaced).outs["key"] == parse_host_key(sshd.host_key()).line


def test_nothing_is_recorded_through_a_bastion_that_offers_another_key(sshd, known_hosts, tmp_path):
    bastion = {"host": "127.0.0.1", "user": sshd.user, "port": sshd.port}
    stranger = new_key(tmp_path, "stranger")
    with pytest.raises(HostKeyRefused, match="the bastion"):
        HostKeyPinProvider().create(recording_props(
            sshd, bastion=bastion, bastion_pins=[sshd.pin("127.0.0.1", key=stranger, name="the bastion")]))


# ---------------------------------------------------------------------------
# The check at every up


def check_props(sshd, servers: list[dict], run: str = "2") -> dict:
    return {"run": run, "servers": servers,
            "access": {"user": sshd.user, "port": sshd.port, "private_key": sshd.client_key_path.read_text(),
                       "bastion": None, "known_hosts": servers}}


def test_the_check_passes_when_every_server_offers_its_pinned_key(sshd):
    props = check_props(sshd, [sshd.pin("127.0.0.1", name="meta-0"), sshd.pin("127.0.0.2", name="replica-0")])
    assert HostKeyCheckProvider().create(props).outs["report"] == "2 servers offered the keys the stack holds"
    assert HostKeyCheckProvider().diff("host-keys", {"run": "1"}, props).changes is True


def test_the_check_names_every_refused_server_with_both_fingerprints(sshd, tmp_path):
    stranger = new_key(tmp_path, "stranger")
    props = check_props(sshd, [sshd.pin("127.0.0.1", name="meta-0"),
                               sshd.pin("127.0.0.2", key=stranger, name="replica-1")])
    logins = sshd.accepted_logins()
    with pytest.raises(HostKeysRefused) as refused:
        HostKeyCheckProvider().update("host-keys", {"run": "1"}, props)
    message = str(refused.value)
    assert message.startswith("replica-1 (127.0.0.2) offered another SSH host key")
    assert f"expected: ED25519 {parse_host_key(stranger).fingerprint}" in message
    assert f"offered:  ED25519 {parse_host_key(sshd.host_key()).fingerprint}" in message
    assert "meta-0" not in message
    assert sshd.accepted_logins() - logins == 1, "only meta-0, whose key is the pinned one, was logged in to"


def test_a_server_that_does_not_answer_is_left_to_its_commands(sshd):
    silent = sshd.pin("127.0.0.3", name="replica-3")  # sshd listens on 127.0.0.1 and .2 only
    props = check_props(sshd, [sshd.pin("127.0.0.2", name="meta-0"), silent])
    started = time.monotonic()
    report = HostKeyCheckProvider().create(props).outs["report"]
    assert report == "1 servers offered the keys the stack holds; not answering: replica-3 (127.0.0.3)"
    assert time.monotonic() - started < 30


def test_host_key_lines_in_user_data_are_one_line_each():
    with pytest.raises(ValueError):
        host_key_user_data("not a key", "ssh-ed25519 AAAA")
    with pytest.raises(ValueError):
        host_key_user_data("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
                           "ssh-ed25519 AAAA\nruncmd: [reboot]")
