"""What an existing cluster cannot change: the dynamic provider's check."""

from __future__ import annotations

from components.operations.fixed_settings import FixedSettingsProvider, fixed_settings_problems

OLD = {"cluster_name": "c1", "home_dir": "/home/work", "app_dir": "/home/work/app/pegasus",
       "data_disk_count": 2, "data_disk_size_gib": 100}


def test_a_new_stack_and_an_unchanged_one_pass():
    assert fixed_settings_problems({}, OLD) == []
    assert fixed_settings_problems(OLD, dict(OLD)) == []


def test_more_or_larger_disks_pass():
    assert fixed_settings_problems(OLD, {**OLD, "data_disk_count": 3, "data_disk_size_gib": 200}) == []


def test_each_fixed_key_is_refused_with_its_key_and_the_way_back():
    for name, key, value in (("home_dir", "homeDir", "/data"), ("app_dir", "appDir", "/data/app"),
                             ("cluster_name", "clusterName", "c2")):
        [(field, reason)] = fixed_settings_problems(OLD, {**OLD, name: value})
        assert field == name and f"pegasus:{key} is {OLD[name]!r}" in reason and "Set it back" in reason


def test_fewer_or_smaller_disks_are_refused():
    problems = dict(fixed_settings_problems(OLD, {**OLD, "data_disk_count": 1, "data_disk_size_gib": 50}))
    assert "pegasus:replica.dataDisks.count was 2, now 1" in problems["data_disk_count"]
    assert "pegasus:replica.dataDisks.sizeGiB was 100, now 50" in problems["data_disk_size_gib"]


def test_the_provider_reports_them_as_check_failures():
    result = FixedSettingsProvider().check(OLD, {**OLD, "home_dir": "/data"})
    assert [f.property for f in result.failures] == ["home_dir"]
    assert FixedSettingsProvider().check({}, OLD).failures == []


ENSEMBLE = {**OLD, "slog_disk": False, "slog_disk_size_gib": 0, "zookeeper_count": 3, "zookeeper_servers": ""}


def test_numbers_compare_as_pulumi_hands_them_to_a_dynamic_provider():
    # Every number reaches a dynamic provider's check as a float.
    floats = {**OLD, "data_disk_count": 2.0, "data_disk_size_gib": 100.0}
    problems = dict(fixed_settings_problems(floats, {**floats, "data_disk_size_gib": 50.0}))
    assert "pegasus:replica.dataDisks.sizeGiB was 100, now 50" in problems["data_disk_size_gib"]
    assert fixed_settings_problems(floats, {**floats, "data_disk_size_gib": 200.0}) == []


def test_a_shared_log_disk_neither_comes_nor_goes_and_does_not_shrink():
    added = dict(fixed_settings_problems(ENSEMBLE, {**ENSEMBLE, "slog_disk": True, "slog_disk_size_gib": 50}))
    assert "pegasus:replica.slogDisk" in added["slog_disk"] and "does not replay" in added["slog_disk"]
    with_slog = {**ENSEMBLE, "slog_disk": True, "slog_disk_size_gib": 50.0}
    removed = dict(fixed_settings_problems(with_slog, ENSEMBLE))
    assert set(removed) == {"slog_disk"} and "stopping the instance" in removed["slog_disk"]
    smaller = dict(fixed_settings_problems(with_slog, {**with_slog, "slog_disk_size_gib": 40.0}))
    assert "pegasus:replica.slogDisk.sizeGiB was 50, now 40" in smaller["slog_disk_size_gib"]
    assert fixed_settings_problems(with_slog, {**with_slog, "slog_disk_size_gib": 80.0}) == []


def test_an_ensemble_keeps_its_size_and_its_place():
    assert "reconfig" in dict(fixed_settings_problems(ENSEMBLE, {**ENSEMBLE, "zookeeper_count": 5.0}))["zookeeper_count"]
    external = {**ENSEMBLE, "zookeeper_count": 0, "zookeeper_servers": "10.0.0.1:2181,10.0.0.2:2181,10.0.0.3:2181"}
    for before, after in ((ENSEMBLE, external), (external, ENSEMBLE)):
        problems = dict(fixed_settings_problems(before, after))
        assert set(problems) == {"zookeeper_servers"} and "/pegasus/c1" in problems["zookeeper_servers"]
    moved = {**external, "zookeeper_servers": "10.1.0.1:2181,10.1.0.2:2181,10.1.0.3:2181"}
    assert "no server in common" in dict(fixed_settings_problems(external, moved))["zookeeper_servers"]
    one_replaced = {**external, "zookeeper_servers": "10.0.0.1:2181,10.0.0.9:2181,10.0.0.3:2181"}
    assert fixed_settings_problems(external, one_replaced) == []


def test_a_stack_deployed_before_records_the_new_settings_without_a_refusal():
    assert fixed_settings_problems(OLD, {**ENSEMBLE, "slog_disk": True, "zookeeper_servers": "10.0.0.1:2181"}) == []
