"""Dry runs (``dry_run``): LAUNCHING and PREPARING only. Nothing is written at the destination, on a local
disk, S3 (SeaweedFS) or SMB (smbd), not even a missing destination folder; the report says what a real run
then does, entry by entry."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_datasync.engine import LocationSpec, run_execution
from tests.fixtures_servers import S3_CONN_ID, SMB_CONN_ID

#: The S3 requests a dry run may send to its destination: listings and reads only.
READ_ONLY_S3 = {"ListObjectsV2", "HeadObject", "GetObject", "HeadBucket", "GetObjectTagging", "ListMultipartUploads"}


def source_tree(make_tree, root: Path) -> Path:
    return make_tree(root, {"a.txt": "alpha", "same.txt": "unchanged", "empty.bin": b"",
                            "dir": {"b.csv": os.urandom(3000), "sub": {"c.json": '{"c": 1}'}}, "empty-dir": {}})


def rows_by_path(summary: dict) -> dict[str, tuple[str, str]]:
    return {r["path"]: (r["action"], r["status"]) for r in pq.read_table(summary["ReportUri"]).to_pylist()}


def assert_dry_report(dry: dict) -> None:
    assert dry["DryRun"] is True and dry["Status"] == "SUCCESS", dry
    assert dry["FilesTransferred"] == dry["BytesWritten"] == dry["FilesDeleted"] == dry["FilesVerified"] == 0
    assert dry["EstimatedFilesToTransfer"] > 0 and dry["ErrorCode"] is None


def assert_real_run_matches(dry: dict, real: dict) -> None:
    """What the dry run announced is what the run then did."""
    assert real["DryRun"] is False and real["Status"] == "SUCCESS", real
    for key in ("EstimatedFilesToTransfer", "EstimatedBytesToTransfer", "EstimatedFilesToDelete", "FilesPrepared",
                "FilesSkipped"):
        assert dry[key] == real[key], key
    assert real["FilesTransferred"] == dry["EstimatedFilesToTransfer"]
    assert real["FilesDeleted"] == dry["EstimatedFilesToDelete"]
    planned = {path: action for path, (action, status) in rows_by_path(dry).items()}
    assert set(status for _action, status in rows_by_path(dry).values()) == {"DRY_RUN"}
    assert planned == {path: action for path, (action, _status) in rows_by_path(real).items()}


def test_local_dry_run_writes_nothing_and_predicts_the_run(tmp_path, store, make_tree, snapshot):
    src = source_tree(make_tree, tmp_path / "src")
    dst = make_tree(tmp_path / "dst", {"same.txt": "unchanged", "stale.txt": "gone at the source", "dir": {}})
    os.utime(dst / "same.txt", ns=(os.stat(src / "same.txt").st_atime_ns, os.stat(src / "same.txt").st_mtime_ns))
    before = snapshot(dst)
    options = {"PreserveDeletedFiles": "REMOVE", "dry_run": True}
    dry = run_execution(str(src), str(dst), options, store=str(store))
    assert snapshot(dst) == before  # contents, modes and mtimes, of files and directories
    assert_dry_report(dry)
    planned = rows_by_path(dry)
    assert planned["a.txt"] == ("copy", "DRY_RUN") and planned["stale.txt"] == ("delete", "DRY_RUN")
    assert planned["same.txt"] == ("skip", "DRY_RUN") and planned["empty-dir"] == ("mkdir", "DRY_RUN")
    assert dry["EstimatedFilesToDelete"] == 1 and dry["FilesSkipped"] >= 1

    execution = Path(dry["ExecutionUri"])
    assert not (execution / "shards").exists() or not os.listdir(execution / "shards")
    assert not (execution / "finalize.json").exists() and not (execution / "verify.json").exists()
    assert json.loads((execution / "report.json").read_text())["DryRun"] is True

    real = run_execution(str(src), str(dst), {**options, "dry_run": False}, store=str(store))
    assert_real_run_matches(dry, real)
    assert not (dst / "stale.txt").exists() and (dst / "dir" / "sub" / "c.json").exists()


def test_local_dry_run_does_not_create_a_missing_destination_folder(tmp_path, store, make_tree):
    src = source_tree(make_tree, tmp_path / "src")
    parent = tmp_path / "dst-parent"
    parent.mkdir()
    dry = run_execution(str(src), str(parent / "new"), {"dry_run": True}, store=str(store))
    assert list(parent.iterdir()) == []
    assert_dry_report(dry)
    assert {action for action, _ in rows_by_path(dry).values()} == {"copy", "mkdir"}  # all new
    real = run_execution(str(src), str(parent / "new"), {}, store=str(store))
    assert_real_run_matches(dry, real)


def test_local_dry_run_still_refuses_what_a_run_would_refuse(tmp_path, store, make_tree):
    from airflow_datasync.locations import LocationError

    src = source_tree(make_tree, tmp_path / "src")
    with pytest.raises(LocationError, match="does not exist"):  # a missing parent is a typo, as in a run
        run_execution(str(src), str(tmp_path / "no" / "such"), {"dry_run": True}, store=str(store))
    with pytest.raises(LocationError, match="overlap"):
        run_execution(str(src), str(src / "inside"), {"dry_run": True}, store=str(store))
    assert not (src / "inside").exists()


def s3_objects(s3, bucket: str) -> dict[str, tuple]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: (o["ETag"], o["Size"], o["LastModified"]) for page in pages for o in page.get("Contents", [])}


def test_s3_dry_run_sends_no_write_request(tmp_path, store, make_tree, s3, bucket):
    from tests.locations.s3.conftest import s3_requests

    src = source_tree(make_tree, tmp_path / "src")
    s3.put_object(Bucket=bucket, Key="dst/stale.txt", Body=b"gone at the source")
    s3.put_object(Bucket=bucket, Key="elsewhere/keep.txt", Body=b"outside the prefix")
    before = s3_objects(s3, bucket)
    dst = LocationSpec(f"s3://{bucket}/dst", S3_CONN_ID)
    with s3_requests() as sent:
        dry = run_execution(LocationSpec(str(src)), dst, {"PreserveDeletedFiles": "REMOVE", "dry_run": True},
                            store=str(store))
    assert sent and set(sent) <= READ_ONLY_S3, sent
    assert s3_objects(s3, bucket) == before
    assert_dry_report(dry)
    assert rows_by_path(dry)["stale.txt"] == ("delete", "DRY_RUN")
    real = run_execution(LocationSpec(str(src)), dst, {"PreserveDeletedFiles": "REMOVE"}, store=str(store))
    assert_real_run_matches(dry, real)

    # A prefix nothing is under yet: listed, planned as all new, still nothing written.
    before = s3_objects(s3, bucket)
    with s3_requests() as sent:
        fresh = run_execution(LocationSpec(str(src)), LocationSpec(f"s3://{bucket}/new", S3_CONN_ID),
                              {"dry_run": True}, store=str(store))
    assert set(sent) <= READ_ONLY_S3, sent
    assert s3_objects(s3, bucket) == before
    assert_dry_report(fresh)
    planned = {action for action, _ in rows_by_path(fresh).values()}
    assert "copy" in planned and planned <= {"copy", "mkdir"}


def disk_snapshot(root: Path) -> dict[str, tuple]:
    """What smbd keeps on disk for a folder: every entry's type, size and mtime (SMB writes would change them)."""
    out = {}
    for path in sorted(root.rglob("*")):
        s = path.lstat()
        out[str(path.relative_to(root))] = (path.is_dir(), s.st_size, s.st_mtime_ns)
    return out


