"""Leftovers of killed copies (issue 13, defects 2 and 3): a real shard process killed with SIGKILL half
way through a big file leaves its temporary (or unfinished upload); the retry of the shard, or else the
next execution over the destination, removes it, and never what a live copy is still writing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec
from airflow_datasync.locations.base import MAX_NAME_BYTES, TEMP_PREFIX, temp_name, temp_tag
from airflow_datasync.phases.transfer import ShardFailedError
from tests.faults.figures import Figure, record
from tests.faults.leftovers_kill import (
    PRELUDE,
    Dest,
    destination,
    kill_when,
    python_env,
    write_tree,
)
from tests.in_flight import unnamed_in_flight

BIG = 24 << 20
RATE = 8 << 20  # bytes/s in the killed try: the big file takes ~3 s


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{TEMP_PREFIX}*")]


def _tree(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    files = {"big.bin": os.urandom(BIG), **{f"sub/s{i}.txt": b"small %d\n" % i * (i + 1) for i in range(4)}}
    return write_tree(tmp_path / "src", files), files


@pytest.fixture(params=["local", pytest.param("smb", marks=pytest.mark.faults),
                        pytest.param("s3", marks=pytest.mark.faults), pytest.param("azure", marks=pytest.mark.faults)])
def dest(request, tmp_path) -> Dest:
    """An empty destination of each kind, seen from outside the engine."""
    return destination(request, request.param, tmp_path)


@pytest.fixture(params=["local", pytest.param("smb", marks=pytest.mark.faults)])
def fs_dest(request, tmp_path) -> Dest:
    """An empty destination folder of each kind that writes temporaries, seen from its disk."""
    return destination(request, request.param, tmp_path)


#: A copy thread per file of :func:`_tree`: the small files start with the big one and are done long before
#: it is a quarter through, so the kill leaves exactly one temporary (with fewer threads than files, a
#: small file could wait for its turn behind the rate limit and be caught half way too).
ALL_AT_ONCE = {"concurrency": 5}


def _kill_mid_big_file(ex, dst: Dest) -> float:
    return kill_when(ex.uri, 0, RATE, lambda: dst.in_flight() >= BIG // 4, named_temporaries=dst.named_temporaries)


def test_temporary_names_say_whose_they_are_and_fit_in_255_bytes():
    long = "é" * 200 + ".bin"  # 404 bytes
    for name in ("a.txt", long, "x" * 255):
        tmp = temp_name(name, "0badcafe-12")
        assert tmp.startswith(TEMP_PREFIX) and len(tmp.encode()) <= MAX_NAME_BYTES
        assert temp_tag(tmp) == "0badcafe-12"
    assert temp_name("a.txt", "0badcafe-1") != temp_name("b.txt", "0badcafe-1")
    assert temp_tag(".~ds-0badcafe-3-0000abcd") == "0badcafe-3"  # named before issue 13
    assert temp_tag(".~ds-probe-123") is None and temp_tag("user.~ds-0badcafe-3-0000abcd") is None


def test_retry_of_a_killed_shard_removes_its_temporary(tmp_path, dest):
    src, files = _tree(tmp_path)
    store = tmp_path / "store"
    ex = engine.launch(LocationSpec(str(src)), dest.spec(), ALL_AT_ONCE, store=str(store))
    assert len(engine.prepare(ex)) == 1
    killed = _kill_mid_big_file(ex, dest)
    assert len(dest.leftovers()) == 1 and dest.read("big.bin") is None
    # The file is gone from the source before the retry: the retry does not write it again, so only the
    # clean-up at its start can remove what the killed try left.
    (src / "big.bin").unlink()
    with pytest.raises(ShardFailedError, match="big.bin"):
        engine.transfer(ex, 0)
    assert dest.leftovers() == []
    assert dest.read("big.bin") is None
    for rel in files:
        if rel != "big.bin":
            assert dest.read(rel) == files[rel]
    summary = ex.read_json(ex.shard_file(0, "json"))
    assert summary["leftovers_removed"] == 1
    if dest.leaves == "temporaries":  # an aborted upload's parts are not counted (they would cost a request)
        assert summary["leftover_bytes_removed"] >= BIG // 4
    record(Figure(case=f"leftovers/retry-{dest.kind}", group="Process kills",
                  fault=f"kill -9 of the shard process mid-copy of a 24 MiB file ({dest.kind} destination), the file "
                        "then deleted at the source, then a retry of the shard",
                  holds=f"the retry removes the killed try's {'unfinished upload' if dest.leaves == 'uploads' else 'temporary'} "
                        "at its start; no partial file at a final name",
                  runs=1, faults_injected=1, files_checked=len(files), leftovers=0,
                  converge_s=round(time.monotonic() - killed, 2)))


def test_a_killed_unnamed_file_leaves_nothing_at_a_local_destination(tmp_path):
    """Where the file system creates files without a name (O_TMPFILE: ext4, XFS, Btrfs, tmpfs), a copy killed
    half way through a file leaves no entry at all: the file had no name, and the kernel frees it with the
    killed process's descriptors. The retry has nothing to clean and copies everything."""
    src, files = _tree(tmp_path)
    dst = tmp_path / "dst"
    dst.mkdir()
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), {}, store=str(tmp_path / "store"))
    engine.prepare(ex)
    killed = kill_when(ex.uri, 0, RATE, lambda: unnamed_in_flight(dst) >= BIG // 4)
    assert _temps(dst) == [] and not (dst / "big.bin").exists()
    summary = engine.transfer(ex, 0)
    assert summary["leftovers_removed"] == 0 and summary["failed"] == 0
    for rel, data in files.items():
        assert (dst / rel).read_bytes() == data
    assert _temps(dst) == []
    record(Figure(case="leftovers/unnamed-local", group="Process kills",
                  fault="kill -9 of the shard process mid-copy of a 24 MiB file (local destination, files created "
                        "without a name), then a retry of the shard",
                  holds="nothing at the destination after the kill (no temporary, no partial file at a final "
                        "name); the retry copies every file",
                  runs=1, faults_injected=1, files_checked=len(files), leftovers=0,
                  converge_s=round(time.monotonic() - killed, 2)))


def test_next_execution_removes_the_temporary_of_a_killed_one(tmp_path, dest):
    src, files = _tree(tmp_path)
    store = tmp_path / "store"
    ex = engine.launch(LocationSpec(str(src)), dest.spec(), ALL_AT_ONCE, store=str(store))
    engine.prepare(ex)
    killed = _kill_mid_big_file(ex, dest)
    assert len(dest.leftovers()) == 1
    # The killed execution is abandoned; a new one over the same destination (its own tag) cleans up.
    again = engine.run_execution(LocationSpec(str(src)), dest.spec(), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"},
                                 store=str(store))
    assert again["Status"] == "SUCCESS", again
    assert dest.leftovers() == []
    for rel, data in files.items():
        assert dest.read(rel) == data
    newest = sorted((store / "datasync").iterdir())[-1]
    leftovers = json.loads((newest / "prepare.json").read_text())["leftovers"]
    if dest.leaves == "temporaries":
        assert leftovers["temporaries_removed"] == 1 and leftovers["bytes_removed"] >= BIG // 4
    else:
        assert leftovers["uploads_aborted"] == 1 and leftovers["uploads_of_others"] == 0
    assert leftovers["in_use"] == 0
    record(Figure(case=f"leftovers/next-execution-{dest.kind}", group="Process kills",
                  fault=f"kill -9 of the shard process mid-copy of a 24 MiB file ({dest.kind} destination), then a "
                        "new execution over the same destination",
                  holds=f"PREPARING of the new execution {'aborts the dead upload' if dest.leaves == 'uploads' else 'removes the dead temporary'} "
                        "(counted in prepare.json); "
                        "the new execution verifies everything",
                  runs=1, faults_injected=1, files_checked=len(files), leftovers=0,
                  converge_s=round(time.monotonic() - killed, 2)))


LIVE_WRITER = PRELUDE + """
import sys, time, os
from airflow_datasync.locations import open_location
from airflow_datasync.locations.base import Metadata
go = sys.argv[2]
def chunks():
    yield b"x" * 1_100_000  # over SMALL_FILE_BYTES: SMB streams it (a small file is read whole before any request)
    print("WRITING", flush=True)
    while not os.path.exists(go):
        time.sleep(0.02)
    yield b"y" * 65536
with open_location(sys.argv[1], sys.argv[3] or None) as loc:
    loc.write("live.bin", chunks(), Metadata(), tag="0badcafe-7")
print("DONE", flush=True)
"""


def test_a_live_copys_temporary_is_kept_by_the_next_execution(tmp_path, fs_dest):
    dest = fs_dest
    src = write_tree(tmp_path / "src", {"a.txt": b"a"})
    go = tmp_path / "go"
    writer = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, dest.uri, str(go), dest.conn_id or ""],
                              env=python_env(named_temporaries=dest.named_temporaries), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "WRITING", writer.stderr.read() if writer.poll() else ""
        held = dest.leftovers()
        assert len(held) == 1
        ex = engine.launch(LocationSpec(str(src)), dest.spec(), {}, store=str(tmp_path / "store"))
        engine.prepare(ex)
        assert dest.leftovers() == held  # the live writer's lock (local) or open handle (SMB) kept it
        assert ex.read_json(ex.prepare)["leftovers"]["in_use"] == 1
        go.touch()
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0 and "DONE" in out, err
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate()
    assert dest.read("live.bin") == b"x" * 1_100_000 + b"y" * 65536
    assert dest.leftovers() == []
    record(Figure(case=f"leftovers/live-copy-{dest.kind}", group="Process kills",
                  fault=f"a new execution's PREPARING over a {dest.kind} destination while another process is "
                        "writing a temporary there",
                  holds="the live temporary is kept (its writer holds a lock, or an SMB handle that refuses "
                        "deletion) and its copy completes",
                  runs=1, faults_injected=0, files_checked=1, leftovers=0))


