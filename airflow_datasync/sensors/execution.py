"""``SyncExecutionSensor``: wait until an execution of this engine reaches a phase or its end."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_datasync.sensors._deferral import DeferringSensor
from airflow_datasync.triggers.execution import WAIT_FOR, ExecutionTarget, SyncExecutionTrigger, check_execution


def _check_wait_for(value: str) -> None:
    if value not in WAIT_FOR:
        raise ValueError(f"wait_for must be one of {', '.join(WAIT_FOR)}, got {value!r}")


class SyncExecutionSensor(DeferringSensor):
    """Wait until an execution reaches ``wait_for``; succeed, or fail if it ended in ERROR first.

    Which execution: ``execution`` — the launch task's output (``launch.output`` or
    ``"{{ ti.xcom_pull('sync.launch') }}"``: ``{"execution": ..., "store_conn_id": ...}``) or an execution URI —
    or ``task_name`` (+ ``manifest_store``, ``manifest_store_conn_id``): the newest execution of that sync task
    name, launched at or after ``launched_after`` when given (``"{{ data_interval_start }}"`` makes a run wait
    for its own execution, not an older finished one; while none qualifies the sensor keeps waiting).

    :param wait_for: ``LAUNCHING``, ``PREPARING``, ``TRANSFERRING`` or ``VERIFYING`` (that phase finished) or
        ``DONE`` (the report exists: SUCCESS succeeds; ERROR fails unless ``fail_on_error=False``).
    :param deferrable: wait in the triggerer (default) or, with False, in ``poke``/``reschedule`` mode.
    Pushes the execution's summary (status, phases done, DataSync counters once reported) as return value.
    """

    template_fields: Sequence[str] = ("execution", "task_name", "manifest_store", "launched_after", "wait_for")
    ui_color = "#d5f5e3"

    def __init__(self, *, execution: Any = None, task_name: str | None = None, manifest_store: str | None = None,
                 manifest_store_conn_id: str | None = None, launched_after: str | dt.datetime | None = None,
                 wait_for: str = "DONE", fail_on_error: bool = True, poke_interval: float = 30,
                 **kwargs: Any) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        if "{{" not in wait_for:
            _check_wait_for(wait_for)  # a typo fails when the DAG is parsed
        if (execution is None) == (task_name is None):
            raise ValueError("give either execution (the launch task's output) or task_name, not both")
        self.execution, self.task_name, self.manifest_store = execution, task_name, manifest_store
        self.manifest_store_conn_id, self.launched_after = manifest_store_conn_id, launched_after
        self.wait_for, self.fail_on_error = wait_for, fail_on_error
        self._summary: dict[str, Any] | None = None

    def _target(self) -> ExecutionTarget:
        """What to watch, from the rendered fields; bad input fails the task at once (no retry helps)."""
        try:
            _check_wait_for(self.wait_for)
            if self.execution is not None:
                return ExecutionTarget.from_reference(self.execution, self.manifest_store_conn_id)
            after = self.launched_after
            if isinstance(after, dt.datetime):
                after = after.isoformat()
            return ExecutionTarget(task_name=self.task_name, manifest_store=self.manifest_store or None,
                                   store_conn_id=self.manifest_store_conn_id, launched_after=after or None)
        except ValueError as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from exc

    def poke(self, context) -> bool:
        event = check_execution(self._target(), self.wait_for)
        if event is None:
            self.log.info("waiting for %s of %s", self.wait_for, self.execution or f"the latest {self.task_name}")
            return False
        self._finish(context, event)
        return True

    def done_value(self, context) -> dict[str, Any] | None:
        return self._summary

    def make_trigger(self, context, deadline: float) -> SyncExecutionTrigger:
        return SyncExecutionTrigger(**self._target().to_kwargs(), wait_for=self.wait_for,
                                    poll_interval=self.poke_interval, deadline=deadline)

    def on_success_event(self, context, event: dict[str, Any]) -> dict[str, Any]:
        self._finish(context, event)
        return self._summary

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> Any:
        if (event or {}).get("status") == "failed":
            self._finish(context, event)  # raises unless fail_on_error=False
            return self._summary
        return super().execute_complete(context, event)

    def _finish(self, context, event: dict[str, Any]) -> None:
        summary = event["summary"]
        self._summary = summary
        context["ti"].xcom_push(key="summary", value=summary)
        if event["status"] == "failed":
            if self.fail_on_error:
                raise AirflowException(event["message"])
            self.log.warning("%s", event["message"])
        else:
            self.log.info("execution %s: %s reached (status %s)", summary["execution_id"], self.wait_for,
                          summary["status"])
