"""The fake server packages and the config.ini fixtures they carry."""

from __future__ import annotations

import configparser
import hashlib
import re
import tarfile

import pytest

from tests.support.package_builder import FIXTURES, build_package, fixture_for_version

VARIABLES_2_5 = {"app.dir", "cluster.name", "meta.server.list", "zk.server.list", "data.dirs", "home.dir", "slog.dir"}
VARIABLES_2_6 = VARIABLES_2_5 - {"slog.dir"} | {"hdfs_service_args"}


def members(tarball):
    with tarfile.open(tarball) as tar:
        return {m.name: m for m in tar.getmembers()}, {
            m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"), strict=True,
                                       empty_lines_in_values=False)
    parser.optionxform = str
    parser.read_string(text)
    return parser


def test_package_is_named_and_laid_out_like_pack_server(tmp_path):
    tarball = build_package(tmp_path)
    assert tarball == tmp_path / "pegasus-server-2.5.0-8f3c2ab-glibc2.17-release.tar.gz"
    entries, contents = members(tarball)
    top = "pegasus-server-2.5.0-8f3c2ab-glibc2.17-release"
    assert sorted(entries) == [top, f"{top}/bin", f"{top}/bin/NEEDED", f"{top}/bin/config.ini",
                               f"{top}/bin/config.min.ini", f"{top}/bin/libpegasus_standin.so",
                               f"{top}/bin/pegasus_server", f"{top}/bin/standin_metrics.py"]
    assert contents[f"{top}/bin/NEEDED"] == b"libjvm.so\n"  # 2.4+ loads libjvm.so
    assert entries[f"{top}/bin/pegasus_server"].mode == 0o755
    assert contents[f"{top}/bin/pegasus_server"].startswith(b"#!/usr/bin/env python3\n")
    assert b'RELEASE = "2.5.0"' in contents[f"{top}/bin/pegasus_server"]
    assert b'GIT_COMMIT = "8f3c2ab"' in contents[f"{top}/bin/pegasus_server"]
    assert b"test double of pegasus_server" in contents[f"{top}/bin/pegasus_server"]
    assert contents[f"{top}/bin/config.ini"] == (FIXTURES / "config-2.5.ini").read_bytes()


def test_equal_inputs_give_equal_digests_and_different_inputs_do_not(tmp_path):
    def digest(directory, **kwargs):
        return hashlib.sha256(build_package(tmp_path / directory, **kwargs).read_bytes()).hexdigest()
    assert digest("a") == digest("b")
    assert digest("c", config_ini="[core]\n") != digest("a")


@pytest.mark.parametrize("version, fixture", [("2.4.0", "config-2.4.ini"), ("2.5.0", "config-2.5.ini"),
                                              ("2.6.0", "config-2.6.ini"), ("3.0.1", "config-2.6.ini")])
def test_each_release_carries_its_own_config_template(version, fixture):
    assert fixture_for_version(version) == FIXTURES / fixture


@pytest.mark.parametrize("version", ["2.3.0", "latest"])
def test_unmodelled_versions_are_refused(tmp_path, version):
    with pytest.raises(ValueError, match=re.escape(repr(version))):
        build_package(tmp_path, version=version)


def test_explicit_config_and_placeholder_server(tmp_path):
    tarball = build_package(tmp_path, version="2.6.0", config_ini="[core]\n  data_dir = %{app.dir}\n",
                            server="placeholder")
    _, contents = members(tarball)
    top = "pegasus-server-2.6.0-8f3c2ab-glibc2.17-release"
    assert contents[f"{top}/bin/config.ini"] == b"[core]\n  data_dir = %{app.dir}\n"
    assert contents[f"{top}/bin/pegasus_server"] == b"#!/bin/sh\nexit 1\n"


@pytest.mark.parametrize("fixture, expected", [("config-2.4.ini", VARIABLES_2_5), ("config-2.5.ini", VARIABLES_2_5),
                                               ("config-2.6.ini", VARIABLES_2_6)])
def test_fixture_variables(fixture, expected):
    text = (FIXTURES / fixture).read_text()
    assert set(re.findall(r"%\{([^}]*)\}", text)) == expected
    assert text.count("%{cluster.name}") >= 3, "the cluster name appears in several places"
    # The program renders these with jinja2 using %{ } as variable delimiters: no block or comment openers.
    assert "{%" not in text and "{#" not in text
    assert 150 <= len(text.splitlines()) <= 220


@pytest.mark.parametrize("fixture", ["config-2.4.ini", "config-2.5.ini", "config-2.6.ini"])
def test_fixture_keys_where_a_release_puts_them(fixture):
    config = parse((FIXTURES / fixture).read_text())
    assert config["core"]["data_dir"] == "%{app.dir}"
    assert config["network"]["primary_interface"] == ""
    assert config["network"]["io_service_worker_count"] == "4"
    assert config["meta_server"]["server_list"] == "%{meta.server.list}"
    assert config["meta_server"]["cluster_root"] == "/pegasus/%{cluster.name}"
    assert config["meta_server"]["distributed_lock_service_parameters"] == "/pegasus/%{cluster.name}/lock"
    assert config["replication"]["data_dirs"] == "%{data.dirs}"
    assert config["replication"]["data_dirs_black_list_file"] == "%{home.dir}/.pegasus_data_dirs_black_list"
    assert config["pegasus.clusters"]["%{cluster.name}"] == "%{meta.server.list}"
    assert config["zookeeper"]["hosts_list"] == "%{zk.server.list}"
    assert config["pegasus.collector"]["available_detect_app"] == ("temp" if fixture == "config-2.4.ini" else "stat")
    assert config.has_section("meta_server.apps.stat") == (fixture != "config-2.4.ini")
    has_slog = config.has_option("replication", "slog_dir")
    has_hdfs = config.has_option("block_service.hdfs_service", "args")
    assert (has_slog, has_hdfs) == ((False, True) if fixture == "config-2.6.ini" else (True, False))
