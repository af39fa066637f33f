"""What both sensors share: poke once on the worker, then defer with a deadline, and read the event back."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout
from airflow.triggers.base import BaseTrigger


def seconds(value: timedelta | float | int) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class DeferringSensor(BaseSensorOperator):
    """A sensor that, with ``deferrable=True`` (the default), pokes once on the worker and then hands the
    waiting to a trigger, freeing the worker slot; ``deferrable=False`` keeps ``poke``/``reschedule`` mode.

    The trigger gets a ``deadline`` (epoch seconds, ``timeout`` after the first poke) besides Airflow's
    deferral timeout: the triggerer enforces the latter, ``dag.test()`` only the former."""

    def __init__(self, *, deferrable: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable

    def make_trigger(self, context, deadline: float) -> BaseTrigger:  # pragma: no cover - abstract
        raise NotImplementedError

    def done_value(self, context) -> Any:
        """The XCom value of a poke that found the wait over (set by :meth:`poke`)."""
        return None

    def execute(self, context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        started = time.time()
        if self.poke(context):
            return self.done_value(context)
        self.defer(trigger=self.make_trigger(context, deadline=started + self.timeout),
                   method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> Any:
        event = event or {}
        status = event.get("status")
        if status == "success":
            return self.on_success_event(context, event)
        if status == "timeout":
            raise AirflowSensorTimeout(f"{self.task_id}: {event.get('message', 'timed out')} "
                                       f"(timeout {self.timeout:.0f}s)")
        raise AirflowException(f"{self.task_id}: {event.get('message') or f'unexpected trigger event {event!r}'}")

    def on_success_event(self, context, event: dict[str, Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError
