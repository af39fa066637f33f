"""Striped files (phases/stripes.py) through the engine, against real destinations: a file at or above
``stripe_threshold_bytes`` is copied range by range (each range its own shard) and published whole by
FINALIZE with the checksum combined from the ranges'; a file whose ranges did not all arrive is never
published and leaves no temporary or upload behind; a range killed midway is copied again alone."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pyarrow.parquet as pq

from airflow_datasync import checksum, engine
from airflow_datasync.engine import LocationSpec
from airflow_datasync.errors import ShardFailedError
from airflow_datasync.manifest import ExecutionDir
from airflow_datasync.phases import leftovers, stripes
from tests.fixtures_servers import S3_CONN_ID

MiB = 1024**2
OPTIONS = {"stripe_threshold_bytes": 32 * MiB, "stripe_bytes": 16 * MiB}


def _crc(data: bytes) -> str:
    h = checksum.new_hasher()
    h.update(data)
    return h.hexdigest()


def _source(root: Path, size: int = 48 * MiB) -> bytes:
    root.mkdir(parents=True)
    big = os.urandom(size)
    (root / "sub").mkdir()
    (root / "sub" / "big.bin").write_bytes(big)
    (root / "small.txt").write_text("small")
    return big


def _execution(store: Path) -> ExecutionDir:
    runs = sorted((store / "datasync").iterdir())
    return ExecutionDir(str(runs[-1]))


def _temporaries(root: Path) -> list[str]:
    return [str(p) for p in root.rglob(".~ds-*")]


def _striped_result(execution: ExecutionDir) -> dict:
    (name,) = [n for n in os.listdir(execution.file("shards")) if n.startswith("stripe-")]
    (row,) = pq.read_table(execution.file(f"shards/{name}")).to_pylist()
    return row


def test_local_to_local_in_three_ranges(tmp_path, store):
    big = _source(tmp_path / "src")
    dst = tmp_path / "dst"
    summary = engine.run_execution(str(tmp_path / "src"), str(dst), OPTIONS, store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    assert (dst / "sub" / "big.bin").read_bytes() == big and (dst / "small.txt").read_text() == "small"
    assert os.stat(dst / "sub" / "big.bin").st_mtime_ns == os.stat(tmp_path / "src" / "sub" / "big.bin").st_mtime_ns
    execution = _execution(store)
    prepared = json.loads(Path(execution.prepare).read_text())
    assert prepared["striped"]["files"] == 1 and prepared["striped"]["ranges"] == 3
    plan = stripes.load(execution)
    assert [(r["offset"], r["length"]) for r in plan.files[0]["ranges"]] == [(0, 16 * MiB), (16 * MiB, 16 * MiB),
                                                                          (32 * MiB, 16 * MiB)]
    row = _striped_result(execution)
    assert row["status"] == "SUCCESS" and row["src_checksum"] == _crc(big)  # combined, equal to a whole pass
    assert summary["FilesVerified"] >= 2 and not _temporaries(dst)


def test_local_to_s3_completes_one_upload_with_the_full_object_checksum(tmp_path, store, s3_server, s3, bucket):
    big = _source(tmp_path / "src")
    summary = engine.run_execution(str(tmp_path / "src"), LocationSpec(f"s3://{bucket}/data", S3_CONN_ID), OPTIONS,
                                   store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    head = s3.head_object(Bucket=bucket, Key="data/sub/big.bin", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(big)
    assert base64.b64decode(head["ChecksumCRC64NVME"]).hex() == _crc(big)  # the server's own, full object
    assert head["Metadata"].get("ds-mtime-ns") == str(os.stat(tmp_path / "src" / "sub" / "big.bin").st_mtime_ns)
    assert s3.get_object(Bucket=bucket, Key="data/sub/big.bin")["Body"].read() == big
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_local_to_smb_in_ranges(tmp_path, store, smb_folder):
    big = _source(tmp_path / "src")
    folder = smb_folder()
    summary = engine.run_execution(str(tmp_path / "src"), LocationSpec(folder.uri, folder.conn_id), OPTIONS,
                                   store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    assert (folder.disk / "sub" / "big.bin").read_bytes() == big
    assert not _temporaries(folder.disk)


def test_smb_to_smb_reads_each_range_alone(tmp_path, store, smb_folder):
    """An SMB source's streaming reader cannot seek: each range opens a reader of its own range."""
    source, destination = smb_folder(), smb_folder()
    big = _source(source.disk / "tree", 40 * MiB)
    summary = engine.run_execution(LocationSpec(f"{source.uri}/tree", source.conn_id),
                                   LocationSpec(destination.uri, destination.conn_id), OPTIONS, store=str(store))
    assert summary["Status"] == "SUCCESS" and summary["FilesFailed"] == 0, summary
    assert (destination.disk / "sub" / "big.bin").read_bytes() == big and not _temporaries(destination.disk)
    plan = stripes.load(_execution(store))
    assert [r["length"] for r in plan.files[0]["ranges"]] == [16 * MiB, 16 * MiB, 8 * MiB]
    assert _striped_result(_execution(store))["src_checksum"] == _crc(big)


