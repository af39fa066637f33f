"""plan.ShardCutter, the streaming shard cut of a partitioned plan, cuts exactly as the whole-array greedy
rule does (a shard takes rows while under ``fps`` rows and ``bps`` bytes; an oversized row alone),
however the rows are split into chunks; fit_shard_bounds doubles the bounds as cut_shards does."""

from __future__ import annotations

import numpy as np

from airflow_datasync.plan import ShardCutter, cut_shards, fit_shard_bounds


def greedy(sizes: np.ndarray, fps: int, bps: int) -> list[int]:
    ids, shard, files, nbytes = [], 0, 0, 0
    for size in sizes:
        if files and (files >= fps or nbytes + size > bps):
            shard, files, nbytes = shard + 1, 0, 0
        ids.append(shard)
        files, nbytes = files + 1, nbytes + int(size)
    return ids


def test_chunked_cut_equals_the_greedy_rule():
    rng = np.random.default_rng(15)
    for _ in range(2000):
        n = int(rng.integers(0, 120))
        sizes = rng.integers(0, 50, n) * (rng.random(n) < 0.8)
        fps, bps = int(rng.integers(1, 12)), int(rng.integers(0, 150))
        cutter = ShardCutter(fps, bps)
        cuts = sorted(rng.integers(0, n + 1, int(rng.integers(0, 6)))) if n else []
        got = [int(i) for chunk in np.split(sizes, cuts) for i in cutter.cut(chunk)]
        assert got == greedy(sizes, fps, bps), (sizes.tolist(), fps, bps, cuts)
        assert cutter.count == (got[-1] + 1 if got else 0)


def test_fit_shard_bounds_doubles_like_cut_shards():
    sizes = np.full(10_000, 10, dtype=np.int64)
    chunks = lambda: iter(np.array_split(sizes, 7))  # noqa: E731
    ids, whole = cut_shards(sizes, 100, 1 << 30, 24)
    assert fit_shard_bounds(chunks, 100, 1 << 30, 24) == whole
    assert whole.count <= 24 and whole.files_per_shard == 800 and int(ids[-1]) + 1 == whole.count
