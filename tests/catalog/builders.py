"""Executions for the catalog, CLI and API tests, made by the real engine (plus the few files a shard in
progress leaves, for a running one) and a large synthetic report.parquet for paging."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec
from airflow_datasync.manifest import ROW_GROUP_SIZE, ExecutionDir, utcnow
from airflow_datasync.phases.report import REPORT_COLUMNS


def make_tree(root: Path, files: int = 12) -> Path:
    for i in range(files):
        path = root / f"dir{i % 3}" / f"file-{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(100 + i * 10))
    (root / "zero.bin").write_bytes(b"")
    return root


def run_sync(src: Path | str, dst: Path | str, store: Path | str, *, task_name: str = "catalog-test",
             airflow: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
             src_conn_id: str | None = None, dst_conn_id: str | None = None,
             store_conn_id: str | None = None) -> ExecutionDir:
    """A whole execution through the engine's phases, as the operators run them (shard failures end up in
    the report, as with ``trigger_rule="all_done"``)."""
    ex = engine.launch(LocationSpec(str(src), src_conn_id), LocationSpec(str(dst), dst_conn_id), options or {},
                       task_name=task_name, store=str(store), store_conn_id=store_conn_id, airflow=airflow)
    shards = engine.prepare(ex)
    ok = True
    for shard in shards:
        try:
            engine.transfer(ex, shard["shard"])
        except Exception:
            ok = False
    if ok:
        engine.finalize(ex)
        engine.verify(ex)
    engine.report(ex)
    return ex


def run_with_failed_file(tmp: Path, store: Path | str, **kwargs: Any) -> ExecutionDir:
    """An execution whose ``zero.bin`` fails: the destination has a directory in its way."""
    src, dst = make_tree(tmp / "src-failing"), tmp / "dst-failing"
    (dst / "zero.bin").mkdir(parents=True)
    return run_sync(src, dst, store, **kwargs)


def start_running(tmp: Path, store: Path | str, *, task_name: str = "catalog-test",
                  airflow: dict[str, Any] | None = None) -> ExecutionDir:
    """An execution caught while TRANSFERRING: launched and prepared by the engine, shard 0 done, shard 1
    copying (the progress file a running shard rewrites), no finalize, no report."""
    src = make_tree(tmp / "src-running", files=20)
    dst = tmp / "dst-running"
    dst.mkdir()
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), {"files_per_shard": 10},
                       task_name=task_name, store=str(store), airflow=airflow)
    shards = engine.prepare(ex)
    assert len(shards) >= 2, shards
    engine.transfer(ex, shards[0]["shard"])
    running = shards[1]
    os.makedirs(ex.file("progress"), exist_ok=True)
    Path(ex.file(f"progress/shard-{running['shard']:05d}.json")).write_text(json.dumps({
        "shard": running["shard"], "state": "RUNNING", "try_number": 2, "hostname": socket.gethostname(),
        "files_done": 3, "files_total": running["files"], "bytes_done": 300, "bytes_total": running["bytes"],
        "current": ["dir1/file-4.txt"], "bytes_per_second": 100.0, "files_per_second": 1.0, "eta_seconds": 7.0,
        "started_at": utcnow(), "updated_at": utcnow()}))
    return ex


def write_big_report(ex: ExecutionDir, rows: int, failed_every: int = 997) -> pa.Table:
    """A report.parquet of ``rows`` rows with REPORT_COLUMNS (paths sorted, as build_report writes them),
    one failed row in every ``failed_every``; returns the table for reference answers."""
    i = np.arange(rows)
    paths = pa.array(sorted(f"d{n % 10}/f{n:07d}.bin" for n in range(rows)))
    failed = (i % failed_every) == 5
    action = np.where(i % 3 == 0, "skip", "copy")
    status = np.where(failed, "FAILED", np.where(action == "skip", "SKIPPED", "SUCCESS"))
    table = pa.table({
        "path": paths, "type": pa.array(["file"] * rows), "size": pa.array(i * 7, pa.int64()),
        "action": pa.array(action), "reason": pa.array([None] * rows, pa.string()),
        "shard": pa.array(i % 16, pa.int32()), "status": pa.array(status),
        "bytes_written": pa.array(np.where(action == "copy", i * 7, 0), pa.int64()),
        "checksum_algo": pa.array([None] * rows, pa.string()), "src_checksum": pa.array([None] * rows, pa.string()),
        "dst_checksum": pa.array([None] * rows, pa.string()), "verify_status": pa.array([None] * rows, pa.string()),
        "error": pa.array([f"error {n}" if f else None for n, f in zip(i.tolist(), failed.tolist())], pa.string()),
        "warning": pa.array([None] * rows, pa.string()),
    }).select(REPORT_COLUMNS)
    pq.write_table(table, ex.report_rows, row_group_size=ROW_GROUP_SIZE, compression="zstd")
    return table
