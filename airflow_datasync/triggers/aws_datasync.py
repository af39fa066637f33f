"""``AwsSyncPhaseTrigger``: waits in the triggerer until an AWS DataSync execution leaves one phase.

Polls DescribeTaskExecution every ``poll_interval`` seconds (the first poll at once) through
``asyncio.to_thread``: boto3 blocks, and the triggerer's event loop must not. Kwargs are JSON only:
the execution ARN, the phase, the connection id, the region and the interval (never a credential).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_datasync.aws.client import AwsSyncApiError, AwsSyncClient, jsonable
from airflow_datasync.aws.status import PhaseOutcome, phase_outcome

log = logging.getLogger("airflow_datasync")


class AwsSyncPhaseTrigger(BaseTrigger):
    """Fires once: ``{"outcome": LEFT|FAILED|UNKNOWN|API_ERROR, "status": ..., "result": {...}, ...}``.

    ``on_kill`` (a user marked the deferred task failed or success, or cleared it) cancels the
    execution; ``cleanup`` does not, because it also runs when the trigger merely moves to another
    triggerer or the triggerer restarts, and the execution must survive that.
    """

    def __init__(self, *, task_execution_arn: str, phase: str, aws_conn_id: str | None = "aws_default",
                 region_name: str | None = None, poll_interval: float = 30.0, cancel_on_kill: bool = True) -> None:
        super().__init__()
        self.task_execution_arn, self.phase = task_execution_arn, phase
        self.aws_conn_id, self.region_name = aws_conn_id, region_name
        self.poll_interval, self.cancel_on_kill = float(poll_interval), bool(cancel_on_kill)
        self._client: AwsSyncClient | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"task_execution_arn": self.task_execution_arn, "phase": self.phase, "aws_conn_id": self.aws_conn_id,
                 "region_name": self.region_name, "poll_interval": self.poll_interval,
                 "cancel_on_kill": self.cancel_on_kill})

    @property
    def client(self) -> AwsSyncClient:
        if self._client is None:
            self._client = AwsSyncClient(self.aws_conn_id, self.region_name)
        return self._client

    async def run(self) -> AsyncIterator[TriggerEvent]:
        polls = 0
        while True:
            polls += 1
            try:
                description = await asyncio.to_thread(self.client.describe_execution, self.task_execution_arn)
            except AwsSyncApiError as exc:
                if exc.transient:
                    self.log.warning("poll %d of %s: %s; asking again in %.0f s", polls, self.task_execution_arn,
                                     exc, self.poll_interval)
                    await asyncio.sleep(self.poll_interval)
                    continue
                yield TriggerEvent({"outcome": "API_ERROR", "task_execution_arn": self.task_execution_arn,
                                    "error": str(exc), "code": exc.code, "polls": polls})
                return
            status = description.get("Status", "")
            result = jsonable(description.get("Result") or {})
            outcome = phase_outcome(self.phase, status, result)
            if outcome is not PhaseOutcome.WAITING:
                yield TriggerEvent({"outcome": outcome.value, "status": status, "result": result, "polls": polls,
                                    "task_execution_arn": self.task_execution_arn})
                return
            self.log.info("%s is %s; waiting for it to leave %s", self.task_execution_arn, status, self.phase)
            await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        if self.cancel_on_kill:
            await asyncio.to_thread(self.client.cancel, self.task_execution_arn)
