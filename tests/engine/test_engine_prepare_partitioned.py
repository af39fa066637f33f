"""PREPARING a large tree in hash partitions (phases.prepare.PARTITION_ROWS lowered): the same plan as in memory.

Each test prepares the same two real trees twice, once in memory and once in partitions of 50 rows, and
compares the manifests row by row; shards are checked for bounds, contiguity and their descriptors.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_datasync.engine import LocationSpec, launch, prepare, run_execution
from airflow_datasync.locations.local import LocalLocation
from airflow_datasync.phases import partition
from airflow_datasync.phases import prepare as prepare_phase

T0 = 1_650_000_000_000_000_000
OPTIONS = {"PreserveDeletedFiles": "REMOVE", "Excludes": "*.tmp|/skipme", "files_per_shard": 7}
TIMING = ("started_at", "ended_at", "duration_ms")
SHARDING = ("shard_count", "files_per_shard", "bytes_per_shard")
WORK = ("copy", "mkdir", "meta")


def build_source(root: Path, *, odd: bool = False) -> Path:
    """~280 entries in nested directories; ``odd`` adds entries planned as errors and a FIFO (skipped)."""
    for t in range(6):
        for s in range(3):
            d = root / f"t{t}" / f"s{s}"
            (d / "deep").mkdir(parents=True)
            for i in range(8):
                (d / f"f{i}.txt").write_bytes(b"x" * (t * 100 + s * 10 + i))
            for i in range(4):
                (d / "deep" / f"g{i}.bin").write_bytes(bytes([i]) * (i + 1) * 50)
            (d / "note.tmp").write_text("excluded")
    (root / "skipme").mkdir()
    (root / "skipme" / "a.txt").write_text("excluded by /skipme")
    (root / "top.txt").write_text("top")
    if odd:
        for bad in (b"t0/s1/bad\xff", b"t2/bad\xfe.txt", b"zz\xff"):
            with open(os.fsencode(root) + b"/" + bad, "wb") as fh:
                fh.write(b"not UTF-8")
        os.mkfifo(root / "t1" / "fifo")
    for i, p in enumerate(sorted(root.rglob("*"), key=lambda p: -len(p.parts))):
        os.utime(p, ns=(T0 + i * 1_000_000_007, T0 + i * 1_000_000_007), follow_symlinks=False)
    return root


def build_destination(src: Path, dst: Path) -> Path:
    """A copy of ``src`` that went stale: changed, missing, extra and excluded entries."""
    # Not the FIFO nor the names that are not UTF-8 (read back as surrogates): those stay source-only.
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("fifo", "*\udcff*", "*\udcfe*"))
    with open(dst / "t0" / "s0" / "f1.txt", "ab") as fh:
        fh.write(b"grown")  # size changed
    os.utime(dst / "t1" / "s1" / "f2.txt", ns=(T0, T0))  # mtime changed
    os.chmod(dst / "t2" / "s2" / "f3.txt", 0o600)  # metadata only
    shutil.rmtree(dst / "t3")  # new directories and files
    os.unlink(dst / "t4" / "s0" / "deep" / "g0.bin")
    (dst / "t5" / "old.txt").write_text("only at the destination")
    (dst / "gone" / "x").mkdir(parents=True)
    (dst / "gone" / "x" / "y.txt").write_text("deleted with its directories")
    (dst / "t5" / "s0" / "keep.tmp").write_text("excluded: kept")
    (dst / "skipme" / "b.txt").write_text("excluded: kept")
    return dst


@pytest.fixture
def trees(tmp_path):
    src = build_source(tmp_path / "src", odd=True)
    return src, build_destination(src, tmp_path / "dst")


def prepared(src: Path, dst: Path, store: Path, options: dict, max_shards: int | None = None):
    execution = launch(LocationSpec(str(src)), LocationSpec(str(dst)), options, task_name="part", store=str(store))
    shards = prepare(execution, max_shards=max_shards)
    return execution, shards, pq.read_table(execution.manifest), execution.read_json(execution.prepare)


def same_record(a: dict, b: dict, ignore: tuple[str, ...] = TIMING) -> bool:
    return {k: v for k, v in a.items() if k not in ignore} == {k: v for k, v in b.items() if k not in ignore}


def by_path(manifest: pa.Table) -> dict[str, dict]:
    # atime_ns: listing a directory may update its access time between the two scans.
    return {r["path"]: {k: v for k, v in r.items() if k not in ("shard", "atime_ns")} for r in manifest.to_pylist()}


def check_shards(execution, shards: list[dict], manifest: pa.Table, record: dict) -> None:
    """Every work row in exactly one shard, shards contiguous and ascending after the unsharded rows,
    descriptors as prepare_phase._shard_descriptors computes them from the written manifest."""
    rows = manifest.to_pylist()
    assert all((r["shard"] >= 0) == (r["action"] in WORK) for r in rows)
    order = [r["shard"] for r in rows]
    first = next((i for i, s in enumerate(order) if s >= 0), len(order))
    assert set(order[:first]) <= {-1} and -1 not in order[first:]
    assert order[first:] == sorted(order[first:])
    assert shards == prepare_phase._shard_descriptors(execution, manifest)
    assert [s["shard"] for s in shards] == list(range(record["shard_count"]))
    assert sum(s["files"] for s in shards) == record["EstimatedFilesToTransfer"]
    assert all(s["files"] <= record["files_per_shard"] for s in shards)
    for s in shards:  # what a TRANSFERRING task reads for its shard
        rows_k = execution.read_table(execution.manifest, filters=[("shard", "=", s["shard"])])
        assert rows_k.num_rows == s["files"]
    errors = [r["path"] for r in rows if r["action"] == "error"]
    assert errors == sorted(errors)  # the report quotes the first ones


@pytest.mark.parametrize("options", [
    OPTIONS,
    {**OPTIONS, "bytes_per_shard": 500},
    {"Includes": "/t1|/t3|/top.txt", "PosixPermissions": "NONE", "files_per_shard": 3},
])
def test_partitioned_plan_equals_in_memory_plan(trees, store, monkeypatch, caplog, options):
    src, dst = trees
    whole_ex, whole_shards, whole, whole_record = prepared(src, dst, store, options)
    monkeypatch.setattr(prepare_phase, "PARTITION_ROWS", 50)
    with caplog.at_level(logging.INFO, logger="airflow_datasync"):
        ex, shards, parted, record = prepared(src, dst, store, options)
    assert "planning in 6 partitions" in caplog.text  # 283 source entries / 50

    assert by_path(parted) == by_path(whole)
    actions = {r["action"] for r in parted.to_pylist()}
    if "Includes" not in options:
        assert {"copy", "mkdir", "meta", "skip", "delete", "error"} <= actions
    assert same_record(record, whole_record, TIMING + SHARDING)
    check_shards(ex, shards, parted, record)
    check_shards(whole_ex, whole_shards, whole, whole_record)
    if "bytes_per_shard" in options:
        big = {s["shard"] for s in shards if s["files"] == 1}
        assert all(s["bytes"] <= options["bytes_per_shard"] for s in shards if s["shard"] not in big)
    else:  # bounded by files only: as many shards as one whole plan makes
        assert same_record(record, whole_record)
    # The partition files are gone; the execution holds only what it holds after an in-memory plan.
    assert sorted(os.listdir(ex.root)) == sorted(os.listdir(whole_ex.root))


def test_partitioned_shards_fit_max_shards(trees, store, monkeypatch):
    """The bounds double until the shard count over all partitions fits, as they do for one whole plan."""
    src, dst = trees
    options = {**OPTIONS, "files_per_shard": 1}
    _ex, _shards, whole, whole_record = prepared(src, dst, store, options, max_shards=3)
    monkeypatch.setattr(prepare_phase, "PARTITION_ROWS", 50)
    ex, shards, parted, record = prepared(src, dst, store, options, max_shards=3)
    assert by_path(parted) == by_path(whole)
    assert record["shard_count"] == whole_record["shard_count"] == len(shards) <= 3
    assert record["files_per_shard"] == whole_record["files_per_shard"] > 1
    check_shards(ex, shards, parted, record)


def test_partitioned_plan_for_a_case_insensitive_destination(tmp_path, store, monkeypatch):
    """Names that differ only in case are related across the tree (``Data/x`` and ``data/``): partitions
    by top-level name keep them together, so the errors and renames are those of the whole plan."""
    src = build_source(tmp_path / "src")
    for name in ("Data/x.txt", "data/y.txt", "data/sub/z.txt", "README", "readme", "t0/s0/Deep/h.txt", "notes.txt"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(name)
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "NOTES.txt").write_text("notes.txt")  # the same entry, spelled otherwise
    (dst / "T1").mkdir()  # the same directory as the source's t1
    opened = LocalLocation.__init__

    def case_insensitive(self, *args, **kwargs):  # capabilities are declared per instance
        opened(self, *args, **kwargs)
        self.capabilities = dataclasses.replace(self.capabilities, case_insensitive=True)

    monkeypatch.setattr(LocalLocation, "__init__", case_insensitive)
    _ex, _shards, whole, whole_record = prepared(src, dst, store, OPTIONS)
    monkeypatch.setattr(prepare_phase, "PARTITION_ROWS", 50)
    ex, shards, parted, record = prepared(src, dst, store, OPTIONS)
    assert by_path(parted) == by_path(whole)
    rows = by_path(parted)
    assert rows["data/sub/z.txt"]["action"] == rows["Data/x.txt"]["action"] == rows["readme"]["action"] == "error"
    assert rows["t0/s0/Deep/h.txt"]["action"] == "error" and "'t0/s0/deep'" in rows["t0/s0/Deep/h.txt"]["reason"]
    # Compared with the destination's spelling, so neither copied as new nor deleted (REMOVE).
    assert rows["notes.txt"]["dst_type"] == "file" and rows["t1"]["dst_type"] == "dir"
    assert "NOTES.txt" not in rows and "T1" not in rows
    assert same_record(record, whole_record)
    check_shards(ex, shards, parted, record)


def test_case_insensitive_partition_key_is_the_lower_cased_top_name():
    paths = pa.array(["Data", "data/x", "DATA/y/z", "data", "dAtA/Other/deep"])
    assert len(set(partition._partition_of(paths, 97, by_top=True))) == 1
    spread = partition._partition_of(pa.array([f"d{i}/x" for i in range(200)]), 4, by_top=True)
    assert set(spread) == {0, 1, 2, 3}


def test_run_execution_partitioned_copies_then_transfers_nothing(tmp_path, store, monkeypatch, snapshot):
    src = build_source(tmp_path / "src")
    dst = build_destination(src, tmp_path / "dst")
    before = snapshot(dst)
    monkeypatch.setattr(prepare_phase, "PARTITION_ROWS", 50)

    summary = run_execution(str(src), str(dst), OPTIONS, store=str(store), task_name="part")
    assert summary["Status"] == "SUCCESS", summary
    assert summary["ShardCount"] == summary["ShardsCompleted"] > 1
    assert summary["FilesDeleted"] == 4  # t5/old.txt, gone, gone/x, gone/x/y.txt

    def excluded(path: str) -> bool:
        return path.endswith(".tmp") or path == "skipme" or path.startswith("skipme/")
    expected = {p: v for p, v in snapshot(src).items() if not excluded(p)}
    expected.update({p: v for p, v in before.items() if excluded(p)})
    assert snapshot(dst) == expected

    again = run_execution(str(src), str(dst), OPTIONS, store=str(store), task_name="part")
    assert again["Status"] == "SUCCESS", again
    assert again["FilesTransferred"] == again["EstimatedFilesToTransfer"] == again["ShardCount"] == 0
    assert again["FilesDeleted"] == 0 and again["BytesWritten"] == 0
    assert snapshot(dst) == expected


def test_a_retried_prepare_removes_scratch_left_by_a_killed_attempt(trees, store, monkeypatch):
    """A PREPARING killed half way leaves ``prepare.tmp-<pid>-…`` behind; the retry removes it (its process
    is gone) but never the scratch of a process that is still running."""
    src, dst = trees
    monkeypatch.setattr(prepare_phase, "PARTITION_ROWS", 50)
    execution = launch(LocationSpec(str(src)), LocationSpec(str(dst)), OPTIONS, task_name="part", store=str(store))
    gone = 2 ** 22 + 12345  # above Linux's default pid_max: no such process
    with pytest.raises(ProcessLookupError):
        os.kill(gone, 0)
    stale = Path(execution.file(f"prepare.tmp-{gone}-abcdef"))
    alive = Path(execution.file("prepare.tmp-1-abcdef"))  # pid 1 runs
    for d in (stale, alive):
        d.mkdir()
        (d / "source-00000.arrow").write_bytes(b"half written")
    prepare(execution)
    assert not stale.exists() and alive.exists()
    assert [p.name for p in Path(execution.file("")).iterdir() if ".tmp-" in p.name] == [alive.name]
