"""VERIFYING catches corruption; a source file that changes during its copy is never published."""

from __future__ import annotations

import os
import threading
import time

import pytest

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.phases.transfer import ShardFailedError
from tests.in_flight import being_written


def _launch_prepare_transfer(src, dst, store, opts):
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), opts, store=str(store))
    shards = engine.prepare(ex)
    for shard in shards:
        engine.transfer(ex, shard["shard"])
    engine.finalize(ex)
    return ex


@pytest.mark.parametrize("mode", ["ONLY_FILES_TRANSFERRED", "POINT_IN_TIME_CONSISTENT"])
def test_verify_catches_same_size_same_mtime_corruption(tmp_path, make_tree, store, report_rows, mode):
    src = make_tree(tmp_path / "src", {"good.txt": "all fine", "d": {"victim.bin": b"A" * 5000, "ok.bin": b"B" * 10}})
    dst = tmp_path / "dst"
    dst.mkdir()
    ex = _launch_prepare_transfer(src, dst, store, {"VerifyMode": mode})
    victim = dst / "d" / "victim.bin"
    st = os.stat(victim)
    with open(victim, "r+b") as fh:  # flip one byte in the middle, same size
        fh.seek(2500)
        fh.write(b"Z")
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(victim).st_size == st.st_size and os.stat(victim).st_mtime_ns == st.st_mtime_ns

    vsum = engine.verify(ex)
    summary = engine.report(ex)

    assert vsum["failed"] == 1
    assert summary["Status"] == "ERROR"
    assert summary["ErrorCode"] == "VerificationFailed"
    assert "d/victim.bin" in summary["ErrorDetail"]
    assert summary["FilesFailed"] == 1
    rows = {r["path"]: r for r in report_rows(summary)}
    assert rows["d/victim.bin"]["verify_status"] == "MISMATCH" and rows["d/victim.bin"]["status"] == "FAILED"
    assert rows["d/victim.bin"]["src_checksum"] != rows["d/victim.bin"]["dst_checksum"]
    assert rows["good.txt"]["verify_status"] == "VERIFIED" and rows["good.txt"]["status"] == "SUCCESS"


def test_verify_reports_a_missing_destination_file(tmp_path, make_tree, store):
    src = make_tree(tmp_path / "src", {"a.txt": "a", "b.txt": "b"})
    dst = tmp_path / "dst"
    dst.mkdir()
    ex = _launch_prepare_transfer(src, dst, store, {})
    os.unlink(dst / "b.txt")
    engine.verify(ex)
    summary = engine.report(ex)
    assert summary["Status"] == "ERROR" and summary["ErrorCode"] == "VerificationFailed"
    assert "b.txt" in summary["ErrorDetail"] and "missing" in summary["ErrorDetail"]


def test_verify_none_does_not_catch_corruption_but_reports_success(tmp_path, make_tree, store):
    src = make_tree(tmp_path / "src", {"a.txt": "aaaa"})
    dst = tmp_path / "dst"
    dst.mkdir()
    ex = _launch_prepare_transfer(src, dst, store, {"VerifyMode": "NONE"})
    (dst / "a.txt").write_text("bbbb")
    engine.verify(ex)
    summary = engine.report(ex)
    assert summary["Status"] == "SUCCESS" and summary["FilesVerified"] == 0


def test_report_without_verify_says_incomplete(tmp_path, make_tree, store):
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    dst = tmp_path / "dst"
    dst.mkdir()
    ex = _launch_prepare_transfer(src, dst, store, {})
    summary = engine.report(ex)
    assert summary["Status"] == "ERROR" and summary["ErrorCode"] == "VerificationIncomplete"


def test_report_after_failed_prepare(tmp_path, make_tree, store):
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    dst = tmp_path / "dst"
    dst.mkdir()
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), {}, store=str(store))
    summary = engine.report(ex)
    assert summary["Status"] == "ERROR" and summary["ErrorCode"] == "PrepareFailed"


