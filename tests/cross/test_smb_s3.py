"""SMB ↔ S3 end to end, against the real smbd and SeaweedFS of the session: contents, modification times
across the hop (S3 user metadata ``ds-mtime-ns`` ↔ SMB last-write time, a 100 ns FILETIME), incremental
re-runs that transfer nothing, deletes, POINT_IN_TIME_CONSISTENT verification, and S3 keys Windows forbids."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow.parquet as pq

from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.locations.s3 import MULTIPART_THRESHOLD
from tests.fixtures_servers import S3_CONN_ID

PIT = {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}
BASE_NS = 1_700_000_000_123_456_789  # not a multiple of 100: SMB keeps it at 100 ns


def smb(folder) -> LocationSpec:
    return LocationSpec(folder.uri, folder.conn_id)


def make_files(root: Path) -> dict[str, bytes]:
    """Files (one above the multipart threshold and Samba's 8 MiB max write) with nanosecond mtimes."""
    files = {
        "a.txt": b"alpha\n",
        "empty.bin": b"",
        "docs/readme ✓.md": b"# hello\n" * 100,
        "docs/deep/er/x.bin": os.urandom(70_000),
        "with space/50% off+plus#hash.txt": b"specials",
        "big.bin": os.urandom(MULTIPART_THRESHOLD + 4321),
    }
    for i, (rel, data) in enumerate(sorted(files.items())):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.utime(p, ns=(BASE_NS + i, BASE_NS + i * 1_000_000_007 + 11 * i))
    (root / "empty-dir").mkdir()
    return files


def disk_tree(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def s3_tree(s3, bucket: str, prefix: str) -> dict[str, str]:
    """The same shape as disk_tree for the objects under ``prefix/`` (``key/`` markers are directories)."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) + 1:]
            if not rel:
                continue
            if rel.endswith("/"):
                out[rel.rstrip("/")] = "dir"
            else:
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                out[rel] = hashlib.sha256(body).hexdigest()
    return out


def file_mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def floor100(ns: int) -> int:
    return ns // 100 * 100


def test_smb_to_s3_keeps_contents_and_mtimes_reruns_transfer_nothing_and_round_trips(
        smb_folder, s3, bucket, s3_prefix, tmp_path):
    src = smb_folder()
    files = make_files(src.disk)
    store = str(tmp_path / "store")

    up = run_execution(smb(src), s3_prefix("data"), PIT, store=store)
    assert up["Status"] == "SUCCESS", up
    assert s3_tree(s3, bucket, "data") == disk_tree(src.disk)  # files and directories (as key/ markers)
    assert up["FilesVerified"] == up["FilesPrepared"] == len(files) + 5  # + empty-dir, docs, docs/deep,
    # docs/deep/er, with space: POINT_IN_TIME_CONSISTENT checked every entry, mtimes included
    for rel, ns in file_mtimes(src.disk).items():
        meta = s3.head_object(Bucket=bucket, Key=f"data/{rel}")["Metadata"]
        # smbd reports the disk's ns mtime as a FILETIME (100 ns); that is what S3 keeps
        assert meta["ds-mtime-ns"] == str(floor100(ns)), rel

    again = run_execution(smb(src), s3_prefix("data"), PIT, store=store)
    assert again["Status"] == "SUCCESS", again
    assert again["FilesTransferred"] == 0 and again["BytesWritten"] == 0
    assert again["FilesSkipped"] == up["FilesPrepared"]

    # A changed and a deleted file on the share: the next run copies one and (REMOVE) deletes one.
    (src.disk / "a.txt").write_bytes(b"alpha changed\n")
    (src.disk / "docs" / "readme ✓.md").unlink()
    third = run_execution(smb(src), s3_prefix("data"), {**PIT, "PreserveDeletedFiles": "REMOVE"}, store=store)
    assert third["Status"] == "SUCCESS", third
    # a.txt only: directory markers on an object store are not compared (keeps_directory_metadata=False)
    assert third["FilesTransferred"] == 1 and third["FilesDeleted"] == 1
    assert s3.get_object(Bucket=bucket, Key="data/a.txt")["Body"].read() == b"alpha changed\n"
    assert s3_tree(s3, bucket, "data") == disk_tree(src.disk)

    # And back to another share: the times survive SMB → S3 → SMB exactly (both ends are 100 ns).
    back = smb_folder("other")
    down = run_execution(s3_prefix("data"), smb(back), PIT, store=store)
    assert down["Status"] == "SUCCESS", down
    assert disk_tree(back.disk) == disk_tree(src.disk)
    assert file_mtimes(back.disk) == {rel: floor100(ns) for rel, ns in file_mtimes(src.disk).items()}


def test_s3_to_smb_keeps_contents_and_mtimes_reruns_transfer_nothing(smb_folder, s3, bucket, s3_prefix, tmp_path):
    seed = tmp_path / "seed"
    files = make_files(seed)
    store = str(tmp_path / "store")
    assert run_execution(str(seed), s3_prefix("data"), {}, store=store)["Status"] == "SUCCESS"
    # Objects other tools wrote: no ds-* metadata (their time is LastModified), and a bare directory marker.
    s3.put_object(Bucket=bucket, Key="data/foreign.csv", Body=b"x,y\n1,2\n")
    s3.put_object(Bucket=bucket, Key="data/marker-only/", Body=b"")
    dst = smb_folder()

    down = run_execution(s3_prefix("data"), smb(dst), PIT, store=store)
    assert down["Status"] == "SUCCESS", down
    assert disk_tree(dst.disk) == s3_tree(s3, bucket, "data")
    assert (dst.disk / "marker-only").is_dir() and (dst.disk / "empty-dir").is_dir()
    assert down["FilesVerified"] == down["FilesPrepared"] == len(files) + 1 + 6
    for rel in files:
        ds_mtime = int(s3.head_object(Bucket=bucket, Key=f"data/{rel}")["Metadata"]["ds-mtime-ns"])
        assert ds_mtime == (seed / rel).stat().st_mtime_ns  # local → S3 keeps every nanosecond
        assert (dst.disk / rel).stat().st_mtime_ns == floor100(ds_mtime), rel  # S3 → SMB: 100 ns
    last_modified = s3.head_object(Bucket=bucket, Key="data/foreign.csv")["LastModified"]
    assert (dst.disk / "foreign.csv").stat().st_mtime_ns == int(last_modified.timestamp()) * 1_000_000_000

    again = run_execution(s3_prefix("data"), smb(dst), PIT, store=store)
    assert again["Status"] == "SUCCESS", again
    assert again["FilesTransferred"] == 0 and again["BytesWritten"] == 0
    assert again["FilesSkipped"] == down["FilesPrepared"]

    # An object replaced (same size, new time) and one deleted in S3: one copy and (REMOVE) one delete.
    head = s3.head_object(Bucket=bucket, Key="data/a.txt")
    s3.put_object(Bucket=bucket, Key="data/a.txt", Body=b"ALPHA\n",
                  Metadata={**head["Metadata"], "ds-mtime-ns": str(BASE_NS + 10**12)})
    s3.delete_object(Bucket=bucket, Key="data/foreign.csv")
    third = run_execution(s3_prefix("data"), smb(dst), {**PIT, "PreserveDeletedFiles": "REMOVE"}, store=store)
    assert third["Status"] == "SUCCESS", third
    assert third["FilesTransferred"] == 1 and third["FilesDeleted"] == 1
    assert (dst.disk / "a.txt").read_bytes() == b"ALPHA\n" and not (dst.disk / "foreign.csv").exists()
    assert (dst.disk / "a.txt").stat().st_mtime_ns == floor100(BASE_NS + 10**12)


def test_s3_keys_that_windows_forbids_fail_per_entry_on_smb(smb_folder, s3, bucket, s3_prefix, tmp_path):
    for key in ("ok.txt", "aux.txt", "a:b.txt", "trailing.", "q?.txt", "LPT1/inside.txt"):
        s3.put_object(Bucket=bucket, Key=f"data/{key}", Body=b"x")
    dst = smb_folder()
    out = run_execution(s3_prefix("data"), smb(dst), {}, store=str(tmp_path / "store"))
    assert out["Status"] == "ERROR" and out["ErrorCode"] == "FilesFailed", out
    rows = {r["path"]: r for r in pq.read_table(out["ReportUri"]).to_pylist()}
    for path, rule in (("aux.txt", "reserved device name AUX"), ("a:b.txt", "':'"), ("trailing.", "ends with a dot"),
                       ("q?.txt", "'?'"), ("LPT1/inside.txt", "reserved device name LPT1")):
        assert rows[path]["status"] == "FAILED", rows[path]
        assert path in rows[path]["error"] and rule in rows[path]["error"], rows[path]["error"]
    assert disk_tree(dst.disk) == {"ok.txt": hashlib.sha256(b"x").hexdigest()}  # nothing renamed or half-written


def test_smb_to_s3_parts_never_exceed_the_part_size(smb_folder, s3, bucket, tmp_path):
    src = smb_folder()
    part = 5 * 1024 * 1024
    data = os.urandom(part + 4321)  # read from SMB in 1 MiB chunks: the last, short chunk crosses part_size
    (src.disk / "just-over.bin").write_bytes(data)
    dest = LocationSpec(f"s3://{bucket}/tuned?part_size=5MiB", S3_CONN_ID)
    out = run_execution(smb(src), dest, {}, store=str(tmp_path / "store"))
    assert out["Status"] == "SUCCESS", out
    assert s3.get_object(Bucket=bucket, Key="tuned/just-over.bin")["Body"].read() == data
    etag = s3.head_object(Bucket=bucket, Key="tuned/just-over.bin")["ETag"].strip('"')
    assert etag.endswith("-2"), f"{etag}: expected two parts, {part} and 4321 bytes"
