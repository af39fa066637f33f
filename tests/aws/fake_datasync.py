"""A thin fake of the AWS DataSync *service* on 127.0.0.1, for what moto cannot show.

moto's DataSync mock (used by ``test_aws_moto.py``) steps ``INITIALIZING → PREPARING → TRANSFERRING →
VERIFYING → SUCCESS`` once per DescribeTaskExecution and returns no counters, no ``Result``, never QUEUED,
LAUNCHING or CANCELLING, and never a natural ERROR. This server speaks the same wire protocol as AWS
(JSON 1.1, ``X-Amz-Target: FmrsService.<Operation>``: what botocore sends to DataSync) for the four
calls our code makes, plays a scripted status sequence per execution (one step per describe, as moto),
returns AWS-shaped counters and Result fields, and counts every call server side. Tests can make it
fail a call (HTTP 500 ``InternalException``), or lose StartTaskExecution's answer after the execution
was created, as a dropped connection would.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCOUNT, REGION = "123456789012", "us-east-1"

#: A whole successful run with counters, as AWS reports it (QUEUED first: another execution was running).
SUCCESS_SCRIPT: list[dict[str, Any]] = [
    {"Status": "QUEUED"},
    {"Status": "QUEUED"},
    {"Status": "LAUNCHING"},
    {"Status": "PREPARING", "Result": {"PrepareStatus": "PENDING", "TransferStatus": "PENDING", "VerifyStatus": "PENDING"}},
    {"Status": "TRANSFERRING", "EstimatedFilesToTransfer": 120, "EstimatedBytesToTransfer": 7_340_032,
     "FilesPrepared": 125, "FilesTransferred": 40, "BytesWritten": 2_000_000,
     "Result": {"PrepareStatus": "SUCCESS", "PrepareDuration": 4200, "TransferStatus": "PENDING", "VerifyStatus": "PENDING"}},
    {"Status": "VERIFYING", "EstimatedFilesToTransfer": 120, "EstimatedBytesToTransfer": 7_340_032,
     "FilesPrepared": 125, "FilesTransferred": 120, "BytesWritten": 7_340_032, "BytesTransferred": 7_340_032,
     "FilesSkipped": 5, "FilesDeleted": 2,
     "Result": {"PrepareStatus": "SUCCESS", "PrepareDuration": 4200, "TransferStatus": "SUCCESS",
                "TransferDuration": 61000, "VerifyStatus": "PENDING"}},
    {"Status": "SUCCESS", "EstimatedFilesToTransfer": 120, "EstimatedBytesToTransfer": 7_340_032,
     "EstimatedFilesToDelete": 2, "FilesPrepared": 125, "FilesTransferred": 120, "BytesWritten": 7_340_032,
     "BytesTransferred": 7_340_032, "BytesCompressed": 7_000_000, "FilesSkipped": 5, "FilesDeleted": 2,
     "FilesVerified": 120, "FilesFailed": {"Prepare": 0, "Transfer": 0, "Verify": 0, "Delete": 0},
     "Result": {"PrepareStatus": "SUCCESS", "PrepareDuration": 4200, "TransferStatus": "SUCCESS",
                "TransferDuration": 61000, "VerifyStatus": "SUCCESS", "VerifyDuration": 9000, "TotalDuration": 76000}},
]

#: Fails while transferring: files were unreadable at the source.
TRANSFER_ERROR_SCRIPT: list[dict[str, Any]] = SUCCESS_SCRIPT[2:5] + [
    {"Status": "ERROR", "FilesTransferred": 37, "BytesWritten": 1_500_000,
     "FilesFailed": {"Prepare": 0, "Transfer": 3, "Verify": 0, "Delete": 0},
     "Result": {"PrepareStatus": "SUCCESS", "PrepareDuration": 4200, "TransferStatus": "ERROR",
                "TransferDuration": 20000, "VerifyStatus": "PENDING", "TotalDuration": 25000,
                "ErrorCode": "SyncTaskErrorLocationNotReadable",
                "ErrorDetail": "Transfer failed: 3 files could not be read at the source location"}},
]

#: What a cancelled execution reports: CANCELLING for a while, then ERROR with AWS's cancel code.
CANCELLED_STEPS: list[dict[str, Any]] = [
    {"Status": "CANCELLING"},
    {"Status": "CANCELLING"},
    {"Status": "ERROR", "Result": {"PrepareStatus": "SUCCESS", "TransferStatus": "ERROR", "VerifyStatus": "PENDING",
                                   "ErrorCode": "OperationCanceled", "ErrorDetail": "Task execution was cancelled"}},
]


@dataclass
class _Execution:
    arn: str
    task_arn: str
    script: list[dict[str, Any]]
    started: dt.datetime
    step: int = 0

    def describe(self) -> dict[str, Any]:
        current = self.script[min(self.step, len(self.script) - 1)]
        self.step += 1
        return {"TaskExecutionArn": self.arn, "StartTime": self.started.timestamp(),
                "Options": {"VerifyMode": "ONLY_FILES_TRANSFERRED"}, **current}

    @property
    def status(self) -> str:
        return self.script[min(self.step, len(self.script) - 1)]["Status"]


@dataclass
class FakeDataSync:
    """State and behaviour; the HTTP server around it is started by :func:`start_fake_datasync`."""

    endpoint: str = ""
    calls: collections.Counter = field(default_factory=collections.Counter)
    requests: list[tuple[str, dict]] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    executions: dict[str, _Execution] = field(default_factory=dict)
    #: Scripts for the next started executions, in order (the last one repeats).
    scripts: list[list[dict[str, Any]]] = field(default_factory=lambda: [SUCCESS_SCRIPT])
    #: Operation name -> how many of its next calls answer HTTP 500 InternalException.
    fail_next: collections.Counter = field(default_factory=collections.Counter)
    #: Create the next execution but answer StartTaskExecution with HTTP 500, as if the answer was lost.
    lose_next_start_answer: bool = False
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create_task(self, name: str = "fake-task") -> str:
        arn = f"arn:aws:datasync:{REGION}:{ACCOUNT}:task/task-{next(self._ids):017x}"
        self.tasks[arn] = {"TaskArn": arn, "Name": name, "Status": "AVAILABLE", "CurrentTaskExecutionArn": None,
                           "SourceLocationArn": f"arn:aws:datasync:{REGION}:{ACCOUNT}:location/loc-src",
                           "DestinationLocationArn": f"arn:aws:datasync:{REGION}:{ACCOUNT}:location/loc-dst"}
        return arn

    def started(self) -> int:
        return self.calls["StartTaskExecution"]

    # -- operations ---------------------------------------------------------------------------------
    def handle(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls[operation] += 1
            self.requests.append((operation, body))
            if self.fail_next[operation] > 0:
                self.fail_next[operation] -= 1
                return 500, {"__type": "InternalException", "message": "injected failure"}
            handler = {"StartTaskExecution": self._op_StartTaskExecution, "DescribeTaskExecution": self._op_DescribeTaskExecution,
                       "DescribeTask": self._op_DescribeTask, "CancelTaskExecution": self._op_CancelTaskExecution}.get(operation)
            if handler is None:
                return 400, {"__type": "InvalidRequestException", "message": f"{operation} is not faked"}
            return handler(body)

    def _op_StartTaskExecution(self, body):
        task = self.tasks.get(body.get("TaskArn"))
        if task is None:
            return 400, {"__type": "InvalidRequestException", "message": "task not found"}
        script = self.scripts.pop(0) if len(self.scripts) > 1 else self.scripts[0]
        arn = f"{task['TaskArn']}/execution/exec-{next(self._ids):017x}"
        self.executions[arn] = _Execution(arn, task["TaskArn"], list(script), dt.datetime.now(dt.UTC))
        task["CurrentTaskExecutionArn"] = arn
        if self.lose_next_start_answer:
            self.lose_next_start_answer = False
            return 500, {"__type": "InternalException", "message": "connection dropped after the execution was created"}
        return 200, {"TaskExecutionArn": arn}

    def _op_DescribeTaskExecution(self, body):
        execution = self.executions.get(body.get("TaskExecutionArn"))
        if execution is None:
            return 400, {"__type": "InvalidRequestException", "message": "execution not found"}
        answer = execution.describe()
        if answer["Status"] in ("SUCCESS", "ERROR") and self.tasks[execution.task_arn]["CurrentTaskExecutionArn"] == execution.arn:
            self.tasks[execution.task_arn]["CurrentTaskExecutionArn"] = None
        return 200, answer

    def _op_DescribeTask(self, body):
        task = self.tasks.get(body.get("TaskArn"))
        if task is None:
            return 400, {"__type": "InvalidRequestException", "message": "task not found"}
        return 200, {k: v for k, v in task.items() if v is not None}

    def _op_CancelTaskExecution(self, body):
        execution = self.executions.get(body.get("TaskExecutionArn"))
        if execution is None or execution.status in ("SUCCESS", "ERROR", "CANCELLING"):
            return 400, {"__type": "InvalidRequestException", "message": "execution cannot be cancelled now"}
        execution.script, execution.step = list(CANCELLED_STEPS), 0
        return 200, {}


def start_fake_datasync() -> tuple[FakeDataSync, ThreadingHTTPServer]:
    fake = FakeDataSync()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            target = self.headers.get("X-Amz-Target", "")
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            status, answer = fake.handle(target.rsplit(".", 1)[-1], body)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, name="fake-datasync", daemon=True).start()
    return fake, server
