"""Threads that pull work items from one source until it runs dry: the pool every copy loop uses."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def run_pulled(fn: Callable[[Any], Any], take_one: Callable[[], Any], workers: int, name: str) -> list[Any]:
    """``fn(item)`` for each item ``take_one`` gives (until None) on ``workers`` threads; the results in
    the order they ended. The first exception stops the threads and is raised here."""
    results: list[Any] = []
    failure: list[BaseException] = []

    def work() -> None:
        while not failure:
            item = take_one()
            if item is None:
                return
            try:
                results.append(fn(item))  # list.append is atomic: no lock needed
            except BaseException as exc:
                failure.append(exc)
                return

    threads = [threading.Thread(target=work, name=f"{name}-{i}", daemon=True) for i in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failure:
        raise failure[0]
    return results
