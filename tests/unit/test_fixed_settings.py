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