def _prepared(src: Path, dst: LocationSpec, store: Path) -> tuple[ExecutionDir, list[dict]]:
    execution = engine.launch(LocationSpec(str(src)), dst, OPTIONS, task_name="datasync", store=str(store))
    return execution, engine.prepare(execution)


def test_a_file_missing_a_range_is_never_published_and_leaves_nothing(tmp_path, store, s3_server, s3, bucket):
    """Local and S3: FINALIZE drops a striped file one of whose ranges failed for good."""
    _source(tmp_path / "src")
    for dst, where in ((LocationSpec(str(tmp_path / "dst")), "local"),
                       (LocationSpec(f"s3://{bucket}/data", S3_CONN_ID), "s3")):
        execution, shards = _prepared(tmp_path / "src", dst, store)
        ranges = [s for s in shards if "stripe" in s]
        assert len(ranges) == 3
        for shard in shards:
            if shard is not ranges[1]:  # the middle range never arrives
                engine.transfer(execution, shard["shard"])
        if where == "s3":
            assert len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
        else:
            assert len(_temporaries(tmp_path / "dst")) == 1
        engine.finalize(execution)
        row = _striped_result(execution)
        assert row["status"] == "FAILED" and "1 of 3 ranges not copied" in row["error"]
        if where == "s3":
            assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
            listed = s3.list_objects_v2(Bucket=bucket, Prefix="data/sub/").get("Contents", [])
            assert [o["Key"] for o in listed] == ["data/sub/"]  # the directory's marker, no object
        else:
            assert not _temporaries(tmp_path / "dst") and not (tmp_path / "dst" / "sub" / "big.bin").exists()
        engine.verify(execution)
        assert engine.report(execution)["Status"] == "ERROR"


def test_an_abandoned_execution_leaves_nothing_after_the_next_run(tmp_path, store, s3_server, s3, bucket, monkeypatch):
    """An execution stopped after one range (no FINALIZE, no report): the next run's PREPARING removes its
    temporary (local) or aborts its upload once its heartbeat is stale (S3), and the next run copies it."""
    big = _source(tmp_path / "src")
    for dst in (LocationSpec(str(tmp_path / "dst")), LocationSpec(f"s3://{bucket}/data", S3_CONN_ID)):
        execution, shards = _prepared(tmp_path / "src", dst, store)
        engine.transfer(execution, next(s for s in shards if "stripe" in s)["shard"])
        monkeypatch.setattr(leftovers, "STALE_PROGRESS_S", 0)  # as if its workers were silent for long
        summary = engine.run_execution(str(tmp_path / "src"), dst, OPTIONS, store=str(store))
        assert summary["Status"] == "SUCCESS", summary
        cleaned = json.loads(Path(_execution(store).prepare).read_text())["leftovers"]
        if dst.conn_id:
            assert cleaned["uploads_aborted"] == 1, cleaned
            assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
            assert s3.get_object(Bucket=bucket, Key="data/sub/big.bin")["Body"].read() == big
        else:
            assert cleaned["temporaries_removed"] == 1, cleaned
            assert not _temporaries(tmp_path / "dst") and (tmp_path / "dst" / "sub" / "big.bin").read_bytes() == big
        monkeypatch.undo()


def test_a_retried_range_copies_only_itself(tmp_path, store):
    big = _source(tmp_path / "src")
    execution, shards = _prepared(tmp_path / "src", LocationSpec(str(tmp_path / "dst")), store)
    ranges = [s["shard"] for s in shards if "stripe" in s]
    first = [engine.transfer(execution, shard) for shard in ranges]
    assert [r["bytes_written"] for r in first] == [16 * MiB] * 3
    again = [engine.transfer(execution, shard) for shard in ranges]  # a cleared TRANSFERRING
    assert all(r["resumed"] and r["bytes_written"] == 0 for r in again)
    os.unlink(execution.file(f"stripes/range-{ranges[1]:05d}.json"))  # as if its task had been killed midway
    redone = [engine.transfer(execution, shard) for shard in ranges]
    assert [r["bytes_written"] for r in redone] == [0, 16 * MiB, 0]
    for shard in shards:
        if "stripe" not in shard:
            engine.transfer(execution, shard["shard"])
    engine.finalize(execution)
    assert (tmp_path / "dst" / "sub" / "big.bin").read_bytes() == big


