"""``AwsSyncPhaseSensor``: one AWS DataSync phase as one Airflow task.

Succeeds when the execution *leaves* its phase (a later status, or SUCCESS), fails at once (no retries:
the execution's outcome will not change) when it ends in ERROR in that phase, naming AWS's ErrorCode and
ErrorDetail, and fails on a status it does not know rather than guessing. QUEUED waits; CANCELLING waits
for the ERROR it ends in. Deferrable by default: the wait runs in the triggerer, holding no worker slot.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.links.datasync import DataSyncTaskExecutionLink
from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_datasync.aws.client import AwsSyncApiError, AwsSyncClient, jsonable
from airflow_datasync.aws.status import KNOWN_STATUSES, PHASES, PhaseOutcome, execution_id, phase_outcome
from airflow_datasync.triggers.aws_datasync import AwsSyncPhaseTrigger

log = logging.getLogger("airflow_datasync")


class AwsSyncPhaseSensor(BaseSensorOperator):
    """Wait until an AWS DataSync task execution leaves ``phase``.

    :param task_execution_arn: the execution to watch, usually the start task's output. Templated.
    :param phase: LAUNCHING, PREPARING, TRANSFERRING or VERIFYING.
    :param aws_conn_id: Airflow AWS connection (credentials, region, endpoint) for the Amazon provider's hook.
    :param region_name: overrides the connection's region.
    :param poll_interval: seconds between DescribeTaskExecution calls (also the poke interval).
    :param deferrable: wait in the triggerer (default); False pokes on the worker (``mode="reschedule"``
        frees the slot between pokes).
    :param cancel_on_kill: cancel the execution when this task is killed or marked failed while it waits.
    Returns ``{"TaskExecutionArn", "TaskExecutionId", "Phase", "Status"}``: the status that ended the wait.
    """

    template_fields: Sequence[str] = ("task_execution_arn",)
    operator_extra_links = (DataSyncTaskExecutionLink(),)
    ui_color = "#fdebd0"

    def __init__(self, *, task_execution_arn: Any, phase: str, aws_conn_id: str | None = "aws_default",
                 region_name: str | None = None, poll_interval: float = 30, deferrable: bool = True,
                 cancel_on_kill: bool = True, **kwargs) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        if phase not in PHASES:
            raise ValueError(f"phase {phase!r} is not one of {', '.join(PHASES)}")
        self.task_execution_arn, self.phase = task_execution_arn, phase
        self.aws_conn_id, self.region_name = aws_conn_id, region_name
        self.poll_interval, self.deferrable, self.cancel_on_kill = poll_interval, deferrable, cancel_on_kill

    def _arn(self) -> str:
        if not isinstance(self.task_execution_arn, str) or "/execution/" not in self.task_execution_arn:
            raise AirflowFailException(f"expected a TaskExecutionArn (the start task's output), got {self.task_execution_arn!r}")
        return self.task_execution_arn

    def execute(self, context) -> Any:
        arn = self._arn()
        AwsSyncClient(self.aws_conn_id, self.region_name).persist_console_link(context, self, arn)
        if not self.deferrable:
            return super().execute(context)
        # No poke on the worker first: the trigger's first poll happens at once, and the slot is freed now.
        self.defer(
            trigger=AwsSyncPhaseTrigger(task_execution_arn=arn, phase=self.phase, aws_conn_id=self.aws_conn_id,
                                        region_name=self.region_name, poll_interval=self.poll_interval,
                                        cancel_on_kill=self.cancel_on_kill),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("outcome") == "API_ERROR":
            raise AirflowFailException(f"cannot watch {event.get('task_execution_arn')}: {event.get('error')}")
        return self._conclude(PhaseOutcome(event["outcome"]), event.get("status", ""), event.get("result") or {})

    def poke(self, context) -> bool | PokeReturnValue:
        try:
            description = AwsSyncClient(self.aws_conn_id, self.region_name).describe_execution(self._arn())
        except AwsSyncApiError as exc:
            if exc.transient:
                self.log.warning("%s; asking again at the next poke", exc)
                return False
            raise AirflowFailException(str(exc)) from exc
        status, result = description.get("Status", ""), jsonable(description.get("Result") or {})
        outcome = phase_outcome(self.phase, status, result)
        if outcome is PhaseOutcome.WAITING:
            self.log.info("%s is %s; waiting for it to leave %s", self._arn(), status, self.phase)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._conclude(outcome, status, result))

    def _conclude(self, outcome: PhaseOutcome, status: str, result: dict[str, Any]) -> dict[str, Any]:
        arn = self._arn()
        if outcome is PhaseOutcome.LEFT:
            self.log.info("%s left %s (now %s)", arn, self.phase, status)
            return {"TaskExecutionArn": arn, "TaskExecutionId": execution_id(arn), "Phase": self.phase,
                    "Status": status}
        if outcome is PhaseOutcome.FAILED:
            code, detail = result.get("ErrorCode") or "UnknownError", result.get("ErrorDetail") or "AWS gave no detail"
            raise AirflowFailException(f"AWS DataSync execution {execution_id(arn)} ended in ERROR during {self.phase}: "
                                       f"{code}: {detail}")
        if outcome is PhaseOutcome.UNKNOWN:
            raise AirflowFailException(f"AWS DataSync execution {execution_id(arn)} reports status {status!r}, which "
                                       f"airflow-datasync does not know (known: {', '.join(KNOWN_STATUSES)}); "
                                       "upgrade airflow-datasync or check the execution in the AWS console")
        raise AirflowException(f"unexpected outcome {outcome!r}")

    def on_kill(self) -> None:
        # Only while poking on a worker; a deferred sensor is cancelled by its trigger's on_kill.
        if self.cancel_on_kill and isinstance(self.task_execution_arn, str) and "/execution/" in self.task_execution_arn:
            AwsSyncClient(self.aws_conn_id, self.region_name).cancel(self.task_execution_arn)
