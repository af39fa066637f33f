"""PREPARING's memory is flat in the entry count (issue 15): LAUNCHING + PREPARING + shard cutting of a
generated source (bench/synthetic.py) into an empty folder, in a child process whose peak RSS its rusage
gives (bench/measure.py). Memory, never time, is asserted."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from bench.measure import measure
from tests.engine.conftest import REPO_ROOT

GiB = 2**30
#: How much more a larger count may take at the peak: the plan holds one partition (and a batch of the
#: listing) at a time, so what grows with the count is only per-shard and per-row-group bookkeeping.
MARGIN = 64 * 2**20


def prepare_peak(tmp_path, files: int) -> tuple[int, dict]:
    """Peak RSS (bytes) of a child running LAUNCHING + PREPARING of ``files`` synthetic files, and prepare.json."""
    work = tmp_path / f"n{files}"
    (work / "dst").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    m = measure([sys.executable, "-m", "bench.prepare_only", f"synthetic://{files}?dirs=100", str(work / "dst"),
                 "--store", str(work / "store")], env, work / "log.txt", cwd=REPO_ROOT)
    log = Path(m.log).read_text()
    assert m.ok, log[-3000:]
    return m.max_rss, json.loads(log.strip().splitlines()[-1])


def test_peak_memory_of_1m_entries_is_that_of_400k(tmp_path):
    small, _ = prepare_peak(tmp_path, 400_000)   # 2 partitions of the plan
    large, record = prepare_peak(tmp_path, 1_000_000)  # 6 partitions
    assert record["source_entries"] == 1_000_100 and record["shards_returned"] == record["shard_count"] == 101
    assert large < GiB
    assert large - small < MARGIN, (small / 2**20, large / 2**20)


@pytest.mark.slow
def test_peak_memory_of_10m_entries_stays_under_a_gib_and_that_of_1m(tmp_path):
    small, _ = prepare_peak(tmp_path, 1_000_000)
    large, record = prepare_peak(tmp_path, 10_000_000)
    assert record["source_entries"] == 10_000_100 and record["shard_count"] <= 1024
    assert large < GiB
    assert large - small < MARGIN, (small / 2**20, large / 2**20)