def test_dry_run_only_counts_and_nothing_outside_the_prefix_is_touched(tmp_path):
    src = write_tree(tmp_path / "src", {"a.txt": b"a"})
    dst = tmp_path / "dst"
    outside = write_tree(tmp_path / "outside", {"precious": b"keep me"})
    write_tree(dst, {f"{TEMP_PREFIX}0badcafe-1-00000000-a.txt": b"dead", f"{TEMP_PREFIX}dir/inner": b"in a dir",
                     "user.~ds-file": b"user data", "sub/keep.txt": b"k"})
    os.symlink(outside / "precious", dst / f"{TEMP_PREFIX}0badcafe-1-00000001-link")
    os.mkfifo(dst / f"{TEMP_PREFIX}fifo")
    dry = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), {"dry_run": True}, store=str(tmp_path / "s"))
    engine.prepare(dry)
    counted = dry.read_json(dry.prepare)["leftovers"]
    assert counted["dry_run"] and counted["temporaries_found"] == 4 and counted["temporaries_removed"] == 0
    assert (dst / f"{TEMP_PREFIX}0badcafe-1-00000000-a.txt").exists()
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), {}, store=str(tmp_path / "s"))
    engine.prepare(ex)
    done = ex.read_json(ex.prepare)["leftovers"]
    assert done["temporaries_removed"] == 1 and done["bytes_removed"] == 4
    assert not (dst / f"{TEMP_PREFIX}0badcafe-1-00000000-a.txt").exists()
    # A directory, a FIFO (never opened blocking) and a young symlink with the prefix are kept; the
    # symlink's target outside the root and user data are never touched.
    assert (dst / f"{TEMP_PREFIX}dir" / "inner").read_bytes() == b"in a dir"
    assert (dst / f"{TEMP_PREFIX}fifo").exists() and os.path.islink(dst / f"{TEMP_PREFIX}0badcafe-1-00000001-link")
    assert (outside / "precious").read_bytes() == b"keep me"
    assert (dst / "user.~ds-file").read_bytes() == b"user data" and (dst / "sub/keep.txt").read_bytes() == b"k"


