"""TaskOptions: DataSync names and values, every bad value refused with the option's name."""

from __future__ import annotations

import pytest

from airflow_datasync.options import _CHOICES, OptionsError, TaskOptions, TaskReportConfig

DEFAULTS = TaskOptions()


def test_defaults_are_valid_and_round_trip():
    opts = TaskOptions.from_dict({})
    assert opts == DEFAULTS
    assert opts.VerifyMode == "ONLY_FILES_TRANSFERRED"
    again = TaskOptions.from_dict({k: v for k, v in opts.to_dict().items() if k != "TaskReportConfig"},
                                  TaskReportConfig=opts.to_dict()["TaskReportConfig"])
    assert again == opts


def test_every_allowed_value_is_accepted():
    for name, allowed in _CHOICES.items():
        for value in allowed:
            extra = {}
            # Keep the Atime/Mtime pairing valid while trying each value of one of them.
            if name == "Atime":
                extra = {"Mtime": "PRESERVE" if value == "BEST_EFFORT" else "NONE"}
            if name == "Mtime":
                extra = {"Atime": "BEST_EFFORT" if value == "PRESERVE" else "NONE"}
            if name == "TransferMode" and value == "ALL":
                extra = {"PreserveDeletedFiles": "PRESERVE"}
            assert getattr(TaskOptions.from_dict({name: value, **extra}), name) == value


@pytest.mark.parametrize("name", sorted(_CHOICES))
def test_bad_choice_names_the_option(name):
    with pytest.raises(OptionsError) as info:
        TaskOptions.from_dict({name: "NOT_A_VALUE"})
    msg = str(info.value)
    assert name in msg and "NOT_A_VALUE" in msg
    # The allowed values are listed so the user can fix it.
    assert _CHOICES[name][0] in msg


@pytest.mark.parametrize("name", sorted(_CHOICES))
def test_lower_case_value_is_refused(name):
    with pytest.raises(OptionsError, match=name):
        TaskOptions.from_dict({name: _CHOICES[name][0].lower()})


@pytest.mark.parametrize("name,value", [("PreserveDevices", "PRESERVE")])
def test_datasync_values_not_supported_yet_are_refused_clearly(name, value):
    with pytest.raises(OptionsError, match=rf"{name}=.*does not support yet"):
        TaskOptions.from_dict({name: value})


@pytest.mark.parametrize("value", [0, -2, 1.5, "fast", True, None])
def test_bad_bytes_per_second(value):
    with pytest.raises(OptionsError, match="BytesPerSecond"):
        TaskOptions.from_dict({"BytesPerSecond": value})


def test_bytes_per_second_accepts_string_integer_and_minus_one():
    assert TaskOptions.from_dict({"BytesPerSecond": "1048576"}).BytesPerSecond == 1048576
    assert TaskOptions.from_dict({"BytesPerSecond": -1}).BytesPerSecond == -1


@pytest.mark.parametrize("name", ["files_per_shard", "bytes_per_shard", "max_shards", "concurrency"])
@pytest.mark.parametrize("value", [0, -1, "8", 2.0, False])
def test_bad_engine_settings(name, value):
    if name == "concurrency" and value == 0:
        return  # 0 means "the locations' default", tested below
    with pytest.raises(OptionsError, match=name):
        TaskOptions.from_dict({name: value})


def test_concurrency_zero_lets_the_locations_choose(tmp_path):
    from airflow_datasync.locations import open_location
    from airflow_datasync.locations.local_mounts import copy_threads

    local = open_location(str(tmp_path))
    s3 = open_location("s3://bucket/prefix")
    assert TaskOptions().workers(local, local) == copy_threads(str(tmp_path))  # a thread per core on a disk
    assert TaskOptions().workers(local, s3) == 64
    assert TaskOptions(concurrency=3).workers(local, s3) == 3


@pytest.mark.parametrize("report,key", [({"OutputType": "FULL"}, "OutputType"), ({"ReportLevel": "ALL"}, "ReportLevel"),
                                        ({"Bogus": 1}, "TaskReportConfig"), ("STANDARD", "TaskReportConfig")])
def test_bad_task_report_config(report, key):
    with pytest.raises(OptionsError, match=key):
        TaskOptions.from_dict({"TaskReportConfig": report})


def test_task_report_config_dict():
    opts = TaskOptions.from_dict({"TaskReportConfig": {"OutputType": "SUMMARY_ONLY", "ReportLevel": "ERRORS_ONLY"}})
    assert opts.TaskReportConfig == TaskReportConfig("SUMMARY_ONLY", "ERRORS_ONLY")


