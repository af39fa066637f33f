"""Live progress of a TRANSFERRING shard: ``progress/shard-NNNNN.json`` while it runs and at its end.

Real copies between real directories; the progress file is read from another thread while a
rate-limited shard streams one big file, so bytes are seen growing before the file ends.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import pytest

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec
from airflow_datasync.phases.transfer import PermanentShardError

KEYS = {"shard", "state", "try_number", "hostname", "files_done", "files_total", "bytes_done", "bytes_total",
        "current", "bytes_per_second", "files_per_second", "eta_seconds", "started_at", "updated_at"}


def read_progress(ex, shard: int) -> dict | None:
    return ex.read_json(ex.progress_file(shard))


def one_shard(tmp_path, make_tree, store, spec: dict, options: dict | None = None):
    src = make_tree(tmp_path / "src", spec)
    dst = tmp_path / "dst"
    dst.mkdir(exist_ok=True)
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), options or {}, store=str(store))
    shards = engine.prepare(ex)
    assert len(shards) == 1
    return ex, shards[0]["shard"], src, dst


def test_bytes_grow_while_one_big_file_streams(tmp_path, make_tree, store):
    big = 8 << 20
    # 2 MiB/s: the file takes ~4 s, so the writer thread (every 2 s) snapshots it half way.
    ex, shard, _src, dst = one_shard(tmp_path, make_tree, store, {"big.bin": os.urandom(big)},
                                     {"BytesPerSecond": 2 << 20})
    outcome: dict = {}

    def copy() -> None:
        outcome["summary"] = engine.transfer(ex, shard, try_number=2)

    worker = threading.Thread(target=copy)
    worker.start()
    seen: list[dict] = []
    while worker.is_alive():
        snap = read_progress(ex, shard)
        if snap is not None and (not seen or snap != seen[-1]):
            seen.append(snap)
        worker.join(0.05)
    final = read_progress(ex, shard)

    mid = [s for s in seen if s["state"] == "RUNNING" and 0 < s["bytes_done"] < big]
    assert mid, f"no snapshot caught the file half way: {seen}"
    snap = mid[0]
    assert set(snap) == KEYS
    assert snap["files_done"] == 0 and snap["files_total"] == 1  # the file has not ended yet
    assert snap["bytes_total"] == big and snap["current"] == ["big.bin"]
    assert snap["bytes_per_second"] > 0 and snap["eta_seconds"] is not None and snap["eta_seconds"] > 0
    assert snap["try_number"] == 2 and snap["hostname"]

    assert final["state"] == "SUCCESS" and set(final) == KEYS
    assert (final["files_done"], final["bytes_done"]) == (1, big)
    assert final["current"] == [] and final["eta_seconds"] == 0.0
    assert outcome["summary"]["try_number"] == 2
    assert ex.read_json(ex.shard_file(shard, "json"))["try_number"] == 2
    assert (dst / "big.bin").stat().st_size == big


def test_failed_shard_ends_failed_and_its_retry_resumes(tmp_path, make_tree, store, caplog):
    spec = {"a.txt": b"a" * 1500, "b.txt": b"b" * 2500}
    ex, shard, src, _dst = one_shard(tmp_path, make_tree, store, spec)
    moved = src / "b.txt"
    kept = moved.read_bytes()
    moved.unlink()  # gone from the source after PREPARING: a failure a retry cannot fix, until it is back

    with pytest.raises(PermanentShardError):
        engine.transfer(ex, shard, try_number=1)
    failed = read_progress(ex, shard)
    assert failed["state"] == "FAILED" and failed["try_number"] == 1
    assert failed["files_done"] == failed["files_total"] == 2  # both entries ended, one of them failed
    assert failed["eta_seconds"] is None

    moved.write_bytes(kept)
    caplog.clear()  # only the retry's lines
    with caplog.at_level(logging.INFO, logger="airflow_datasync"):
        engine.transfer(ex, shard, try_number=2)
    retried = read_progress(ex, shard)
    assert retried["state"] == "SUCCESS" and retried["try_number"] == 2
    assert (retried["files_done"], retried["bytes_done"], retried["bytes_total"]) == (2, 4000, 4000)
    started = [r.getMessage() for r in caplog.records if "starting" in r.getMessage()]
    assert started == ["shard 0: starting, 2 entries, 4.0 kB, 1 entry (1.5 kB) already done by an earlier try"]


def test_resumed_entries_count_once_even_when_one_is_copied_again(tmp_path, make_tree, store):
    ex, shard, _src, dst = one_shard(tmp_path, make_tree, store, {"x.bin": b"x" * 3000, "y.bin": b"y" * 7000})
    engine.transfer(ex, shard)
    (dst / "y.bin").unlink()  # the journal says done, the destination disagrees: copied again

    summary = engine.transfer(ex, shard)
    again = read_progress(ex, shard)
    assert summary["resumed"] == 1 and summary["try_number"] is None
    assert (again["files_done"], again["files_total"]) == (2, 2)
    assert (again["bytes_done"], again["bytes_total"]) == (10000, 10000)
    assert (dst / "y.bin").read_bytes() == b"y" * 7000
    # Only what this attempt moved counts in its rate: y.bin, not the resumed x.bin.
    assert again["bytes_per_second"] > 0


def test_progress_file_is_json_with_the_contract_keys_for_an_empty_shard(tmp_path, make_tree, store):
    ex, shard, _src, _dst = one_shard(tmp_path, make_tree, store, {"empty": {}})
    engine.transfer(ex, shard)
    raw = Path(ex.progress_file(shard)).read_text(encoding="utf-8")
    snap = json.loads(raw)
    assert set(snap) == KEYS
    assert snap["state"] == "SUCCESS" and snap["files_done"] == snap["files_total"] == 1
    assert snap["bytes_done"] == snap["bytes_total"] == 0


def test_progress_objects_in_an_s3_manifest_store(tmp_path, make_tree, s3_server, s3, bucket):
    from tests.fixtures_servers import S3_CONN_ID

    src = make_tree(tmp_path / "src", {"a.bin": os.urandom(5000), "d": {"b.bin": os.urandom(7000)}})
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(tmp_path / "dst")), {},
                       store=f"s3://{bucket}/manifests", store_conn_id=S3_CONN_ID)
    (shard,) = [s["shard"] for s in engine.prepare(ex)]
    engine.transfer(ex, shard, try_number=1)

    key = f"manifests/datasync/{ex.execution_id}/progress/shard-{shard:05d}.json"
    body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert set(body) == KEYS and body["state"] == "SUCCESS"
    assert (body["files_done"], body["files_total"], body["bytes_done"], body["bytes_total"]) == (3, 3, 12000, 12000)
    assert read_progress(ex, shard) == body
