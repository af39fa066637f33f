"""Destination faults: a destination that fills up, is read-only, refuses writes (S3 403) or cannot hold a
name. Each gives a clear error on the entries it concerns (or at LAUNCHING, before anything is written),
never a partial file at a final name, no temporary left taking space, and the other entries are copied.

The small and read-only file systems are real tmpfs mounts (we run as root), unmounted afterwards.
"""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.locations.base import TEMP_PREFIX, LocationError
from tests.engine.conftest import _write_tree as make_tree
from tests.faults.figures import Figure, record

MIB = 1 << 20
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs (needs root)")


def _report(summary: dict) -> dict[str, dict]:
    return {row["path"]: row for row in pq.read_table(summary["ReportUri"]).to_pylist()}


@pytest.fixture
def small_tmpfs(tmp_path):
    """An 8 MiB tmpfs, unmounted (lazily, should a test leave a file open) when the test ends."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _free(path: Path) -> int:
    s = os.statvfs(path)
    return s.f_bavail * s.f_frsize


@needs_root
def test_disk_full(tmp_path, small_tmpfs):
    """A file bigger than the space left: ENOSPC on that entry, clearly; no partial file at its name; its
    temporary removed so the space is given back; the small files beside it copied."""
    big = random.Random(3).randbytes(12 * MIB)
    src = make_tree(tmp_path / "src", {"big.bin": big, "a.txt": "alpha", "d": {"b.txt": "bravo"}})
    dst = small_tmpfs / "dst"
    dst.mkdir()
    free_before = _free(small_tmpfs)

    # One copy thread: with several, a small file written while the big one fills the disk gets ENOSPC too
    # (rightly FAILED, but then this test could not say the others are copied).
    summary = run_execution(str(src), str(dst), {"concurrency": 1}, store=str(tmp_path / "store"))

    row = _report(summary)["big.bin"]
    assert row["status"] == "FAILED" and "No space left on device" in row["error"], row
    assert summary["Status"] == "ERROR" and "big.bin" in summary["ErrorDetail"]
    assert not (dst / "big.bin").exists()
    assert not list(dst.rglob(f"{TEMP_PREFIX}*"))
    assert (dst / "a.txt").read_text() == "alpha" and (dst / "d" / "b.txt").read_text() == "bravo"
    given_back = _free(small_tmpfs)
    assert free_before - given_back < MIB, (free_before, given_back)  # only the small files take space
    record(Figure(
        case="dest/disk-full", group="Destination faults",
        fault="a 12 MiB file towards an 8 MiB tmpfs destination (ENOSPC mid-write)",
        holds="entry FAILED with 'No space left on device'; no file at its name; temporary removed, space "
              "given back (statvfs before/after); the other files copied",
        runs=1, faults_injected=1, files_checked=3, partial=0, leftovers=0,
        notes=f"free space before {free_before // 1024} KiB, after {given_back // 1024} KiB"))


@needs_root
def test_read_only_destination(tmp_path, small_tmpfs):
    """A read-only file system: LAUNCHING says so, nothing is written, no execution goes further."""
    src = make_tree(tmp_path / "src", {"a.txt": "alpha"})
    (small_tmpfs / "dst").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    with pytest.raises(LocationError, match="not writable"):
        run_execution(str(src), str(small_tmpfs / "dst"), {}, store=str(tmp_path / "store"))
    assert os.listdir(small_tmpfs / "dst") == []
    # A missing folder below a read-only mount: the same clear error, not a traceback.
    with pytest.raises(LocationError, match="cannot be created"):
        run_execution(str(src), str(small_tmpfs / "new"), {}, store=str(tmp_path / "store"))
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("transfer*"))
    record(Figure(
        case="dest/read-only", group="Destination faults",
        fault="destination on a tmpfs remounted read-only (an existing folder, and a folder to create)",
        holds="LAUNCHING fails with a clear error naming the destination; nothing written",
        runs=2, faults_injected=2, files_checked=1))


@pytest.mark.faults
def test_name_too_long(request, tmp_path):
    """A 255-byte name fits ext4; a 256-byte one (only an object store holds it) fails on its own entry
    with ENAMETOOLONG; the others are copied. (A path over PATH_MAX comes from SMB in test_names.py:
    Azure's own limit, 1,024 characters, is below it.)"""
    container = request.getfixturevalue("azure_container")
    prefix = f"src-{uuid.uuid4().hex[:6]}"
    names = {"n" * 251 + ".txt": b"255", "m" * 252 + ".txt": b"256", "d/" + "k" * 300: b"300", "ok.txt": b"ok"}
    for name, data in names.items():
        container.client.upload_blob(f"{prefix}/{name}", data)
    dst = tmp_path / "dst"
    summary = run_execution(LocationSpec(container.uri(prefix), container.conn_id), str(dst), {},
                            store=str(tmp_path / "store"))
    report = _report(summary)
    assert (dst / ("n" * 251 + ".txt")).read_bytes() == b"255" and (dst / "ok.txt").read_bytes() == b"ok"
    for name in ("m" * 252 + ".txt", "d/" + "k" * 300):
        row = report[name]
        assert row["status"] == "FAILED" and "too long" in row["error"].lower(), row
    assert summary["Status"] == "ERROR"
    assert not list(dst.rglob(f"{TEMP_PREFIX}*"))
    record(Figure(
        case="dest/name-too-long", group="Destination faults",
        fault="Azure names of 255, 256 and 300 bytes towards a local (ext4) destination",
        holds="255 bytes copied; the longer names FAILED on their own entries (name too long); the rest "
              "copied; no temporary",
        runs=1, faults_injected=2, files_checked=4))


READER_CONN_ID = "datasync_faults_s3_reader"


@pytest.fixture(scope="module")
def read_only_s3(tmp_path_factory):
    """A SeaweedFS of its own whose second identity may list and read but not write (S3 403 on PUT); yields
    the server (admin identity) and the bucket, with the reader's connection in AIRFLOW_CONN_*."""
    import json

    from tests.servers import start_seaweedfs

    admin, reader = ("faults-admin-key", "faults-admin-secret-K2"), ("faults-reader-key", "faults-reader-secret-R7")
    config = tmp_path_factory.mktemp("weed-identities") / "s3.json"
    config.write_text(json.dumps({"identities": [
        {"name": "admin", "credentials": [{"accessKey": admin[0], "secretKey": admin[1]}],
         "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
        {"name": "reader", "credentials": [{"accessKey": reader[0], "secretKey": reader[1]}],
         "actions": ["Read", "List"]},
    ]}))
    server = start_seaweedfs(*admin, s3_config=config)
    key = f"AIRFLOW_CONN_{READER_CONN_ID.upper()}"
    os.environ[key] = json.dumps({"conn_type": "aws", "login": reader[0], "password": reader[1],
                                  "extra": {"endpoint_url": server.endpoint, "region_name": server.region}})
    server.client().create_bucket(Bucket="readonly")
    try:
        yield server, "readonly"
    finally:
        os.environ.pop(key, None)
        server.stop()


@pytest.mark.faults
def test_s3_put_forbidden(tmp_path, read_only_s3):
    """Credentials that may read but not write: the destination check at LAUNCHING fails clearly and at
    once (a 403 is permanent: no retry loop), and nothing is written."""
    import time

    server, bucket = read_only_s3
    client = server.client()
    client.put_object(Bucket=bucket, Key="dst/existing.txt", Body=b"kept")
    src = make_tree(tmp_path / "src", {"a.txt": "alpha", "d": {"b.txt": "bravo"}})
    t0 = time.monotonic()
    with pytest.raises(LocationError) as caught:
        run_execution(str(src), LocationSpec(f"s3://{bucket}/dst", READER_CONN_ID), {}, store=str(tmp_path / "store"))
    took = time.monotonic() - t0
    message = str(caught.value)
    assert "denied" in message.lower() or "permission" in message.lower() or "not writable" in message.lower(), message
    assert "faults-reader-secret" not in message
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert keys == ["dst/existing.txt"], keys
    record(Figure(
        case="dest/s3-403-on-put", group="Destination faults",
        fault="an S3 identity with Read and List but no Write (SeaweedFS -s3.config): every PUT is 403",
        holds="LAUNCHING fails with a clear permission error, not retried; nothing written; no secret in it",
        runs=1, faults_injected=1, files_checked=2, converge_s=None,
        notes=f"failed after {took:.1f} s: {message[:120]}"))
