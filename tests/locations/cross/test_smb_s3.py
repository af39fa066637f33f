"""SMB ↔ S3 specifics, against the real smbd and SeaweedFS of the session: objects other tools wrote
(no ``ds-*`` metadata, bare markers) and their times on SMB (a 100 ns FILETIME), S3 keys Windows forbids,
and multipart parts read from SMB. Copies, re-runs, deletes, round trips and verification between the two
are the pair matrix's (tests/locations/test_pairs.py)."""

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


def floor100(ns: int) -> int:
    return ns // 100 * 100


def test_objects_other_tools_wrote_reach_smb_with_their_s3_times(smb_folder, s3, bucket, s3_prefix, tmp_path):
    # (re-runs, deletes and round trips of SMB <-> S3 are tests/locations/test_pairs.py's)
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


def test_s3_keys_that_windows_forbids_fail_per_entry_on_smb(smb_folder, s3, bucket, s3_prefix, tmp_path):
    for key in ("ok.txt", "aux.txt", "a:b.txt", "trailing.", "q?.txt", "LPT1/inside.txt"):
        s3.put_object(Bucket=bucket, Key=f"data/{key}", Body=b"x")
    dst = smb_folder()
    out = run_execution(s3_prefix("data"), smb(dst), {}, store=str(tmp_path / "store"))
    # Refused per entry in PREPARING (the destination's name_problem), before any write: SourceErrors.
    assert out["Status"] == "ERROR" and out["ErrorCode"] == "SourceErrors", out
    assert out["FilesFailedDetail"]["Transfer"] == 0, out
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
