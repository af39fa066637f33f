"""Waiting for an execution of this engine to reach a phase: what its files say, and the trigger that polls.

An execution's phases leave one record each in its directory of the manifest store, so "has phase P
finished" is "does P's record exist": ``launch.json`` (LAUNCHING), ``prepare.json`` (PREPARING),
``finalize.json`` (TRANSFERRING: all shards and the deletions), ``verify.json`` (VERIFYING), ``report.json``
(the final ``Status``, SUCCESS or ERROR). A SUCCESS report means every phase finished (VerifyMode NONE
writes no checks but still reaches the end). The status and live counters come from
:mod:`airflow_datasync.catalog`, so a sensor and the UI always say the same thing about an execution.

The functions here block (a local disk or an S3 store): the trigger calls them through
``asyncio.to_thread`` and the sensor calls them on the worker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_datasync import catalog
from airflow_datasync.manifest import ExecutionDir, check_name
from airflow_datasync.rendered import parse_rendered

log = logging.getLogger("airflow_datasync")

#: What a sensor may wait for: a phase finished, or ``DONE`` (the report, SUCCESS or ERROR).
WAIT_FOR = ("LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING", "DONE")
_RECORD_OF = {"LAUNCHING": "launch", "PREPARING": "prepare", "TRANSFERRING": "finalize", "VERIFYING": "verify",
              "DONE": "report"}
#: Counters copied from report.json into the summary a sensor pushes (DataSync's names).
SUMMARY_COUNTERS = ("FilesTransferred", "BytesWritten", "FilesSkipped", "FilesDeleted", "FilesVerified",
                    "FilesFailed", "EstimatedFilesToTransfer", "EstimatedBytesToTransfer")


@dataclass(frozen=True)
class ExecutionTarget:
    """Which execution to watch: one given by reference (``execution`` + ``store_conn_id``, as the LAUNCHING
    task returns it), or the newest execution of ``task_name`` in ``manifest_store`` launched at or after
    ``launched_after`` (so that a run waits for today's execution, not yesterday's finished one)."""

    execution: str | None = None
    store_conn_id: str | None = None
    task_name: str | None = None
    manifest_store: str | None = None
    launched_after: str | None = None  # ISO 8601, UTC when naive

    def __post_init__(self) -> None:
        if bool(self.execution) == bool(self.task_name):
            raise ValueError("give either an execution reference (the launch task's output) or a task_name "
                             "to watch the latest execution of, not both and not neither")
        if self.task_name:
            check_name("task name", self.task_name)  # one path component: never reads outside the store
        if self.launched_after:
            dt.datetime.fromisoformat(self.launched_after.replace("Z", "+00:00"))  # fails on the worker, not later

    @classmethod
    def from_reference(cls, value: Any, store_conn_id: str | None = None) -> ExecutionTarget:
        """The launch task's XCom (``{"execution", "store_conn_id", ...}``, also as the text a template renders
        it to without ``render_template_as_native_obj``) or a bare execution URI."""
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                value = parse_rendered(value)
            except ValueError:
                raise ValueError(f"cannot read an execution reference from {value!r}") from None
        if isinstance(value, dict):
            return cls(execution=value.get("execution"), store_conn_id=value.get("store_conn_id", store_conn_id))
        if isinstance(value, str) and value and value != "None":
            return cls(execution=value, store_conn_id=store_conn_id)
        raise ValueError(f"expected an execution reference (the launch task's output or an execution URI), got {value!r}")

    def to_kwargs(self) -> dict[str, Any]:
        return {"execution": self.execution, "store_conn_id": self.store_conn_id, "task_name": self.task_name,
                "manifest_store": self.manifest_store, "launched_after": self.launched_after}


def default_store() -> str:
    """The manifest store the operators use when none is given (read now: tests and workers set it late)."""
    from airflow_datasync import engine

    return os.environ.get("AIRFLOW_DATASYNC_MANIFEST_STORE") or engine.DEFAULT_STORE


def resolve(target: ExecutionTarget) -> ExecutionDir | None:
    """The execution directory to read, or None while no execution qualifies yet (keep waiting)."""
    if target.execution:
        return ExecutionDir(target.execution, target.store_conn_id)
    store = catalog.StoreRef(target.manifest_store or default_store(), target.store_conn_id)
    newest = next(catalog.iter_executions(store, task_name=target.task_name, since=target.launched_after), None)
    return newest.dir if newest is not None else None


def execution_state(execution: ExecutionDir) -> dict[str, Any]:
    """What an execution's records say: ``status`` and live counters as the catalog (the UI) derives them,
    ``phases_done`` from the records each finished phase writes, and the report's error once it exists.
    JSON-only, no secrets (records name connections by id only)."""
    info = catalog.execution_info(execution)
    records = {name: execution.read_json(getattr(execution, name)) for name in ("launch", "prepare", "finalize",
                                                                                 "verify", "report")}
    report = records["report"]
    if report is not None and report.get("Status") == "SUCCESS":
        done = list(WAIT_FOR)  # VerifyMode NONE or a dry run may skip a record, but reached the end
    else:
        done = [phase for phase in WAIT_FOR if records[_RECORD_OF[phase]] is not None]
    state: dict[str, Any] = {"execution": execution.uri, "store_conn_id": execution.conn_id,
                             "execution_id": execution.execution_id, "task_name": execution.task_name,
                             "status": info["status"], "phase": info["phase"],
                             "phases_done": [p for p in done if p != "DONE"], "airflow": info.get("airflow"),
                             "DestinationLocation": info.get("destination") or None}
    state.update({key: info["counters"].get(key) for key in SUMMARY_COUNTERS})
    state.update(ErrorCode=(report or {}).get("ErrorCode"), ErrorDetail=(report or {}).get("ErrorDetail"))
    return state


def check_execution(target: ExecutionTarget, wait_for: str) -> dict[str, Any] | None:
    """One poll: an event payload once the wait is over (``status`` success or failed), else None.

    A phase counts as reached once its record exists, even if the execution failed later; an execution
    that ended in ERROR without reaching it fails the wait, with DataSync's ErrorCode and ErrorDetail."""
    execution = resolve(target)
    if execution is None:
        return None
    state = execution_state(execution)
    reached = wait_for in state["phases_done"] or (wait_for == "DONE" and state["status"] in ("SUCCESS", "ERROR"))
    if reached and not (wait_for == "DONE" and state["status"] == "ERROR"):
        return {"status": "success", "summary": state}
    if state["status"] == "ERROR":
        return {"status": "failed", "summary": state,
                "message": f"execution {state['execution_id']} ended in ERROR before {wait_for} finished: "
                           f"ErrorCode={state.get('ErrorCode')}, ErrorDetail={state.get('ErrorDetail')}"}
    return None


