"""Rendering a release's config.ini: every variable filled, overrides as edits."""

from __future__ import annotations

import configparser

import pytest

from components.render.config_ini import ConfigTemplateError, NodeValues, apply_overrides, render_config_ini
from tests.support.package_builder import FIXTURES

VALUES = NodeValues(
    cluster_name="prod_a",
    home_dir="/home/work",
    app_dir="/home/work/app/pegasus/replica",
    data_dirs="ssd1:/home/work/ssd1/pegasus/prod_a,ssd2:/home/work/ssd2/pegasus/prod_a",
    slog_dir="/home/work/slog/pegasus/prod_a",
    meta_server_list="10.0.0.1:34601,10.0.0.2:34601",
    zk_server_list="10.0.1.1:2181,10.0.1.2:2181,10.0.1.3:2181",
    hdfs_service_args="hdfs://nn:8020 /pegasus/backup",
    primary_interface="ens6",
)


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=(";", "#"))
    parser.optionxform = str  # keys are case-sensitive in Pegasus
    parser.read_string(text)
    return parser


@pytest.fixture(params=["config-2.5.ini", "config-2.6.ini"])
def template(request) -> str:
    return (FIXTURES / request.param).read_text()


def test_every_variable_is_filled(template):
    out = render_config_ini(template, VALUES)
    assert "%{" not in out
    ini = parse(out)
    assert ini["core"]["data_dir"] == VALUES.app_dir
    assert ini["meta_server"]["server_list"] == VALUES.meta_server_list
    assert ini["meta_server"]["cluster_root"] == "/pegasus/prod_a"
    assert ini["meta_server"]["distributed_lock_service_parameters"] == "/pegasus/prod_a/lock"
    assert ini["replication"]["data_dirs"] == VALUES.data_dirs
    assert ini["replication"]["data_dirs_black_list_file"] == "/home/work/.pegasus_data_dirs_black_list"
    assert ini["pegasus.clusters"]["prod_a"] == VALUES.meta_server_list
    assert ini["zookeeper"]["hosts_list"] == VALUES.zk_server_list
    assert ini["network"]["primary_interface"] == "ens6"


def test_release_specific_variables():
    v25 = parse(render_config_ini((FIXTURES / "config-2.5.ini").read_text(), VALUES))
    v26_text = render_config_ini((FIXTURES / "config-2.6.ini").read_text(), VALUES)
    assert v25["replication"]["slog_dir"] == VALUES.slog_dir
    assert "slog_dir" not in parse(v26_text)["replication"]
    assert VALUES.hdfs_service_args in v26_text


def test_unknown_variable_is_named_with_its_line(template):
    broken = template.replace("[zookeeper]", "[zookeeper]\nsession_owner = %{zk.owner}", 1)
    with pytest.raises(ConfigTemplateError) as error:
        render_config_ini(broken, VALUES)
    line = broken.splitlines().index("session_owner = %{zk.owner}") + 1
    assert "%{zk.owner}" in str(error.value) and f"line {line}" in str(error.value)


def test_jinja_syntax_in_an_ini_is_left_alone():
    text = "[core]\n; {% not a block %} {# nor a comment #} {{ nor a variable }}\ndata_dir = %{app.dir}\n"
    out = render_config_ini(text, VALUES)
    assert "{% not a block %} {# nor a comment #} {{ nor a variable }}" in out
    assert f"data_dir = {VALUES.app_dir}" in out


def test_equal_values_render_byte_identical_files(template):
    assert render_config_ini(template, VALUES) == render_config_ini(template, NodeValues(**VALUES.__dict__))
    other = NodeValues(**{**VALUES.__dict__, "primary_interface": "eth1"})
    assert render_config_ini(template, VALUES) != render_config_ini(template, other)


def test_overrides_edit_in_place_and_keep_comments(template):
    base = render_config_ini(template, VALUES)
    out = render_config_ini(template, VALUES, [
        {"network": {"io_service_worker_count": "8"}},
        {"network": {"io_service_worker_count": "16"}, "replication": {"brand_new_key": "yes"},
         "my.new.section": {"answer": "42"}},
    ])
    ini = parse(out)
    assert ini["network"]["io_service_worker_count"] == "16"  # role layer applied after the shared one
    assert ini["replication"]["brand_new_key"] == "yes"
    assert ini["my.new.section"]["answer"] == "42"
    base_lines, out_lines = base.splitlines(), out.splitlines()
    # comments and order survive: every base line is still there, in order, except the edited one
    kept = [line for line in base_lines if "io_service_worker_count" not in line]
    iterator = iter(out_lines)
    assert all(any(line == o for o in iterator) for line in kept)
    # the new key sits inside its section, the new section at the end
    replication = out_lines.index("[replication]")
    next_section = next(i for i in range(replication + 1, len(out_lines)) if out_lines[i].startswith("["))
    assert any("brand_new_key = yes" in line for line in out_lines[replication:next_section])
    assert out_lines[-2:] == ["[my.new.section]", "answer = 42"]


def test_override_of_a_commented_out_key_adds_a_live_one():
    text = "[core]\n;tool = nativerun\nlogging_start_level = LOG_LEVEL_INFO\n"
    out = apply_overrides(text, [{"core": {"tool": "fastrun"}}])
    assert out.splitlines() == ["[core]", ";tool = nativerun", "logging_start_level = LOG_LEVEL_INFO", "tool = fastrun"]