def test_a_sparse_5_gib_file_striped_locally_stays_sparse(tmp_path, store):
    src = tmp_path / "src"
    src.mkdir()
    size = 5 * 1024**3
    marks = {0: b"start", 1024**3 + 7: b"in the second range", 3 * 1024**3 - 3: b"across a range boundary",
             size - 4: b"end!"}
    with open(src / "huge.img", "wb") as fh:
        fh.truncate(size)
        for offset, data in marks.items():
            fh.seek(offset)
            fh.write(data)
    options = {"stripe_threshold_bytes": 2 * 1024**3, "stripe_bytes": 1024**3}
    summary = engine.run_execution(str(src), str(tmp_path / "dst"), options, store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    out = tmp_path / "dst" / "huge.img"
    assert os.stat(out).st_size == size and os.stat(out).st_blocks * 512 < 64 * MiB  # the holes stayed holes
    with open(out, "rb") as fh:
        for offset, data in marks.items():
            fh.seek(offset)
            assert fh.read(len(data)) == data
    execution = _execution(store)
    assert json.loads(Path(execution.prepare).read_text())["striped"]["ranges"] == 5
    # The combined checksum equals one computed over the whole file, holes as zeros.
    h = checksum.new_hasher()
    pos = 0
    for offset, data in sorted(marks.items()):
        h.update_zeros(offset - pos)
        h.update(data)
        pos = offset + len(data)
    h.update_zeros(size - pos)
    assert _striped_result(execution)["src_checksum"] == h.hexdigest()


def test_s3_to_local_reads_each_range_with_a_ranged_get(tmp_path, store, s3_server, s3, bucket):
    big = os.urandom(40 * MiB)
    s3.put_object(Bucket=bucket, Key="src/big.bin", Body=big)
    summary = engine.run_execution(LocationSpec(f"s3://{bucket}/src", S3_CONN_ID), str(tmp_path / "dst"), OPTIONS,
                                   store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    assert (tmp_path / "dst" / "big.bin").read_bytes() == big and not _temporaries(tmp_path / "dst")
    plan = stripes.load(_execution(store))
    assert [r["length"] for r in plan.files[0]["ranges"]] == [16 * MiB, 16 * MiB, 8 * MiB]
    assert _striped_result(_execution(store))["src_checksum"] == _crc(big)


def test_finalize_retried_after_publishing_finds_the_file_published(tmp_path, store, s3_server, s3, bucket):
    """FINALIZE killed after the rename (or CompleteMultipartUpload) and before its result: the retry sees
    no temporary or upload left and the file at its final name, and reports it SUCCESS."""
    big = _source(tmp_path / "src")
    for dst in (LocationSpec(str(tmp_path / "dst")), LocationSpec(f"s3://{bucket}/data", S3_CONN_ID)):
        execution, shards = _prepared(tmp_path / "src", dst, store)
        for shard in shards:
            engine.transfer(execution, shard["shard"])
        engine.finalize(execution)
        (name,) = [n for n in os.listdir(execution.file("shards")) if n.startswith("stripe-")]
        os.unlink(execution.file(f"shards/{name}"))  # as if the first try died before writing it
        engine.finalize(execution)
        row = _striped_result(execution)
        assert row["status"] == "SUCCESS" and row["src_checksum"] == _crc(big), row["error"]
        engine.verify(execution)
        assert engine.report(execution)["Status"] == "SUCCESS"


def test_a_plan_without_huge_files_reads_only_the_manifest_footer(tmp_path, store, monkeypatch):
    import pyarrow.parquet as pq_module

    (tmp_path / "src").mkdir()
    for i in range(50):
        (tmp_path / "src" / f"f{i}.txt").write_text(str(i))
    reads = []
    original = pq_module.ParquetFile.read_row_group
    monkeypatch.setattr(pq_module.ParquetFile, "read_row_group",
                        lambda self, *a, **kw: reads.append(a) or original(self, *a, **kw))
    summary = engine.run_execution(str(tmp_path / "src"), str(tmp_path / "dst"), OPTIONS, store=str(store))
    assert summary["Status"] == "SUCCESS" and not reads
    assert not os.path.exists(_execution(store).file("stripes.json"))


def test_a_cleared_prepare_hands_out_the_same_ranges(tmp_path, store):
    big = _source(tmp_path / "src")
    execution, shards = _prepared(tmp_path / "src", LocationSpec(str(tmp_path / "dst")), store)
    again = engine.prepare(execution)  # planned already: the stored plan, never a second listing or upload
    assert sorted(s["shard"] for s in again) == sorted(s["shard"] for s in shards)
    assert sum("stripe" in s for s in again) == 3
    for shard in again:
        engine.transfer(execution, shard["shard"])
    engine.finalize(execution)
    assert (tmp_path / "dst" / "sub" / "big.bin").read_bytes() == big


def _carried_out(execution: ExecutionDir, shards: list[dict]) -> dict:
    """TRANSFERRING, FINALIZE, VERIFYING and the report of a prepared execution, as run_execution runs them."""
    for shard in shards:
        try:
            engine.transfer(execution, shard["shard"])
        except ShardFailedError:  # a failed shard's entries are in its results; the others go on
            pass
    engine.finalize(execution)
    engine.verify(execution)
    return engine.report(execution)


def test_a_huge_file_gone_or_emptied_after_the_listing_is_copied_whole_not_striped(tmp_path, store):
    """The listing saw a huge file that is gone (or empty) by the time PREPARING plans its ranges: that
    file alone is left to its shard (which reports it as any vanished file, or copies the empty one);
    PREPARING itself goes on."""
    for change, status in (("deleted", "ERROR"), ("emptied", "SUCCESS")):
        src, dst = tmp_path / change / "src", tmp_path / change / "dst"
        _source(src)
        execution = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), OPTIONS, task_name="datasync",
                                  store=str(store))
        engine.prepare_partition(execution, 0)  # the listing, as the DAG's mapped PREPARING task makes it
        if change == "deleted":
            (src / "sub" / "big.bin").unlink()
        else:
            (src / "sub" / "big.bin").write_bytes(b"")
        shards = engine.prepare(execution)
        assert not [s for s in shards if "stripe" in s], shards
        summary = _carried_out(execution, shards)
        assert summary["Status"] == status, summary
        assert (dst / "small.txt").read_text() == "small" and not _temporaries(dst)
        if change == "emptied":
            assert (dst / "sub" / "big.bin").read_bytes() == b""


