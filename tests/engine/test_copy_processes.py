"""TRANSFERRING in several processes (``transfer_processes``): the same copy as one process, a journal part
per process that a retry reads, one progress file, the children's logs in the task's, a child's death
failing (retryably) only what it held, and an SMB destination reached with each process's own sessions."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec
from airflow_datasync.locations import open_location
from airflow_datasync.manifest import ExecutionDir
from airflow_datasync.options import OptionsError, TaskOptions
from airflow_datasync.phases import copy_processes
from airflow_datasync.phases.transfer import ShardFailedError
from tests.faults.killing import copy_processes_of
from tests.fixtures_servers import SMB_CONN_ID

FILES = 48
FILE_BYTES = 16 << 10
#: Slow enough (each process takes its half) that the parent cannot finish the shard alone before its
#: copy process has started and asked for entries.
RATE = 128 << 10


def _tree(root: Path) -> Path:
    for i in range(FILES):
        path = root / f"d{i % 4}" / f"f{i:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(FILE_BYTES))
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _journal_paths(execution: ExecutionDir, shard: int, suffix: str) -> list[str]:
    path = Path(execution.shard_file(shard, suffix))
    if not path.exists():
        return []
    return [json.loads(line)["path"] for line in path.read_text().splitlines()]


def _launch(src: Path, dst: LocationSpec, store: Path, **options):
    execution = engine.launch(LocationSpec(str(src)), dst, {"transfer_processes": 2, "BytesPerSecond": RATE, **options},
                              store=str(store))
    (shard,) = engine.prepare(execution)
    return execution, shard["shard"]


def test_two_processes_copy_the_shard_with_a_journal_part_each(tmp_path, store, caplog):
    src = _tree(tmp_path / "src")
    dst = tmp_path / "dst"
    dst.mkdir()
    execution, shard = _launch(src, LocationSpec(str(dst)), store)
    with caplog.at_level(logging.INFO, logger="airflow_datasync"):
        summary = engine.transfer(execution, shard)
    assert (summary["entries"], summary["failed"]) == (FILES + 4, 0)
    assert _files(dst) == _files(src)
    # Each process journals what it copied; together, every entry once (the directories: the parent's).
    mine, child = _journal_paths(execution, shard, "journal"), _journal_paths(execution, shard, "journal-p1")
    assert child, "the copy process copied nothing"
    assert sorted(mine + child) == sorted({*mine, *child}) and len(mine) + len(child) == FILES + 4
    results = pq.read_table(execution.shard_file(shard, "parquet")).to_pylist()
    assert sorted(r["path"] for r in results) == sorted(mine + child)
    # One progress file, the parent's, with the child's counts merged in.
    progress = json.loads(Path(execution.progress_file(shard)).read_text())
    assert (progress["files_done"], progress["bytes_done"], progress["state"]) == (FILES + 4, FILES * FILE_BYTES, "SUCCESS")
    # The child's log lines reach the task's log, through the parent's logger.
    assert any(r.getMessage().startswith("copy process 1: pid ") for r in caplog.records)


def test_rate_limit_holds_across_the_processes(tmp_path, store):
    """BytesPerSecond is the task's: each process takes its share. (A lower bound on the duration, which no
    slowness of the machine can break: the shard moves its bytes no faster than the limit.)"""
    src = _tree(tmp_path / "src")
    dst = tmp_path / "dst"
    dst.mkdir()
    execution, shard = _launch(src, LocationSpec(str(dst)), store)
    started = time.monotonic()
    engine.transfer(execution, shard)
    elapsed = time.monotonic() - started
    # Each process may send its first file before its bucket empties.
    assert elapsed >= (FILES - 2) * FILE_BYTES / RATE
    assert _journal_paths(execution, shard, "journal-p1")


def test_a_dead_copy_process_fails_what_it_held_and_the_retry_converges(tmp_path, store):
    src = _tree(tmp_path / "src")
    dst = tmp_path / "dst"
    dst.mkdir()
    execution, shard = _launch(src, LocationSpec(str(dst)), store, BytesPerSecond=64 << 10)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            engine.transfer(execution, shard)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while not _journal_paths(execution, shard, "journal-p1") and time.monotonic() < deadline:
        time.sleep(0.05)
    (child,) = copy_processes_of(os.getpid())
    os.kill(child, signal.SIGKILL)
    thread.join(300)
    # Retryable: a ShardFailedError, not a PermanentShardError.
    assert len(raised) == 1 and type(raised[0]) is ShardFailedError, raised
    results = pq.read_table(execution.shard_file(shard, "parquet")).to_pylist()
    lost = [r for r in results if r["status"] == "FAILED"]
    assert lost and all("its copy process exited (code -9)" in r["error"] for r in lost)
    assert len(results) == FILES + 4  # every entry has a result: none silently dropped
    # The retry (one process, unthrottled) skips what either journal part holds and copies the rest.
    journaled = set(_journal_paths(execution, shard, "journal")) | set(_journal_paths(execution, shard, "journal-p1"))
    summary = engine.transfer(execution, shard, bytes_per_second=-1)
    assert summary["failed"] == 0 and summary["resumed"] == len(journaled)
    assert _files(dst) == _files(src)
    assert not [p for p in dst.rglob(".~ds-*")]


def test_smb_destination_in_two_processes(tmp_path, store, smb_folder):
    src = _tree(tmp_path / "src")
    folder = smb_folder()
    execution, shard = _launch(src, LocationSpec(folder.uri, SMB_CONN_ID), store)
    summary = engine.transfer(execution, shard)
    assert (summary["entries"], summary["failed"]) == (FILES + 4, 0)
    assert _journal_paths(execution, shard, "journal-p1")
    engine.finalize(execution)
    engine.verify(execution)
    assert engine.report(execution)["Status"] == "SUCCESS"
    assert _files(folder.disk) == _files(src)


def test_transfer_processes_option():
    assert TaskOptions().transfer_processes == "auto"
    assert TaskOptions.from_dict({"transfer_processes": 3}).transfer_processes == 3
    for bad in (0, -1, "two", True, 1.5):
        with pytest.raises(OptionsError, match="transfer_processes"):
            TaskOptions.from_dict({"transfer_processes": bad})


def test_auto_splits_only_big_shards_whose_copies_cost_interpreter_time(tmp_path, monkeypatch):
    local = open_location(str(tmp_path))
    smb = open_location("smb://127.0.0.1/data/x", "any")  # not connected: only its capabilities are read
    many = copy_processes.SPLIT_MIN_ENTRIES
    monkeypatch.setattr(copy_processes, "usable_cpus", lambda: 2)
    assert copy_processes.process_count("auto", many, local, smb) == 2
    assert copy_processes.process_count("auto", many - 1, local, smb) == 1
    assert copy_processes.process_count("auto", many * 10, local, local) == 1  # kernel-bound: threads suffice
    assert copy_processes.process_count(3, 10, local, local) == 3  # as set
    monkeypatch.setattr(copy_processes, "usable_cpus", lambda: 1)
    assert copy_processes.process_count("auto", many, local, smb) == 1
    monkeypatch.setattr(copy_processes, "usable_cpus", lambda: 64)
    assert copy_processes.process_count("auto", many, smb, local) == copy_processes.MAX_AUTO_PROCESSES


def test_mapped_shards_under_dag_test_in_two_processes(airflow_db, dags_folder, tmp_path):
    """Airflow runs the mapped shard tasks (``dag.test()``), each copying in two processes."""
    from tests.airflow.test_sync_dag import latest_report, load_dag, states

    dag = load_dag(dags_folder, "datasync_test_dags.py", "datasync_test_sync")
    src = _tree(tmp_path / "src")
    dst = tmp_path / "dst"
    dst.mkdir()
    run = dag.test(run_conf={"source": str(src), "destination": str(dst), "options": {
        "files_per_shard": 26, "transfer_processes": 2, "BytesPerSecond": RATE}})
    st = states(run)
    assert str(run.state) == "success", st
    assert len(st["sync.transfer"]) == 2 and set(st["sync.transfer"]) == {"success"}
    assert _files(dst) == _files(src)
    report = latest_report(airflow_db / "executions", "test-sync")
    assert report["Status"] == "SUCCESS" and report["FilesVerified"] == FILES
    execution = ExecutionDir(report["ExecutionUri"])
    assert all(_journal_paths(execution, shard, "journal-p1") for shard in range(2))


def test_no_more_processes_than_entries(tmp_path, store):
    src = tmp_path / "src"
    src.mkdir()
    (src / "only.txt").write_bytes(b"one entry")
    dst = tmp_path / "dst"
    dst.mkdir()
    execution, shard = _launch(src, LocationSpec(str(dst)), store, BytesPerSecond=-1)
    assert engine.transfer(execution, shard)["succeeded"] == 1
    assert not Path(execution.shard_file(shard, "journal-p1")).exists()
    assert (dst / "only.txt").read_bytes() == b"one entry"
