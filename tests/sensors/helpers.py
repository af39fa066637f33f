"""What the sensor tests share: run a sensor DAG, know when its trigger started, read its XCom."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any


class TriggerStarted(logging.Handler):
    """Set when ``dag.test()`` starts running a trigger in line: the sensor poked once and deferred.

    A background producer waits on it so that what the sensor waits for happens while the trigger polls,
    never before the first poke (which would succeed on the worker and leave the trigger untested)."""

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "running trigger in line" in record.getMessage():
            self.count += 1
            self.event.set()

    def __enter__(self) -> TriggerStarted:
        logging.getLogger("airflow.sdk.definitions.dag").addHandler(self)
        return self

    def __exit__(self, *_exc) -> None:
        logging.getLogger("airflow.sdk.definitions.dag").removeHandler(self)


def xcom(run, task_id: str, key: str = "return_value") -> Any:
    """An XCom value of a finished dag.test() run, read from the metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id,
                                                 key=key).one_or_none()
        if row is None:
            return None
        value = row.value
    return json.loads(value) if isinstance(value, str) else value


def ti_state(run, task_id: str) -> str:
    (ti,) = [t for t in run.get_task_instances() if t.task_id == task_id]
    return str(ti.state)


class Producer(threading.Thread):
    """Runs ``step(i)`` ``count`` times, ``interval`` seconds apart, optionally after ``start`` is set."""

    def __init__(self, step, count: int, interval: float, start: threading.Event | None = None) -> None:
        super().__init__(daemon=True)
        self.step, self.count, self.interval, self.start_event = step, count, interval, start
        self.stop = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            if self.start_event is not None and not self.start_event.wait(120):
                return
            for i in range(self.count):
                if self.stop.is_set():
                    return
                self.step(i)
                self.stop.wait(self.interval)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def finish(self) -> None:
        self.stop.set()
        self.join(30)
        if self.error is not None:
            raise self.error
