"""Every stack key declared once (components/spec/keys.py), and everything else in step with it.

The validation reads defaults, choices and known keys from the declarations;
these tests keep the rest from drifting: the reference in docs/config.md, the
tables of limits the validation keeps beside them, the fixed-settings check,
and that every declared key is really read (a bad value of it is refused,
naming it).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from components.operations.fixed_settings import FIXED, NO_SHRINK
from components.spec import keys
from components.spec.model import DISTRIBUTIONS
from components.spec.reader import SpecError
from components.spec.validation import PACKAGE_DELIVERIES, VOLUME_LIMITS, build_spec
from tests.support.package_builder import build_package

ROOT = Path(__file__).resolve().parents[2]
SECRET = {"pegasus:ssh"}


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return build_package(tmp_path_factory.mktemp("pkg"), server="placeholder")


def aws(package: Path) -> dict:
    return {"clusterName": "c1", "package": str(package),
            "ssh": {"privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n",
                    "publicKey": "ssh-ed25519 AAAAC3Nz me@host"},
            "network": {"adminCidr": "203.0.113.0/24"}}


def own(package: Path) -> dict:
    disk = "/dev/disk/by-id/ata-SSD_{}"
    return {"clusterName": "c1", "package": str(package),
            "ssh": {"user": "ops", "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n"},
            "servers": {"zookeeper": [{"host": f"zk{i}"} for i in range(3)],
                        "meta": [{"host": "10.0.0.11"}, {"host": "10.0.0.12"}],
                        "replica": [{"host": f"10.0.0.2{i}", "dataDisks": [disk.format(i)]} for i in range(3)],
                        "collector": []}}


def test_the_reference_in_docs_is_the_one_the_declarations_make():
    page = (ROOT / "docs/config.md").read_text()
    assert keys.with_reference(page) == page, "run `make config-docs`"


def test_declarations_are_unique_and_parents_come_first():
    seen: set[str] = set()
    for key in keys.KEYS:
        assert key.path not in seen, key.path
        assert key.parent == "" or key.parent in seen or key.parent.endswith("[]"), key.path
        seen.add(key.path)


def test_declared_defaults_and_choices_are_of_the_declared_type():
    python_type = {"string": str, "integer": int, "boolean": bool}
    for key in keys.KEYS:
        if key.type in python_type:
            for value in ([key.default] if key.default is not None else []) + list(key.choices):
                assert type(value) is python_type[key.type], (key.path, value)
        if key.choices and key.default is not None:
            assert key.default in key.choices, key.path
        assert not (key.required and key.default is not None), key.path
        assert key.after_deploy in (keys.APPLIED, keys.FIXED, keys.GROW_ONLY, keys.NEW_SERVERS, keys.BY_HAND)
        assert bool(key.state_name) == (key.after_deploy in (keys.FIXED, keys.GROW_ONLY)), key.path


def test_the_limits_kept_beside_the_declarations_name_the_same_choices():
    assert tuple(VOLUME_LIMITS) == keys.key("replica.dataDisks.type").choices == keys.key("replica.slogDisk.type").choices
    assert tuple(DISTRIBUTIONS) == keys.key("image.distribution").choices
    assert tuple(PACKAGE_DELIVERIES) == keys.key("packageDelivery").choices


def test_the_fixed_settings_check_keeps_the_keys_declared_fixed():
    assert FIXED == {"cluster_name": "clusterName", "home_dir": "homeDir", "app_dir": "appDir"}
    assert NO_SHRINK == {"data_disk_size_gib": "replica.dataDisks.sizeGiB", "data_disk_count": "replica.dataDisks.count"}


def _put(raw: dict, path: str, value) -> dict:
    raw = copy.deepcopy(raw)
    node = raw
    parts = path.replace("[]", "").split(".")
    for part in parts[:-1]:
        if isinstance(node.get(part), list):
            node = node[part][0]
            continue
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return raw


def _leaves(mode: str) -> list[keys.Key]:
    return [k for k in keys.KEYS if k.modes in (keys.BOTH, mode) and k.type not in ("object", "map")
            and not (mode == keys.OWN and k.path.startswith("servers.collector"))]


@pytest.mark.parametrize("mode", [keys.AWS, keys.OWN])
def test_every_declared_key_is_read_a_wrong_value_is_refused_naming_it(package, mode):
    base = aws(package) if mode == keys.AWS else own(package)
    build_spec(base, stack="dev", secret_keys=SECRET)  # the base is valid
    unread = []
    for key in _leaves(mode):
        wrong = {"a mapping": True} if key.type != "list" else "not a list"
        try:
            build_spec(_put(base, key.path, wrong), stack="dev", secret_keys=SECRET)
        except SpecError as error:
            named = key.path.replace("[]", "[0]")
            if any(p.startswith(f"pegasus:{named}") for p in error.problems):
                continue
        unread.append(key.path)
    assert unread == []


def test_an_aws_key_with_your_own_servers_is_refused_and_your_own_servers_key_is_not_an_aws_key(package):
    with pytest.raises(SpecError) as error:
        build_spec({**own(package), "image": {"distribution": "debian-12"}}, stack="dev", secret_keys=SECRET)
    assert any(p.startswith("pegasus:image:") and "does not apply to your own servers" in p
               for p in error.value.problems)
    assert all(k.modes != keys.AWS for k in keys.KEYS if k.path.startswith("servers"))


def test_unknown_keys_are_refused_at_every_level_with_the_declared_siblings(package):
    for parent in ("", "ssh", "replica", "replica.dataDisks", "network", "timeouts"):
        path = f"{parent}.bogus" if parent else "bogus"
        with pytest.raises(SpecError) as error:
            build_spec(_put(aws(package), path, 1), stack="dev", secret_keys=SECRET)
        [problem] = [p for p in error.value.problems if p.startswith(f"pegasus:{path}:")]
        assert problem.endswith("remove it or use one of " + ", ".join(keys.children(parent))), problem


def test_no_key_is_declared_in_pulumi_yaml_as_well():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert "config" not in project, "declare keys once, in components/spec/keys.py"


def test_the_table_shows_what_a_declaration_says():
    table = keys.reference_table()
    assert "| `clusterName` | " in table and "| required | fixed |" in table
    assert "| `replica.dataDisks.sizeGiB` *(AWS only)* |" in table and "| `100` | grow only |" in table
    assert "**set with `--secret`**" in table.split("`ssh.privateKey`")[1].splitlines()[0]