def test_a_file_in_the_way_of_a_striped_files_folder_is_replaced_as_for_a_whole_copy(tmp_path, store):
    """The destination holds a file where the source has the striped file's folder: PREPARING cannot start
    the ranged write there, so the file is copied whole by its shard, which replaces the file in the way
    with the folder (OverwriteMode=ALWAYS) as it does for any copy."""
    big = _source(tmp_path / "src")
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "sub").write_text("a file where the source has a folder")
    summary = engine.run_execution(str(tmp_path / "src"), str(dst), OPTIONS, store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    assert (dst / "sub" / "big.bin").read_bytes() == big and not _temporaries(dst)


def test_ranges_count_against_the_shards_airflow_maps(tmp_path, store):
    """PREPARING's ``max_shards`` (Airflow's [core] max_map_length) bounds the ranges too: the stripe is
    doubled until the shards and the ranges fit."""
    big = _source(tmp_path / "src")
    execution = engine.launch(LocationSpec(str(tmp_path / "src")), LocationSpec(str(tmp_path / "dst")), OPTIONS,
                              task_name="datasync", store=str(store))
    shards = engine.prepare(execution, max_shards=3)
    assert len(shards) <= 3, shards
    assert [s["bytes"] for s in shards if "stripe" in s] == [32 * MiB, 16 * MiB]
    assert _carried_out(execution, shards)["Status"] == "SUCCESS"
    assert (tmp_path / "dst" / "sub" / "big.bin").read_bytes() == big


def test_finalize_retried_after_reporting_a_striped_files_only_shard_reports_it_again(tmp_path, store):
    """A shard whose only work was a striped file has no task: FINALIZE writes its summary. Killed after the
    file's result and before that summary, its retry must still write it (else the shard counts as never
    reported: deletions skipped, the file a transfer failure)."""
    (tmp_path / "src").mkdir()
    big = os.urandom(48 * MiB)
    (tmp_path / "src" / "big.bin").write_bytes(big)
    execution, shards = _prepared(tmp_path / "src", LocationSpec(str(tmp_path / "dst")), store)
    assert all("stripe" in s for s in shards)  # shard 0 held the striped file only
    for shard in shards:
        engine.transfer(execution, shard["shard"])
    engine.finalize(execution)
    os.unlink(execution.shard_file(0, "json"))  # as if the first try died right after the file's result
    engine.finalize(execution)
    engine.verify(execution)
    summary = engine.report(execution)
    assert summary["Status"] == "SUCCESS" and summary["FilesFailed"] == 0, summary
    assert (tmp_path / "dst" / "big.bin").read_bytes() == big


def test_a_range_rewrites_its_files_heartbeat_while_it_copies(tmp_path, store, s3_server, bucket, monkeypatch):
    """The file's heartbeat is what keeps its upload from another execution's clean-up (older than
    leftovers.STALE_PROGRESS_S: taken for abandoned), so a range task rewrites it as it copies, not only
    when it starts and ends: a range that outlasts STALE_PROGRESS_S keeps its upload."""
    _source(tmp_path / "src")
    execution, shards = _prepared(tmp_path / "src", LocationSpec(f"s3://{bucket}/data", S3_CONN_ID), store)
    beats: list[str] = []
    heartbeat = stripes._heartbeat
    monkeypatch.setattr(stripes, "_heartbeat", lambda ex, f, state: beats.append(state) or heartbeat(ex, f, state))
    monkeypatch.setattr(stripes, "HEARTBEAT_S", 0)  # every chunk, as if each took that long
    engine.transfer(execution, next(s for s in shards if "stripe" in s)["shard"])
    assert beats.count("RUNNING") >= 16, beats  # its 16 chunks of 1 MiB, besides its start and end
    first = stripes.load(execution).files[0]["ranges"][0]["shard"]  # where the file's heartbeat is
    assert json.loads(Path(execution.progress_file(first)).read_text())["state"] == "RUNNING"


def test_a_resumed_execution_copies_a_striped_file_that_missed_a_range(tmp_path, store, s3_server, s3, bucket):
    """A range out of retries: FINALIZE drops the file (its temporary or upload gone) and reports it FAILED.
    Resuming the execution carries it on as it carries on a failed shard: a new ranged write, every range
    of the file copied again, the file published whole."""
    big = _source(tmp_path / "src")
    for dst, where in ((LocationSpec(str(tmp_path / "dst")), "local"),
                       (LocationSpec(f"s3://{bucket}/data", S3_CONN_ID), "s3")):
        execution, shards = _prepared(tmp_path / "src", dst, store)
        for shard in shards[:-1]:  # the last range never arrives
            engine.transfer(execution, shard["shard"])
        engine.finalize(execution)
        engine.verify(execution)
        assert engine.report(execution)["Status"] == "ERROR"
        summary = engine.run_execution(str(tmp_path / "src"), dst, OPTIONS, store=str(store),
                                       resume=execution.execution_id)
        assert summary["Status"] == "SUCCESS" and summary["FilesFailed"] == 0, summary
        if where == "s3":
            assert s3.get_object(Bucket=bucket, Key="data/sub/big.bin")["Body"].read() == big
            assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
        else:
            assert (tmp_path / "dst" / "sub" / "big.bin").read_bytes() == big and not _temporaries(tmp_path / "dst")
        assert _striped_result(execution)["src_checksum"] == _crc(big)


def test_finalize_flushes_a_published_striped_file_before_recording_it(tmp_path, store, monkeypatch):
    """sync_writes: nothing is recorded done while it may still sit in memory. A striped file's ranges are
    flushed as each is written; its rename to the final name (and its metadata) by FINALIZE must be flushed
    too before its result says SUCCESS."""
    from airflow_datasync.locations.local import LocalLocation

    _source(tmp_path / "src")
    execution, shards = _prepared(tmp_path / "src", LocationSpec(str(tmp_path / "dst")), store)
    for shard in shards:
        engine.transfer(execution, shard["shard"])
    synced: list[bool] = []
    sync = LocalLocation.sync
    monkeypatch.setattr(LocalLocation, "sync", lambda self: synced.append(
        any(n.startswith("stripe-") for n in os.listdir(execution.file("shards")))) or sync(self))
    engine.finalize(execution)
    assert synced and synced[0] is False, synced  # flushed once published, before its result was written
    assert _striped_result(execution)["status"] == "SUCCESS"
