"""The one retry helper every backend uses for calls that may meet a transient failure."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from airflow_datasync.errors import ConnectionLostError, is_retryable

T = TypeVar("T")


def retrying(call: Callable[[], T], *, attempts: int = 4, first_pause: float = 0.1, max_pause: float = 5.0,
             retryable: Callable[[BaseException], bool] = is_retryable,
             on_connection_lost: Callable[[], None] | None = None) -> T:
    """``call()``, tried up to ``attempts`` times while it raises what ``retryable`` accepts.

    Pauses grow exponentially from ``first_pause`` (with jitter, so that many threads that failed together
    do not retry together) up to ``max_pause``. Before the attempt that follows a
    :class:`~airflow_datasync.errors.ConnectionLostError`, ``on_connection_lost`` (the backend's reconnect)
    runs. The last failure is raised as it was.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except BaseException as exc:
            if attempt == attempts or not retryable(exc):
                raise
            time.sleep(min(max_pause, first_pause * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))
            if on_connection_lost is not None and isinstance(exc, ConnectionLostError):
                on_connection_lost()
    raise AssertionError("unreachable")  # the loop returns or raises
