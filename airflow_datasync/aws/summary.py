"""A DescribeTaskExecution answer as our execution report: the native engine's report.json keys, types
and order (so the same readers, renderers and pages work), plus the AWS identifiers.

DescribeTaskExecution already uses DataSync's counter names; what differs is nesting (``Result.*``,
``FilesFailed`` per phase) and types (datetimes). Counters AWS leaves out read as 0, as AWS itself
reports counters that have not moved; moto returns none at all.
"""

from __future__ import annotations

from typing import Any

from airflow_datasync.aws.client import jsonable
from airflow_datasync.aws.status import execution_id

_COUNTERS = ("EstimatedFilesToTransfer", "EstimatedBytesToTransfer", "EstimatedFilesToDelete", "FilesPrepared",
             "FilesTransferred", "BytesWritten", "BytesTransferred", "FilesSkipped", "FilesDeleted", "FilesVerified")
_DURATIONS = ("PrepareDuration", "TransferDuration", "VerifyDuration", "TotalDuration")


def execution_summary(description: dict[str, Any], task: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report of one AWS execution from its DescribeTaskExecution (and optionally DescribeTask) answer."""
    d = jsonable(description)
    task = jsonable(task or {})
    arn = d["TaskExecutionArn"]
    result = d.get("Result") or {}
    failed = d.get("FilesFailed") or {}
    summary: dict[str, Any] = {
        "TaskExecutionId": execution_id(arn),
        "TaskName": task.get("Name") or arn.split("/execution/")[0].rsplit("/", 1)[-1],
        "Status": d.get("Status"),
        "SourceLocation": task.get("SourceLocationArn"),
        "DestinationLocation": task.get("DestinationLocationArn"),
        "StartTime": d.get("StartTime"),
        "EndTime": d.get("EndTime"),
        **{name: int(d.get(name) or 0) for name in _COUNTERS},
        # AWS splits failures by phase; the total keeps the native report's meaning, the split is kept too.
        "FilesFailed": sum(int(v or 0) for v in failed.values()) if isinstance(failed, dict) else int(failed or 0),
        **{name: int(result.get(name) or 0) for name in _DURATIONS},
        "ErrorCode": result.get("ErrorCode"),
        "ErrorDetail": result.get("ErrorDetail"),
        "VerifyMode": (d.get("Options") or {}).get("VerifyMode"),
        "Warnings": [],
        "ReportUri": None,  # a TaskReportConfig report lives where AWS wrote it (see TaskReportConfig below)
        "ExecutionUri": None,  # no manifest store: the execution lives in AWS
        "Engine": "aws",
        "TaskExecutionArn": arn,
        "TaskArn": task.get("TaskArn") or arn.split("/execution/")[0],
        "FilesFailedByPhase": failed if isinstance(failed, dict) else {},
        "PhaseStatus": {k: result.get(k) for k in ("PrepareStatus", "TransferStatus", "VerifyStatus") if k in result},
        "BytesCompressed": int(d.get("BytesCompressed") or 0),
        "LaunchTime": d.get("LaunchTime"),
    }
    if d.get("TaskReportConfig"):
        summary["TaskReportConfig"] = d["TaskReportConfig"]
    if d.get("ReportResult"):
        summary["ReportResult"] = d["ReportResult"]
    return summary
