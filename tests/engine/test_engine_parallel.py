"""run_parallel: the thread pool every shard, FINALIZE and VERIFYING use (pure logic, real threads)."""

from __future__ import annotations

import threading
import time

import pytest

from airflow_datasync.phases.transfer import run_parallel


def test_results_come_back_in_input_order_from_several_threads():
    seen_threads: set[str] = set()

    def work(i: int) -> int:
        seen_threads.add(threading.current_thread().name)
        time.sleep(0.001 * (i % 3))  # finish out of order
        return i * i

    assert run_parallel(work, list(range(200)), 8, "t") == [i * i for i in range(200)]
    assert len(seen_threads) > 1


def test_the_first_exception_is_raised_and_stops_taking_new_items():
    taken: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            taken.append(i)
        if i == 5:
            raise ValueError("boom at 5")
        time.sleep(0.002)
        return i

    with pytest.raises(ValueError, match="boom at 5"):
        run_parallel(work, list(range(1000)), 4, "t")
    assert len(taken) < 1000  # the others stopped pulling items


@pytest.mark.parametrize("items,workers", [([], 8), ([7], 8), ([1, 2, 3], 1)])
def test_small_inputs_run_inline(items, workers):
    main = threading.current_thread().name
    names = run_parallel(lambda _: threading.current_thread().name, items, workers, "t")
    assert names == [main] * len(items)
