"""What each AWS status means for each phase sensor, and StartTaskExecution's arguments (pure functions)."""

from __future__ import annotations

import pytest

from airflow_datasync.aws.request import start_request
from airflow_datasync.aws.status import PhaseOutcome, failed_phase, phase_outcome
from airflow_datasync.aws.summary import execution_summary
from airflow_datasync.options import OptionsError

W, L, F, U = PhaseOutcome.WAITING, PhaseOutcome.LEFT, PhaseOutcome.FAILED, PhaseOutcome.UNKNOWN
TASK = "arn:aws:datasync:us-east-1:123456789012:task/task-0abc"


@pytest.mark.parametrize("status, expected", [
    # LAUNCHING, PREPARING, TRANSFERRING, VERIFYING
    ("QUEUED", (W, W, W, W)),
    ("INITIALIZING", (W, W, W, W)),  # moto's name for LAUNCHING
    ("LAUNCHING", (W, W, W, W)),
    ("PREPARING", (L, W, W, W)),
    ("TRANSFERRING", (L, L, W, W)),
    ("VERIFYING", (L, L, L, W)),
    ("SUCCESS", (L, L, L, L)),
    ("CANCELLING", (W, W, W, W)),  # intermediate: it ends in ERROR
    ("ERROR", (F, F, F, F)),  # no Result (moto): whichever sensor is waiting fails
    ("PAUSED", (U, U, U, U)),
])
def test_phase_outcome(status, expected):
    assert tuple(phase_outcome(p, status) for p in ("LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING")) == expected


def test_error_fails_the_phase_that_failed_and_lets_earlier_ones_pass():
    result = {"PrepareStatus": "SUCCESS", "TransferStatus": "ERROR", "VerifyStatus": "PENDING"}
    assert failed_phase(result) == "TRANSFERRING"
    assert [phase_outcome(p, "ERROR", result) for p in ("LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING")] == [L, L, F, F]
    assert failed_phase({"PrepareStatus": "PENDING", "TransferStatus": "PENDING", "VerifyStatus": "PENDING"}) == "LAUNCHING"
    assert failed_phase({"PrepareStatus": "SUCCESS", "TransferStatus": "SUCCESS", "VerifyStatus": "PENDING"}) == "VERIFYING"
    assert failed_phase({}) is None


def test_request_uses_datasync_names_and_checks_them_with_our_options():
    request = start_request(TASK, options={"VerifyMode": "NONE", "Mtime": "NONE", "Uid": "BOTH"},
                            includes=[{"FilterType": "SIMPLE_PATTERN", "Value": "/data"}], excludes="*.tmp|/scratch",
                            task_report_config={"OutputType": "SUMMARY_ONLY", "Destination": {"S3": {
                                "S3BucketArn": "arn:aws:s3:::reports", "BucketAccessRoleArn": "arn:aws:iam::1:role/r"}}},
                            manifest_config='{"Action": "TRANSFER", "Format": "CSV", "Source": {"S3": {'
                                            '"ManifestObjectPath": "m.csv", "BucketAccessRoleArn": "arn:aws:iam::1:role/r",'
                                            ' "S3BucketArn": "arn:aws:s3:::manifests"}}}')
    assert request["OverrideOptions"] == {"VerifyMode": "NONE", "Mtime": "NONE", "Uid": "BOTH"}  # only what was given
    assert request["Includes"] == [{"FilterType": "SIMPLE_PATTERN", "Value": "/data"}]
    assert request["Excludes"] == [{"FilterType": "SIMPLE_PATTERN", "Value": "*.tmp|/scratch"}]
    assert request["ManifestConfig"]["Source"]["S3"]["ManifestObjectPath"] == "m.csv"
    assert start_request(TASK) == {"TaskArn": TASK}


@pytest.mark.parametrize("kwargs, message", [
    ({"options": {"VerifyMode": "SOMETIMES"}}, "VerifyMode='SOMETIMES' is invalid"),
    ({"options": {"files_per_shard": 10}}, "unknown AWS DataSync option"),
    ({"options": {"Atime": "BEST_EFFORT", "Mtime": "NONE"}}, "Atime=BEST_EFFORT requires Mtime=PRESERVE"),
    ({"options": {"PreserveDeletedFiles": "REMOVE", "TransferMode": "ALL"}}, "cannot be combined"),
    ({"options": {"BytesPerSecond": 0}}, "BytesPerSecond=0 is invalid"),
    ({"excludes": "a||b"}, "Excludes"),
    ({"task_report_config": {"OutputType": "EVERYTHING"}}, "OutputType='EVERYTHING' is invalid"),
    ({"manifest_config": {"Action": "TRANSFER", "Color": "red"}}, "Unknown parameter in ManifestConfig"),
])
def test_request_refuses_bad_values_naming_them(kwargs, message):
    with pytest.raises(OptionsError, match=message):
        start_request(TASK, **kwargs)


def test_request_refuses_what_is_not_a_task_arn():
    with pytest.raises(OptionsError, match="task_arn must be a DataSync task ARN"):
        start_request("my-task")


def test_summary_has_the_native_report_keys():

    native_keys = ["TaskExecutionId", "TaskName", "Status", "SourceLocation", "DestinationLocation", "StartTime",
                   "EndTime", "EstimatedFilesToTransfer", "EstimatedBytesToTransfer", "EstimatedFilesToDelete",
                   "FilesPrepared", "FilesTransferred", "BytesWritten", "BytesTransferred", "FilesSkipped",
                   "FilesDeleted", "FilesVerified", "FilesFailed", "PrepareDuration", "TransferDuration",
                   "VerifyDuration", "TotalDuration", "ErrorCode", "ErrorDetail", "VerifyMode", "Warnings",
                   "ReportUri", "ExecutionUri"]
    summary = execution_summary({"TaskExecutionArn": f"{TASK}/execution/exec-1", "Status": "SUCCESS",
                                 "FilesFailed": {"Prepare": 1, "Transfer": 2, "Verify": 0, "Delete": 1}})
    assert list(summary)[:len(native_keys)] == native_keys
    assert summary["FilesFailed"] == 4 and summary["TaskExecutionId"] == "exec-1" and summary["TaskArn"] == TASK


def test_provider_info_lists_the_aws_modules_and_they_import():
    import importlib

    from airflow_datasync.provider import get_provider_info

    info = get_provider_info()
    modules = {m for section in ("operators", "sensors", "triggers") for entry in info[section]
               for m in entry["python-modules"]}
    assert {"airflow_datasync.operators.aws_datasync", "airflow_datasync.sensors.aws_datasync",
            "airflow_datasync.triggers.aws_datasync"} <= modules
    for module in modules:
        importlib.import_module(module)


def test_the_native_report_renderer_prints_an_aws_summary_without_shard_lines():
    from airflow_datasync.report_text import render

    summary = execution_summary({"TaskExecutionArn": f"{TASK}/execution/exec-7", "Status": "SUCCESS",
                                 "FilesTransferred": 12, "BytesWritten": 1_500_000, "FilesVerified": 12,
                                 "Result": {"PrepareDuration": 1200, "TransferDuration": 3400, "VerifyDuration": 800,
                                            "TotalDuration": 6000}})
    text = render(summary)
    assert text.startswith("DataSync execution exec-7 of task task-0abc: SUCCESS")
    assert "12 entries transferred (1.5 MB)" in text and "TRANSFERRING 3.4 s" in text
    assert "shard" not in text.lower() and "nothing to copy" not in text