def test_remove_with_transfer_mode_all_is_refused():
    with pytest.raises(OptionsError) as info:
        TaskOptions.from_dict({"PreserveDeletedFiles": "REMOVE", "TransferMode": "ALL"})
    assert "PreserveDeletedFiles=REMOVE" in str(info.value) and "TransferMode=ALL" in str(info.value)
    # Each alone is fine.
    assert TaskOptions.from_dict({"PreserveDeletedFiles": "REMOVE"}).TransferMode == "CHANGED"
    assert TaskOptions.from_dict({"TransferMode": "ALL"}).PreserveDeletedFiles == "PRESERVE"


@pytest.mark.parametrize("atime,mtime,ok", [
    ("BEST_EFFORT", "PRESERVE", True),
    ("NONE", "NONE", True),
    ("BEST_EFFORT", "NONE", False),
    ("NONE", "PRESERVE", False),
])
def test_atime_mtime_combinations(atime, mtime, ok):
    if ok:
        opts = TaskOptions.from_dict({"Atime": atime, "Mtime": mtime})
        assert (opts.Atime, opts.Mtime) == (atime, mtime)
        assert opts.preserve_mtime is (mtime == "PRESERVE")
    else:
        with pytest.raises(OptionsError) as info:
            TaskOptions.from_dict({"Atime": atime, "Mtime": mtime})
        assert "Atime" in str(info.value) and "Mtime" in str(info.value)


def test_unknown_option_name_is_refused_and_named():
    with pytest.raises(OptionsError) as info:
        TaskOptions.from_dict({"VerifyMode": "NONE", "VerfiyMode": "NONE"})
    assert "'VerfiyMode'" in str(info.value)
    with pytest.raises(OptionsError, match="'bogus'"):
        TaskOptions.from_dict({}, bogus=1)


def test_options_dict_is_not_mutated():
    given = {"Includes": [{"FilterType": "SIMPLE_PATTERN", "Value": "/a"}], "BytesPerSecond": "10"}
    before = repr(given)
    TaskOptions.from_dict(given)
    assert repr(given) == before


def test_filter_rule_lists_datasync_style():
    opts = TaskOptions.from_dict({
        "Includes": [{"FilterType": "SIMPLE_PATTERN", "Value": "/data|/logs"}, {"FilterType": "SIMPLE_PATTERN", "Value": "*.csv"}],
        "Excludes": [{"FilterType": "SIMPLE_PATTERN", "Value": "*.tmp"}],
    })
    assert opts.Includes == "/data|/logs|*.csv"
    assert opts.Excludes == "*.tmp"
    # FilterType may be omitted (SIMPLE_PATTERN is the only type); an empty list means no filter.
    assert TaskOptions.from_dict({"Excludes": [{"Value": "*.bak"}]}).Excludes == "*.bak"
    assert TaskOptions.from_dict({"Includes": []}).Includes is None


@pytest.mark.parametrize("rules", [
    [{"FilterType": "REGEX", "Value": ".*"}],
    [{"FilterType": "SIMPLE_PATTERN"}],
    ["*.tmp"],
])
@pytest.mark.parametrize("name", ["Includes", "Excludes"])
def test_bad_filter_rules(name, rules):
    with pytest.raises(OptionsError, match=name):
        TaskOptions.from_dict({name: rules})


@pytest.mark.parametrize("value", ["*.tmp||*.bak", "*.tmp|", "|/a", "a\x00b", 42])
@pytest.mark.parametrize("name", ["Includes", "Excludes"])
def test_bad_filter_strings(name, value):
    with pytest.raises(OptionsError, match=name):
        TaskOptions.from_dict({name: value})


def test_sync_writes_is_a_boolean():
    assert TaskOptions().sync_writes is True
    assert TaskOptions.from_dict({"sync_writes": False}).sync_writes is False
    with pytest.raises(OptionsError, match="sync_writes"):
        TaskOptions.from_dict({"sync_writes": "no"})


def test_verify_workers_use_the_local_default_between_a_file_system_and_s3():
    from airflow_datasync.locations.local import LocalLocation
    from airflow_datasync.locations.local_mounts import copy_threads
    from airflow_datasync.locations.s3 import S3Location
    from airflow_datasync.options import TaskOptions

    local, s3 = LocalLocation("/tmp"), S3Location("s3://bucket/prefix")
    threads = copy_threads("/tmp")
    auto = TaskOptions.from_dict({})
    assert auto.workers(local, s3) == 64 and auto.verify_workers(local, s3) == 8
    assert auto.verify_workers(s3, s3) == 64 and auto.verify_workers(local, local) == threads
    assert TaskOptions.from_dict({"concurrency": 32}).verify_workers(local, s3) == 32
