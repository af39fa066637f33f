"""kill -9 of a TRANSFERRING shard that runs in two processes (``transfer_processes=2``): the task's process is
killed at seeded random moments, as Airflow's supervisor or the OOM killer would; its copy process must
die with it (nothing may write once a retry started), and the retries converge: nothing partial at a final
name after a kill, nothing lost, corrupt or left over after the last retry."""

from __future__ import annotations

import random
import time

import pytest

from airflow_datasync import engine
from tests.faults.figures import Figure, record
from tests.faults.killing import (
    Tally,
    Zygote,
    copy_processes_of,
    finish_execution,
    kill_delays,
    kill_shard_then_retry,
    mixed_tree,
)
from tests.faults.test_kill9 import HOLDS, RATE, Destinations, _launch, assert_held

SEED = 1314
KILLS = {"local": 6, "smb": 6}
#: Many small files (both processes take some) and a few of several MiB (kills land mid-write).
TREE = {"small": 160, "mid_mib": (2, 6), "big_mib": 8}
#: Seconds a copy process may take to be reaped by the kernel after its parent's death.
DEATH_GRACE_S = 30


def _wait_for_orphans(parent: int) -> list[int]:
    deadline = time.monotonic() + DEATH_GRACE_S
    while (alive := copy_processes_of(parent)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive


def _copy_process_start_s(zygote: Zygote, src, destinations: Destinations, tmp_path) -> float:
    """How long after its start a shard's copy process is running (one unkilled run)."""
    dst, _view = destinations.make()
    execution = _launch(src, dst, tmp_path / "store", {"transfer_processes": 2})
    (shard,) = engine.prepare(execution)
    child = zygote.run("transfer", execution, shard["shard"])
    while not copy_processes_of(child.pid) and zygote.wait(child, 0.01) is None:
        pass
    started = time.monotonic() - child.started
    assert zygote.wait(child, 300) == 0, child.output()
    return started


@pytest.mark.faults
@pytest.mark.parametrize("kind", ["local", "smb"])
def test_kill9_transfer_in_two_processes(kind, tmp_path, request):
    rng = random.Random(SEED + (kind == "smb"))
    src = tmp_path / "src"
    source = mixed_tree(src, rng, **TREE)
    destinations = Destinations(kind, tmp_path, request)
    tally, orphans, seen = Tally(), [], set()
    options = {"transfer_processes": 2}

    def started(child) -> bool:
        """Kill points count from the copy process's start (the attempt may finish its share before)."""
        if copy_processes_of(child.pid):
            seen.add(child.pid)
            return True
        return False

    with Zygote(tmp_path / "logs") as zygote:
        dst, view = destinations.make()
        execution = _launch(src, dst, tmp_path / "store", options)
        (shard,) = engine.prepare(execution)
        duration = zygote.run_to_end("transfer", execution, shard["shard"])
        started_s = _copy_process_start_s(zygote, src, destinations, tmp_path)
        assert finish_execution(execution)["Status"] == "SUCCESS"
        while tally.kills < KILLS[kind]:
            assert tally.executions < 3 * KILLS[kind], f"kills did not land: {tally}"
            dst, view = destinations.make()
            execution = _launch(src, dst, tmp_path / "store", options)
            (shard,) = engine.prepare(execution)
            kill_shard_then_retry(zygote, execution, shard["shard"], view, source,
                                  kill_delays(rng, max(duration - started_s, 0.2), 3), tally,
                                  until_started=started, after_kill=lambda child: orphans.extend(
                                      _wait_for_orphans(child.pid)))
    assert not orphans, f"copy processes outlived their killed parent: {orphans}"
    children_seen = len(seen)
    assert children_seen, "no killed attempt had started its copy process"
    assert_held(tally)
    record(Figure(
        case=f"kill9/{kind}-2-processes", group="Process kills",
        fault=f"kill -9 of the TRANSFERRING shard process running with transfer_processes=2 ({kind} destination) "
              "at seeded random moments, then a retry of the same shard",
        holds=HOLDS + "; no copy process outlives its killed parent",
        runs=tally.executions, faults_injected=tally.kills, files_checked=tally.files_checked,
        lost=len(tally.lost), corrupt=len(tally.corrupt), partial=len(tally.partial), leftovers=len(tally.leftovers),
        converge_s=tally.median_converge_s, seed=SEED,
        notes=f"({tally.attempts} attempts, {tally.finished_before_kill} done before their kill point; unkilled "
              f"shard {duration:.1f} s at {RATE >> 20} MiB/s; {children_seen} attempts seen with their copy process)"))