# -- a source file that changes while it is copied ---------------------------------------------------
def test_source_changed_during_copy_is_failed_and_not_published(tmp_path, make_tree, store, report_rows):
    size = 4 << 20
    src = make_tree(tmp_path / "src", {"growing.bin": b"\x01" * size, "steady.txt": "steady"})
    dst = tmp_path / "dst"
    dst.mkdir()
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), {"BytesPerSecond": 4 << 20}, store=str(store))
    shards = engine.prepare(ex)
    assert len(shards) == 1

    appended = threading.Event()
    stop = threading.Event()

    def writer():
        # Wait until the copy of growing.bin has started (bytes in the file being written: a temporary, or a
        # file without a name yet), then append to the source.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not stop.is_set():
            if being_written(dst, str(os.getpid())) > 0:
                with open(src / "growing.bin", "ab") as fh:
                    fh.write(b"appended while copying")
                appended.set()
                return
            time.sleep(0.005)

    t = threading.Thread(target=writer)
    t.start()
    try:
        with pytest.raises(ShardFailedError) as info:
            engine.transfer(ex, shards[0]["shard"])
    finally:
        stop.set()
        t.join()
    assert appended.is_set(), "the copy finished before the source could be modified; slow it down"
    assert "growing.bin" in str(info.value)

    assert not (dst / "growing.bin").exists()
    assert not [n for n in os.listdir(dst) if n.startswith(".~ds-")]
    assert (dst / "steady.txt").read_text() == "steady"
    summary = engine.report(ex)
    assert summary["Status"] == "ERROR" and summary["ErrorCode"] == "FilesFailed"
    assert summary["FilesFailed"] == 1 and "growing.bin" in summary["ErrorDetail"]
    row = next(r for r in report_rows(summary) if r["path"] == "growing.bin")
    assert row["status"] == "FAILED" and "changed during the copy" in row["error"]

    # The next execution copies the file as it is now.
    again = run_execution(str(src), str(dst), {}, store=str(store))
    assert again["Status"] == "SUCCESS", again
    assert (dst / "growing.bin").read_bytes() == (src / "growing.bin").read_bytes()


def test_source_file_rewritten_same_size_during_copy_is_failed(tmp_path, make_tree, store):
    size = 4 << 20
    src = make_tree(tmp_path / "src", {"rewritten.bin": b"\x02" * size})
    dst = tmp_path / "dst"
    dst.mkdir()
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), {"BytesPerSecond": 4 << 20}, store=str(store))
    shards = engine.prepare(ex)
    done = threading.Event()

    def writer():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if being_written(dst, str(os.getpid())) > 0:
                with open(src / "rewritten.bin", "r+b") as fh:  # same size, new bytes, new mtime
                    fh.seek(size - 10)
                    fh.write(b"\x03" * 10)
                st = os.stat(src / "rewritten.bin")
                os.utime(src / "rewritten.bin", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
                done.set()
                return
            time.sleep(0.005)

    t = threading.Thread(target=writer)
    t.start()
    with pytest.raises(ShardFailedError):
        engine.transfer(ex, shards[0]["shard"])
    t.join()
    assert done.is_set()
    assert not (dst / "rewritten.bin").exists()


def test_source_file_vanished_after_prepare(tmp_path, make_tree, store, report_rows):
    src = make_tree(tmp_path / "src", {"gone.txt": "g", "here.txt": "h"})
    dst = tmp_path / "dst"
    dst.mkdir()
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), {}, store=str(store))
    shards = engine.prepare(ex)
    os.unlink(src / "gone.txt")
    with pytest.raises(ShardFailedError, match="gone.txt"):
        engine.transfer(ex, shards[0]["shard"])
    assert (dst / "here.txt").read_text() == "h" and not (dst / "gone.txt").exists()
    summary = engine.report(ex)
    row = next(r for r in report_rows(summary) if r["path"] == "gone.txt")
    assert row["status"] == "FAILED" and "vanished" in row["error"]