class SyncExecutionTrigger(BaseTrigger):
    """Polls an execution's records in the manifest store until the wait is over; yields one event.

    Event payloads: ``{"status": "success", "summary": {...}}``, ``{"status": "failed", "summary", "message"}``
    or ``{"status": "timeout", "message"}`` once ``deadline`` (epoch seconds) has passed; Airflow's own
    deferral timeout covers the triggerer, the deadline covers ``dag.test()``, which does not enforce it.
    """

    def __init__(self, *, execution: str | None = None, store_conn_id: str | None = None,
                 task_name: str | None = None, manifest_store: str | None = None,
                 launched_after: str | None = None, wait_for: str = "DONE", poll_interval: float = 30.0,
                 deadline: float | None = None) -> None:
        super().__init__()
        self.target = ExecutionTarget(execution, store_conn_id, task_name, manifest_store, launched_after)
        self.wait_for, self.poll_interval, self.deadline = wait_for, float(poll_interval), deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("airflow_datasync.triggers.execution.SyncExecutionTrigger",
                {**self.target.to_kwargs(), "wait_for": self.wait_for, "poll_interval": self.poll_interval,
                 "deadline": self.deadline})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                event = await asyncio.to_thread(check_execution, self.target, self.wait_for)
            except (OSError, ValueError) as exc:  # a store briefly unreachable, a record half-uploaded
                log.warning("execution %s: cannot read its records yet (%s); polling again",
                            self.target.execution or self.target.task_name, exc)
                event = None
            if event is not None:
                yield TriggerEvent(event)
                return
            if self.deadline is not None and time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", "message": f"{self.wait_for} not reached in time"})
                return
            await asyncio.sleep(self.poll_interval)