@pytest.mark.faults
def test_uploads_this_task_never_recorded_are_left_alone_and_reported(tmp_path, request):
    dest = destination(request, "s3", tmp_path)
    theirs = dest.client.create_multipart_upload(Bucket=dest.bucket, Key=dest.prefix + "someone/else.bin")
    dest.client.upload_part(Bucket=dest.bucket, Key=dest.prefix + "someone/else.bin", UploadId=theirs["UploadId"],
                            PartNumber=1, Body=b"z" * (5 << 20))
    src = write_tree(tmp_path / "src", {"a.txt": b"a"})
    summary = engine.run_execution(LocationSpec(str(src)), dest.spec(), {}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    assert dest.leftovers() == [f"upload {dest.prefix}someone/else.bin"]  # not ours: never aborted
    prepare = json.loads(next((tmp_path / "store" / "datasync").iterdir()).joinpath("prepare.json").read_text())
    assert prepare["leftovers"]["uploads_of_others"] == 1 and prepare["leftovers"]["uploads_aborted"] == 0
    assert prepare["leftovers"]["oldest_upload_of_others"]
    record(Figure(case="leftovers/others-uploads-s3", group="Process kills",
                  fault="an unfinished multipart upload under the destination prefix that this task never started",
                  holds="left alone (never aborted) and reported in prepare.json (count, oldest)",
                  runs=1, faults_injected=1, files_checked=1, leftovers=0,
                  notes="a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes such uploads"))


def test_retry_aborts_an_upload_killed_before_its_id_was_recorded(tmp_path, request):
    """A kill between CreateMultipartUpload's answer and the record of its id: the announcement made before
    the request names the object, so the shard's retry aborts that upload, and only that one."""
    from airflow_datasync.locations.base import UPLOAD, Leftover
    from airflow_datasync.phases.leftovers import UploadRecords, shard_tag

    dest = destination(request, "s3", tmp_path)
    src = write_tree(tmp_path / "src", {"big.bin": b"b" * (12 << 20), "a.txt": b"a"})
    ex = engine.launch(LocationSpec(str(src)), dest.spec(), {}, store=str(tmp_path / "store"))
    shard = engine.prepare(ex)[0]["shard"]
    # The killed first try: its progress file, its announcement, the upload the server started for it.
    Path(ex.progress_file(shard)).parent.mkdir(parents=True, exist_ok=True)
    ex.write_json(ex.progress_file(shard), {"state": "RUNNING"})
    UploadRecords(ex, shard)("starting", Leftover(UPLOAD, "big.bin", shard_tag(ex, shard)))
    killed = dest.client.create_multipart_upload(Bucket=dest.bucket, Key=dest.prefix + "big.bin")
    theirs = dest.client.create_multipart_upload(Bucket=dest.bucket, Key=dest.prefix + "someone/else.bin")
    engine.transfer(ex, shard)
    engine.finalize(ex)
    engine.verify(ex)
    assert engine.report(ex)["Status"] == "SUCCESS"
    assert dest.leftovers() == [f"upload {dest.prefix}someone/else.bin"]
    uploads = dest.client.list_multipart_uploads(Bucket=dest.bucket, Prefix=dest.prefix).get("Uploads", [])
    assert {u["UploadId"] for u in uploads} == {theirs["UploadId"]} and killed["UploadId"] != theirs["UploadId"]
    assert dest.read("big.bin") == b"b" * (12 << 20)
