"""A shard killed with SIGKILL half way leaves no partial file at a final path, and a retry converges,
resuming the entries that the killed attempt had finished."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec
from tests.in_flight import being_written

BIG = 64 << 20
RATE = 32 << 20  # bytes/s in the killed attempt: the big file takes ~2 s

SCRIPT = """
import sys
from airflow_datasync import engine
from airflow_datasync.manifest import ExecutionDir
engine.transfer(ExecutionDir(sys.argv[1]), int(sys.argv[2]), bytes_per_second=int(sys.argv[3]))
print("FINISHED", flush=True)
"""


def test_sigkill_mid_copy_then_retry_converges(tmp_path, make_tree, store, python_exe, python_env, report_rows):
    small = {f"s{i}.txt": f"small file {i}\n" * (i + 1) for i in range(5)}
    src = make_tree(tmp_path / "src", {"big.bin": os.urandom(BIG), "sub": small})
    dst = tmp_path / "dst"
    dst.mkdir()
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), {}, store=str(store))
    shards = engine.prepare(ex)
    assert len(shards) == 1 and shards[0]["files"] == 7  # big.bin, sub, sub/s0..s4
    shard = shards[0]["shard"]
    journal = ex.shard_file(shard, "journal")

    proc = subprocess.Popen([python_exe, "-c", SCRIPT, ex.uri, str(shard), str(RATE)], env=python_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed_at = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            done = Path(journal).read_text(encoding="utf-8").count("\n") if os.path.exists(journal) else 0
            in_flight = being_written(dst, str(proc.pid))
            if done >= 6 and in_flight >= BIG // 4:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = in_flight
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and killed_at is None:
            proc.kill()
        out, err = proc.communicate(timeout=30)
    assert killed_at is not None, f"could not kill the copy half way: rc={proc.returncode} out={out!r} err={err[-2000:]!r}"
    assert proc.returncode == -signal.SIGKILL
    assert killed_at < BIG

    # Nothing partial at a final path: the big file is absent; its bytes were in a file without a name (gone
    # with the killed process) or, where the file system cannot make one, under our temporary name.
    assert not (dst / "big.bin").exists()
    leftovers = [n for n in os.listdir(dst) if n not in ("sub",)]
    assert all(n.startswith(".~ds-") for n in leftovers), leftovers
    for p in dst.rglob("*"):
        if p.is_file() and not p.name.startswith(".~ds-"):
            rel = p.relative_to(dst)
            assert p.read_bytes() == (src / rel).read_bytes(), f"{rel} is partial"
    # The killed attempt wrote no shard results.
    assert not os.path.exists(ex.shard_file(shard, "parquet"))

    # Retry in-process without a rate limit: converges and resumes what was finished.
    summary = engine.transfer(ex, shard, bytes_per_second=-1)
    assert summary["failed"] == 0
    assert summary["resumed"] == 6, summary  # sub and sub/s0..s4 were done before the kill
    assert summary["bytes_written"] == BIG
    assert (dst / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    for name, text in small.items():
        assert (dst / "sub" / name).read_text() == text
    assert not [p for p in dst.rglob(".~ds-*")]
    rows = {r["path"]: r for r in pq.read_table(ex.shard_file(shard, "parquet")).to_pylist()}
    assert not rows["big.bin"]["resumed"] and all(rows[f"sub/{n}"]["resumed"] for n in small)

    engine.finalize(ex)
    engine.verify(ex)
    report = engine.report(ex)
    assert report["Status"] == "SUCCESS", report
    assert report["FilesResumed"] == 6
    assert report["FilesTransferred"] == 7
    assert report["FilesVerified"] == 6  # regular files re-read at the destination
    assert {r["path"] for r in report_rows(report) if r["verify_status"] == "VERIFIED"} == {"big.bin"} | {f"sub/{n}" for n in small}


def test_resumed_entry_is_recopied_if_destination_changed(tmp_path, make_tree, store):
    """The journal is trusted only while the destination still matches it."""
    src = make_tree(tmp_path / "src", {"a.txt": "aaaa", "b.txt": "bbbb"})
    dst = tmp_path / "dst"
    dst.mkdir()
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), {}, store=str(store))
    shards = engine.prepare(ex)
    engine.transfer(ex, shards[0]["shard"])
    (dst / "a.txt").write_text("tampered, longer")
    again = engine.transfer(ex, shards[0]["shard"])
    assert again["resumed"] == 1 and again["bytes_written"] == 4
    assert (dst / "a.txt").read_text() == "aaaa"