def test_smb_dry_run_writes_nothing_not_even_a_probe(tmp_path, store, make_tree, smb_folder):
    src = source_tree(make_tree, tmp_path / "src")
    folder = smb_folder()
    (folder.disk / "stale.txt").write_text("gone at the source")
    (folder.disk / "dir").mkdir()
    before, folder_mtime = disk_snapshot(folder.disk), folder.disk.stat().st_mtime_ns
    dst = LocationSpec(folder.uri, SMB_CONN_ID)
    dry = run_execution(LocationSpec(str(src)), dst, {"PreserveDeletedFiles": "REMOVE", "dry_run": True},
                        store=str(store))
    assert disk_snapshot(folder.disk) == before
    assert folder.disk.stat().st_mtime_ns == folder_mtime  # a probe file created and removed would change it
    assert_dry_report(dry)
    real = run_execution(LocationSpec(str(src)), dst, {"PreserveDeletedFiles": "REMOVE"}, store=str(store))
    assert_real_run_matches(dry, real)

    missing = smb_folder(create=False)
    parent_mtime = missing.disk.parent.stat().st_mtime_ns
    fresh = run_execution(LocationSpec(str(src)), LocationSpec(missing.uri, SMB_CONN_ID), {"dry_run": True},
                          store=str(store))
    assert not missing.disk.exists() and missing.disk.parent.stat().st_mtime_ns == parent_mtime
    assert_dry_report(fresh)
    assert {action for action, _ in rows_by_path(fresh).values()} == {"copy", "mkdir"}


def test_cli_dry_run(tmp_path, make_tree, snapshot, python_env, python_exe):
    src = source_tree(make_tree, tmp_path / "src")
    dst = make_tree(tmp_path / "dst", {"old.txt": "kept"})
    before = snapshot(dst)
    done = subprocess.run([python_exe, "-m", "airflow_datasync.cli", "run", str(src), str(dst), "--dry-run", "--json",
                           "--quiet", "--store", str(tmp_path / "store")], env=python_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert summary["DryRun"] is True and summary["FilesTransferred"] == 0 and summary["EstimatedFilesToTransfer"] > 0
    assert snapshot(dst) == before
