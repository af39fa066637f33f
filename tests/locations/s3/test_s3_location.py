"""S3 locations against a real S3-compatible server (SeaweedFS on 127.0.0.1, SigV4 enforced)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_datasync import checksum, engine
from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.locations import LocationError, open_location
from airflow_datasync.locations.s3 import MULTIPART_THRESHOLD
from airflow_datasync.manifest import Store
from tests.locations.s3.conftest import CONN_ID, PERMISSIVE_CONN_ID, s3_requests


def s3loc(bucket: str, prefix: str = "data") -> LocationSpec:
    return LocationSpec(f"s3://{bucket}/{prefix}", CONN_ID)


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha",
        "empty.bin": b"",
        "dir/b.csv": os.urandom(3000),
        "dir/sub/c.json": b'{"c": 1}',
        "naïve café/日本語 ✓.txt": b"unicode",
        "with space/50% off+plus#hash.txt": b"specials",
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "empty-dir").mkdir()
    os.chmod(root / "a.txt", 0o640)
    os.utime(root / "a.txt", ns=(1_600_000_000_123_456_789, 1_700_000_000_987_654_321))
    (root / "link").symlink_to("dir/b.csv")
    return files


def objects(s3, bucket: str, prefix: str = "") -> dict[str, dict]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj
    return out


def test_local_to_s3_writes_objects_markers_metadata_and_checksums(tmp_path, s3, bucket):
    src = tmp_path / "src"
    files = make_tree(src)
    summary = run_execution(str(src), s3loc(bucket), {}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    keys = objects(s3, bucket)
    for rel, data in files.items():
        assert s3.get_object(Bucket=bucket, Key=f"data/{rel}")["Body"].read() == data
    # Directories are empty "key/" objects, as DataSync writes them.
    assert "data/empty-dir/" in keys and "data/dir/" in keys and "data/dir/sub/" in keys
    head = s3.head_object(Bucket=bucket, Key="data/a.txt", ChecksumMode="ENABLED")
    meta = head["Metadata"]
    assert meta["ds-mtime-ns"] == "1700000000987654321" and meta["ds-mode"] == "640"
    assert meta["ds-uid"] == str(os.getuid())
    h = checksum.new_hasher()
    h.update(b"alpha")
    assert head["ChecksumCRC64NVME"] == h.base64()  # the server checked the body against our CRC
    link = s3.head_object(Bucket=bucket, Key="data/link")["Metadata"]
    assert link["ds-type"] == "symlink" and link["ds-link-target"] == "dir/b.csv"
    # Verification used the server's checksums: every file verified.
    assert summary["FilesVerified"] == len(files)


def test_round_trip_restores_symlinks_and_empty_directories(tmp_path, bucket):
    # (contents, modes, mtimes and re-runs of every pair with S3 are tests/locations/test_pairs.py's)
    src, back = tmp_path / "src", tmp_path / "back"
    make_tree(src)
    store = str(tmp_path / "store")
    assert run_execution(str(src), s3loc(bucket), {}, store=store)["Status"] == "SUCCESS"
    down = run_execution(s3loc(bucket), str(back), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}, store=store)
    assert down["Status"] == "SUCCESS", down
    assert os.readlink(back / "link") == "dir/b.csv"
    assert (back / "empty-dir").is_dir()
    assert run_execution(s3loc(bucket), str(back), {}, store=store)["FilesTransferred"] == 0

def test_s3_to_s3_uses_server_side_copy_and_verifies_with_head(tmp_path, s3, bucket):
    src = tmp_path / "src"
    files = make_tree(src)
    store = str(tmp_path / "store")
    run_execution(str(src), s3loc(bucket, "from"), {}, store=store)
    summary = run_execution(s3loc(bucket, "from"), s3loc(bucket, "to"), {}, store=store)
    assert summary["Status"] == "SUCCESS", summary
    assert summary["FilesVerified"] == len(files)
    for rel, data in files.items():
        head = s3.head_object(Bucket=bucket, Key=f"to/{rel}", ChecksumMode="ENABLED")
        h = checksum.new_hasher()
        h.update(data)
        assert head["ChecksumCRC64NVME"] == h.base64()
        assert "ds-mtime-ns" in head["Metadata"]
    rows = {r["path"]: r for r in pq.read_table(summary["ReportUri"]).to_pylist()}
    assert rows["a.txt"]["src_checksum"] == rows["a.txt"]["dst_checksum"]


def test_remove_deletes_objects_and_markers_only_under_the_prefix(tmp_path, s3, bucket):
    src = tmp_path / "src"
    make_tree(src)
    store = str(tmp_path / "store")
    run_execution(str(src), s3loc(bucket), {}, store=store)
    s3.put_object(Bucket=bucket, Key="data/stale/old.txt", Body=b"old")
    s3.put_object(Bucket=bucket, Key="data/stale/", Body=b"")
    s3.put_object(Bucket=bucket, Key="database/sibling.txt", Body=b"not ours")  # shares the prefix "data"
    kept = run_execution(str(src), s3loc(bucket), {}, store=store)
    assert kept["FilesDeleted"] == 0 and "data/stale/old.txt" in objects(s3, bucket)
    removed = run_execution(str(src), s3loc(bucket), {"PreserveDeletedFiles": "REMOVE"}, store=store)
    assert removed["Status"] == "SUCCESS", removed
    assert removed["FilesDeleted"] == 2
    keys = objects(s3, bucket)
    assert "data/stale/old.txt" not in keys and "data/stale/" not in keys
    assert "database/sibling.txt" in keys and "data/a.txt" in keys


def test_multipart_upload_of_a_large_file_completes_whole(tmp_path, s3, bucket):
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(MULTIPART_THRESHOLD * 2 + 12345)
    (src / "big.bin").write_bytes(data)
    summary = run_execution(str(src), s3loc(bucket), {}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    head = s3.head_object(Bucket=bucket, Key="data/big.bin", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    h = checksum.new_hasher()
    h.update(data)
    assert head["ChecksumCRC64NVME"] == h.base64() and head.get("ChecksumType") == "FULL_OBJECT"
    assert s3.get_object(Bucket=bucket, Key="data/big.bin")["Body"].read() == data
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_a_large_file_changed_during_upload_is_aborted_and_leaves_no_parts(tmp_path, s3, bucket):
    src = tmp_path / "src"
    src.mkdir()
    big = src / "growing.bin"
    big.write_bytes(os.urandom(MULTIPART_THRESHOLD * 2))
    stop = threading.Event()

    def grow():
        time.sleep(0.3)
        with open(big, "ab") as fh:
            while not stop.is_set():
                fh.write(b"x" * 1024)
                fh.flush()
                time.sleep(0.05)

    writer = threading.Thread(target=grow)
    writer.start()
    try:
        summary = run_execution(str(src), s3loc(bucket), {"BytesPerSecond": 16 * 1024 * 1024},
                                store=str(tmp_path / "store"))
    finally:
        stop.set()
        writer.join()
    assert summary["Status"] == "ERROR" and "growing.bin" in summary["ErrorDetail"]
    assert "data/growing.bin" not in objects(s3, bucket)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


HOSTILE_KEYS = ["../escape.txt", "a/../../b.txt", "/abs.txt", "x/./y.txt", "dots/../../../etc/passwd", "nul\x00.txt"]


def test_hostile_keys_are_refused_and_reported_never_written(tmp_path, permissive_s3):
    """Keys that would escape a file-system root exist on AWS S3 (SeaweedFS refuses to store them, so this
    runs against moto's S3 server, which stores them as AWS does)."""
    s3 = permissive_s3.client()
    s3.create_bucket(Bucket="hostile")
    s3.put_object(Bucket="hostile", Key="data/ok.txt", Body=b"fine")
    stored = []
    for key in HOSTILE_KEYS:
        try:
            s3.put_object(Bucket="hostile", Key="data/" + key, Body=b"evil")
            stored.append(key)
        except Exception:  # a key the server itself refuses cannot reach us either
            pass
    assert len(stored) >= 5, stored
    dst = tmp_path / "deep" / "dst"
    dst.parent.mkdir()
    summary = run_execution(LocationSpec("s3://hostile/data", PERMISSIVE_CONN_ID), str(dst), {},
                            store=str(tmp_path / "store"))
    assert summary["Status"] == "ERROR" and summary["ErrorCode"] == "SourceErrors", summary
    assert "unsafe object key" in summary["ErrorDetail"]
    assert summary["FilesFailed"] >= len(stored)
    assert (dst / "ok.txt").read_bytes() == b"fine"
    everything = [p for p in tmp_path.rglob("*") if p.is_file() and "store" not in p.parts]
    assert [p for p in everything if p.read_bytes() == b"evil"] == []
    assert not (tmp_path / "deep" / "escape.txt").exists() and not (tmp_path / "abs.txt").exists()


def test_odd_keys_and_a_1024_byte_key_round_trip(tmp_path, s3, bucket):
    src, back = tmp_path / "src", tmp_path / "back"
    names = ["sp ace.txt", "per%cent.txt", "pl+us.txt", "ha#sh.txt", "ünï/cødé ✓.txt", "new\nline.txt", "q?uery&amp.txt"]
    for name in names:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(name)
    # A key of exactly 1024 bytes: "data/" + four 200-byte directories + a file name.
    long_dirs = ["d" * 200] * 4
    leaf = "f" * (1024 - len("data/") - 4 * 201)
    long_rel = "/".join(long_dirs + [leaf])
    assert len(("data/" + long_rel).encode()) == 1024
    (src / long_rel).parent.mkdir(parents=True)
    (src / long_rel).write_text("long")
    store = str(tmp_path / "store")
    up = run_execution(str(src), s3loc(bucket), {}, store=store)
    assert up["Status"] == "SUCCESS", up
    assert "data/" + long_rel in objects(s3, bucket)
    down = run_execution(s3loc(bucket), str(back), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}, store=store)
    assert down["Status"] == "SUCCESS", down
    for name in names:
        assert (back / name).read_text() == name
    assert (back / long_rel).read_text() == "long"


def test_bad_credentials_and_missing_bucket_are_clear_errors(tmp_path, s3_server, monkeypatch):
    import json

    bad = json.loads(s3_server.connection_uri_json())
    bad["password"] = "wrong-secret-value"
    monkeypatch.setenv("AIRFLOW_CONN_DATASYNC_BAD_S3", json.dumps(bad))
    from airflow_datasync.locations.s3 import settings as s3settings

    s3settings._CACHE.clear()
    with pytest.raises(LocationError, match="secret key is wrong|SignatureDoesNotMatch|AccessDenied"):
        run_execution(LocationSpec("s3://anything/x", "datasync_bad_s3"), str(tmp_path / "d"), {},
                      store=str(tmp_path / "store"))
    with pytest.raises(LocationError, match="bucket does not exist"):
        run_execution(LocationSpec("s3://no-such-bucket-here/x", CONN_ID), str(tmp_path / "d"), {},
                      store=str(tmp_path / "store"))


def test_manifest_store_on_s3(tmp_path, s3, bucket):
    src, dst = tmp_path / "src", tmp_path / "dst"
    files = make_tree(src)
    summary = run_execution(str(src), str(dst), {"files_per_shard": 3}, store=f"s3://{bucket}/manifests",
                            store_conn_id=CONN_ID)
    assert summary["Status"] == "SUCCESS", summary
    for rel, data in files.items():
        assert (dst / rel).read_bytes() == data
    keys = objects(s3, bucket, "manifests/")
    base = f"manifests/datasync/{summary['TaskExecutionId']}/"
    for name in ("launch.json", "manifest.parquet", "prepare.json", "report.json", "report.parquet",
                 "shards/shard-00000.parquet", "shards/shard-00000.json"):
        assert base + name in keys, sorted(keys)
    assert any(k.startswith(base + "shards/shard-00000.journal.") for k in keys)
    assert summary["ReportUri"] == f"s3://{bucket}/{base}report.parquet"
    # A retried shard finds its journal in S3 and resumes.
    from airflow_datasync.manifest import ExecutionDir

    execution = ExecutionDir(summary["ExecutionUri"], CONN_ID)
    again = engine.transfer(execution, 0)
    assert again["resumed"] == again["entries"] > 0


@pytest.mark.parametrize("object_tags", ["PRESERVE", "NONE"])
def test_s3_to_s3_keeps_user_metadata_and_tags_as_asked(tmp_path, s3, bucket, object_tags):
    s3.put_object(Bucket=bucket, Key="from/report.pdf", Body=b"%PDF", Metadata={"owner": "finance", "rev": "7"},
                  Tagging="project=apollo&tier=gold")
    summary = run_execution(s3loc(bucket, "from"), s3loc(bucket, "to"), {"ObjectTags": object_tags},
                            store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    head = s3.head_object(Bucket=bucket, Key="to/report.pdf")
    assert head["Metadata"]["owner"] == "finance" and head["Metadata"]["rev"] == "7"
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key="to/report.pdf")["TagSet"]}
    assert tags == ({"project": "apollo", "tier": "gold"} if object_tags == "PRESERVE" else {})


def test_multipart_server_side_copy_above_the_copy_part_size(tmp_path, s3, bucket, monkeypatch):
    from airflow_datasync.locations.s3 import location as s3location

    monkeypatch.setattr(s3location, "COPY_PART_SIZE", 6 * 1024 * 1024)
    data = os.urandom(14 * 1024 * 1024)
    s3.put_object(Bucket=bucket, Key="from/big.bin", Body=data, Tagging="k=v")
    summary = run_execution(s3loc(bucket, "from"), s3loc(bucket, "to"), {}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    head = s3.head_object(Bucket=bucket, Key="to/big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # copied part by part on the server
    assert s3.get_object(Bucket=bucket, Key="to/big.bin")["Body"].read() == data
    assert summary["FilesVerified"] == 1
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_location_parameters_storage_class_and_part_size(tmp_path, s3, bucket):
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(12 * 1024 * 1024)
    (src / "big.bin").write_bytes(data)
    (src / "small.txt").write_text("s")
    dest = LocationSpec(f"s3://{bucket}/tuned?part_size=5MiB&part_concurrency=2&storage_class=STANDARD_IA", CONN_ID)
    summary = run_execution(str(src), dest, {}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    big = s3.head_object(Bucket=bucket, Key="tuned/big.bin")
    assert big["ETag"].strip('"').endswith("-3")  # 5 MiB parts
    for key in ("tuned/big.bin", "tuned/small.txt"):
        assert s3.head_object(Bucket=bucket, Key=key).get("StorageClass") == "STANDARD_IA"
    with pytest.raises(LocationError, match="part_size"):
        open_location(f"s3://{bucket}/x?part_size=1MiB", CONN_ID)
    with pytest.raises(LocationError, match="unknown parameter"):
        open_location(f"s3://{bucket}/x?colour=blue", CONN_ID)


def test_credentials_and_endpoint_from_the_environment_without_a_connection(tmp_path, s3_server, s3, bucket,
                                                                             monkeypatch):
    from airflow_datasync.locations.s3 import settings as s3settings

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    monkeypatch.setattr(s3settings, "_CACHE", {})
    src = tmp_path / "src"
    src.mkdir()
    (src / "env.txt").write_text("from the environment")
    summary = run_execution(str(src), f"s3://{bucket}/env", {}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    assert s3.get_object(Bucket=bucket, Key="env/env.txt")["Body"].read() == b"from the environment"


def test_verify_of_single_put_objects_lists_etags_instead_of_heading_each(tmp_path, s3, bucket):
    """VERIFYING compares listed ETags (the server's MD5 of the stored bytes) with the MD5 computed from the
    source while uploading: a few LIST calls for the whole prefix, HEAD only for multipart objects."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i}.txt").write_bytes(os.urandom(100 + i))
    (src / "big.bin").write_bytes(os.urandom(MULTIPART_THRESHOLD + 1))
    execution = engine.launch(LocationSpec(str(src)), s3loc(bucket), {}, store=str(tmp_path / "store"))
    for shard in engine.prepare(execution):
        engine.transfer(execution, shard["shard"])
    engine.finalize(execution)
    with s3_requests() as calls:
        engine.verify(execution)
    report = engine.report(execution)
    assert report["Status"] == "SUCCESS" and report["FilesVerified"] == 41, report
    assert calls.count("HeadObject") == 1 and calls.count("ListObjectsV2") >= 1, calls
    rows = {r["path"]: r for r in pq.read_table(report["ReportUri"]).to_pylist()}
    assert rows["f0.txt"]["verify_status"] == "VERIFIED" and rows["big.bin"]["verify_status"] == "VERIFIED"


def test_rerun_learns_metadata_from_the_previous_execution_instead_of_heading_every_object(tmp_path, s3, bucket):
    """PREPARING needs each object's POSIX metadata, which only HEAD returns. An object whose ETag is what
    the previous execution saw or wrote takes it from that execution instead; a changed object is HEADed."""
    src = tmp_path / "src"
    files = make_tree(src)
    store = str(tmp_path / "store")
    assert run_execution(str(src), s3loc(bucket), {}, store=store)["Status"] == "SUCCESS"
    # Someone else rewrites one object behind our back (no metadata of ours: a fresh LastModified).
    s3.put_object(Bucket=bucket, Key="data/a.txt", Body=b"ALPHA")
    execution = engine.launch(LocationSpec(str(src)), s3loc(bucket), {}, store=store)
    with s3_requests() as calls:
        shards = engine.prepare(execution)
    assert calls.count("HeadObject") == 1, calls  # only the object that changed
    for shard in shards:
        engine.transfer(execution, shard["shard"])
    engine.finalize(execution)
    engine.verify(execution)
    report = engine.report(execution)
    assert report["Status"] == "SUCCESS" and report["FilesTransferred"] == 1, report  # a.txt, restored
    assert s3.get_object(Bucket=bucket, Key="data/a.txt")["Body"].read() == files["a.txt"]
    third = run_execution(str(src), s3loc(bucket), {}, store=store)
    assert third["FilesTransferred"] == 0, third


def test_tls_endpoint_behind_a_private_ca_from_the_connections_verify_bundle(tmp_path, monkeypatch):
    """An S3-compatible store over HTTPS with a private CA: the connection's ``verify`` CA bundle is
    trusted by the transport and by the manifest store on S3; without it the launch fails with a clear error."""
    import json

    from airflow_datasync.locations.s3 import settings as s3settings
    from tests.servers import start_seaweedfs

    server = start_seaweedfs(tls=True)
    try:
        monkeypatch.setenv("AIRFLOW_CONN_DATASYNC_TLS_S3", server.connection_uri_json())
        server.client().create_bucket(Bucket="tls-bucket")
        src = tmp_path / "src"
        src.mkdir()
        (src / "secure.txt").write_text("over https")
        back = tmp_path / "back"
        dest = LocationSpec("s3://tls-bucket/x", "datasync_tls_s3")
        assert run_execution(str(src), dest, {}, store=str(tmp_path / "store"))["Status"] == "SUCCESS"
        assert run_execution(dest, str(back), {}, store=str(tmp_path / "store"))["Status"] == "SUCCESS"
        assert (back / "secure.txt").read_text() == "over https"
        # The manifest store on the same TLS endpoint: the store's client trusts the same CA bundle.
        on_s3 = run_execution(str(src), LocationSpec("s3://tls-bucket/z", "datasync_tls_s3"), {},
                              store="s3://tls-bucket/manifests", store_conn_id="datasync_tls_s3")
        assert on_s3["Status"] == "SUCCESS" and on_s3["ReportUri"].startswith("s3://tls-bucket/manifests/"), on_s3
        assert pq.read_table(on_s3["ReportUri"].removeprefix("s3://"),
                             filesystem=Store.for_uri("s3://tls-bucket", "datasync_tls_s3").fs).num_rows == 1
        untrusting = json.loads(server.connection_uri_json())
        untrusting["extra"].pop("verify")
        monkeypatch.setenv("AIRFLOW_CONN_DATASYNC_TLS_S3_NOCA", json.dumps(untrusting))
        monkeypatch.setattr(s3settings, "_CACHE", {})
        with pytest.raises(LocationError, match="cannot reach S3|SSL|certificate"):
            run_execution(str(src), LocationSpec("s3://tls-bucket/y", "datasync_tls_s3_noca"), {},
                          store=str(tmp_path / "store"))
        with pytest.raises(LocationError, match="cannot reach S3|SSL|certificate"):
            Store.for_uri("s3://tls-bucket/manifests", "datasync_tls_s3_noca").read_bytes("tls-bucket/manifests/x")
    finally:
        server.stop()


def test_s3_source_reads_exactly_the_listed_version(tmp_path, s3, bucket):
    """Reads from S3 are pinned to the ETag PREPARING listed (If-Match): no HEAD before or after, and an
    object rewritten in between is reported, never copied half old, half new."""
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"src/f{i}.txt", Body=f"version 1 of {i}".encode())
    dst = tmp_path / "dst"
    execution = engine.launch(s3loc(bucket, "src"), LocationSpec(str(dst)), {}, store=str(tmp_path / "store"))
    shards = engine.prepare(execution)
    s3.put_object(Bucket=bucket, Key="src/f1.txt", Body=b"version 2, written after PREPARING")
    for shard in shards:
        with pytest.raises(Exception, match="changed at the source since PREPARING"):
            engine.transfer(execution, shard["shard"])
    report = engine.report(execution)
    assert report["Status"] == "ERROR" and "f1.txt" in report["ErrorDetail"]
    assert (dst / "f0.txt").read_text() == "version 1 of 0" and (dst / "f2.txt").read_text() == "version 1 of 2"
    assert not (dst / "f1.txt").exists()
    again = run_execution(s3loc(bucket, "src"), str(dst), {}, store=str(tmp_path / "store"))
    assert again["Status"] == "SUCCESS" and (dst / "f1.txt").read_text() == "version 2, written after PREPARING"


def test_point_in_time_verify_compares_listed_etags_and_still_catches_a_changed_object(tmp_path, s3, bucket):
    src = tmp_path / "src"
    files = make_tree(src)
    store = str(tmp_path / "store")
    assert run_execution(str(src), s3loc(bucket), {}, store=store)["Status"] == "SUCCESS"
    pit = {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}
    clean = run_execution(str(src), s3loc(bucket), pit, store=store)
    assert clean["Status"] == "SUCCESS" and clean["FilesVerified"] >= len(files)
    rows = {r["path"]: r for r in pq.read_table(clean["ReportUri"]).to_pylist()}
    assert rows["a.txt"]["checksum_algo"] == "md5-etag"
    # Same size, same metadata (so PREPARING skips it), other bytes: only a content check can tell.
    head = s3.head_object(Bucket=bucket, Key="data/dir/b.csv")
    s3.put_object(Bucket=bucket, Key="data/dir/b.csv", Body=os.urandom(head["ContentLength"]), Metadata=head["Metadata"])
    caught = run_execution(str(src), s3loc(bucket), pit, store=store)
    assert caught["Status"] == "ERROR" and caught["ErrorCode"] == "VerificationFailed"
    assert "dir/b.csv" in caught["ErrorDetail"]


def test_point_in_time_verify_with_nothing_copied_still_sees_changes_made_after_preparing(tmp_path, s3, bucket):
    """Nothing to copy, so nothing written between the two listings: VERIFYING still lists both sides again,
    since POINT_IN_TIME_CONSISTENT checks them as they are when it runs (docs/benchmarks.md, session 7): an
    object deleted, one rewritten under the same size and a source file added after PREPARING all fail."""
    src = tmp_path / "src"
    make_tree(src)
    store = str(tmp_path / "store")
    assert run_execution(str(src), s3loc(bucket), {}, store=store)["Status"] == "SUCCESS"
    execution = engine.launch(LocationSpec(str(src)), s3loc(bucket), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"},
                              store=store)
    assert engine.prepare(execution) == []
    engine.finalize(execution)
    s3.delete_object(Bucket=bucket, Key="data/a.txt")
    head = s3.head_object(Bucket=bucket, Key="data/dir/b.csv")
    s3.put_object(Bucket=bucket, Key="data/dir/b.csv", Body=os.urandom(head["ContentLength"]), Metadata=head["Metadata"])
    (src / "dir" / "new.txt").write_bytes(b"after PREPARING")
    summary = engine.verify(execution)
    rows = {r["path"]: r for r in pq.read_table(execution.verify_rows).to_pylist()}
    assert summary["failed"] == 3
    assert rows["a.txt"]["verify_status"] == "MISSING" and rows["dir/new.txt"]["verify_status"] == "MISSING"
    assert rows["dir/b.csv"]["verify_status"] == "MISMATCH"


def test_point_in_time_verify_of_a_tree_in_sync_reads_each_source_file_once_and_lists_the_rest(tmp_path, s3, bucket):
    """A run with nothing to copy: VERIFYING lists the destination (LIST pages, no HEAD or GET) and reads
    every source file once for its MD5; a file whose bytes changed under the same size and mtime is a
    MISMATCH."""
    src = tmp_path / "src"
    files = make_tree(src)
    store = str(tmp_path / "store")
    assert run_execution(str(src), s3loc(bucket), {}, store=store)["Status"] == "SUCCESS"
    pit = {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}
    execution = engine.launch(LocationSpec(str(src)), s3loc(bucket), pit, store=store)
    assert engine.prepare(execution) == []
    engine.finalize(execution)
    with s3_requests() as calls:
        summary = engine.verify(execution)
    assert summary["failed"] == 0 and set(calls) == {"ListObjectsV2"}, calls
    rows = {r["path"]: r for r in pq.read_table(execution.verify_rows).to_pylist()}
    for path, data in files.items():
        md5 = hashlib.md5(data).hexdigest()
        assert rows[path] == {"path": path, "verify_status": "VERIFIED", "checksum_algo": "md5-etag",
                              "src_checksum": md5, "dst_checksum": md5, "verify_error": None}
    assert list(rows) == sorted(rows)

    changed = src / "dir" / "b.csv"
    before = changed.stat()
    changed.write_bytes(os.urandom(before.st_size))
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))
    caught = run_execution(str(src), s3loc(bucket), pit, store=store)
    assert caught["Status"] == "ERROR" and caught["ErrorCode"] == "VerificationFailed"
    verify_rows = pq.read_table(caught["ExecutionUri"] + "/verify.parquet").to_pylist()
    bad = {r["path"]: r for r in verify_rows if r["verify_status"] != "VERIFIED"}
    assert list(bad) == ["dir/b.csv"] and bad["dir/b.csv"]["verify_status"] == "MISMATCH"
    # MD5s that differ are looked at again by CRC64NVME (an ETag of 32 hex digits may be no MD5: SSE-C).
    crcs = []
    for data in (changed.read_bytes(), files["dir/b.csv"]):
        hasher = checksum.new_hasher()
        hasher.update(data)
        crcs.append(hasher.hexdigest())
    assert [bad["dir/b.csv"]["src_checksum"], bad["dir/b.csv"]["dst_checksum"]] == crcs


def test_s3_source_metadata_comes_with_the_get_when_the_plan_needs_no_head(tmp_path, s3, bucket):
    """PREPARING HEADs only objects it must compare (same path and size at the destination); a new object's
    POSIX metadata arrives with its GET and is applied all the same."""
    for i in range(6):
        s3.put_object(Bucket=bucket, Key=f"src/f{i}.txt", Body=f"data {i}".encode(),
                      Metadata={"ds-mtime-ns": str(1_600_000_000_000_000_000 + i), "ds-mode": "600"})
    s3.put_object(Bucket=bucket, Key="src/link", Body=b"",
                  Metadata={"ds-type": "symlink", "ds-link-target": "f0.txt"})
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "f5.txt").write_text("data 5")  # same size as the object: compared, so HEADed
    execution = engine.launch(s3loc(bucket, "src"), LocationSpec(str(dst)), {}, store=str(tmp_path / "store"))
    with s3_requests() as calls:
        shards = engine.prepare(execution)
    assert calls.count("HeadObject") == 2, calls  # f5.txt (to compare) and the empty object (maybe a symlink)
    for shard in shards:
        engine.transfer(execution, shard["shard"])
    engine.finalize(execution)
    engine.verify(execution)
    report = engine.report(execution)
    assert report["Status"] == "SUCCESS", report
    for i in range(5):
        st = (dst / f"f{i}.txt").stat()
        assert st.st_mtime_ns == 1_600_000_000_000_000_000 + i and st.st_mode & 0o777 == 0o600
    assert os.readlink(dst / "link") == "f0.txt"
    # A second run compares every object (HEADs where the first run only read), point in time: all in sync.
    again = run_execution(s3loc(bucket, "src"), str(dst), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"},
                          store=str(tmp_path / "store"))
    assert again["Status"] == "SUCCESS" and again["FilesTransferred"] == 0, again


def test_metadata_learnt_from_gets_spares_the_next_run_its_heads(tmp_path, s3, bucket):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"src/f{i}.txt", Body=f"data {i}".encode(),
                      Metadata={"ds-mtime-ns": str(1_700_000_000_000_000_000 + i)})
    dst, store = tmp_path / "dst", str(tmp_path / "store")
    assert run_execution(s3loc(bucket, "src"), str(dst), {}, store=store)["Status"] == "SUCCESS"
    with s3_requests() as calls:
        again = run_execution(s3loc(bucket, "src"), str(dst), {}, store=store)
    assert again["Status"] == "SUCCESS" and again["FilesTransferred"] == 0, again
    assert calls.count("HeadObject") == 0 and calls.count("ListObjectsV2") >= 1, calls  # every object's metadata came with the first run's GETs


def test_listings_are_exact_and_200_errors_are_errors(s3, bucket):
    """Our client's listing (pages through ElementTree, keys URL-decoded) changes no result: keys, sizes,
    ETags and mtimes equal a plain boto3 client's; an ``<Error>`` body sent with 200 is a retryable error
    and a truncated listing is refused, never half-parsed."""
    from airflow_datasync.errors import TransientError
    from airflow_datasync.locations.s3 import sigv4
    from airflow_datasync.locations.s3.errors import s3_error

    names = ["f0", "f1", "with space/50% off+plus#hash&amp;.txt", "naïve café/日本語 ✓.txt", "tab\tname", "<lt>"]
    for i, name in enumerate(names):
        s3.put_object(Bucket=bucket, Key=f"data/{name}", Body=b"x" * i)
    loc = open_location(f"s3://{bucket}/data", CONN_ID)
    listed = {r["path"]: r["mtime_ns"] for b in loc.scan() for r in b.to_pylist()}
    expected = {o["Key"][5:]: int(o["LastModified"].timestamp() * 1_000_000_000)
                for o in s3.list_objects_v2(Bucket=bucket, Prefix="data/")["Contents"]}
    assert listed == expected and sorted(listed) == sorted(names)
    ours = loc.transport.list_page(bucket, "data/").contents
    plain = s3.list_objects_v2(Bucket=bucket, Prefix="data/")["Contents"]
    fields = ("Key", "Size", "ETag", "LastModified", "StorageClass")
    assert [{k: o.get(k) for k in fields} for o in ours] == [{k: o.get(k) for k in fields} for o in plain]

    decl = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    complete = decl + b"<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount></ListBucketResult>"
    assert sigv4.parse_listing(complete) is not None
    assert sigv4.parse_listing(complete[:-10]) is None
    error = decl + b"<Error><Code>SlowDown</Code></Error>"
    assert sigv4.error_code(error) == "SlowDown"
    assert isinstance(s3_error("s3://b/k", 200, sigv4.error_code(error)), TransientError)


def test_directory_markers_are_one_put_with_metadata_and_finalize_leaves_them(tmp_path, s3, bucket):
    """A marker is written once, with the directory's metadata; FINALIZE sends no request for it (objects
    written below a marker do not change it)."""
    src = tmp_path / "src"
    for d in ("a", "a/b", "c"):
        (src / d).mkdir(parents=True)
        (src / d / "f.txt").write_bytes(b"x")
    os.utime(src / "a" / "b", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    execution = engine.launch(LocationSpec(str(src)), s3loc(bucket), {}, store=str(tmp_path / "store"))
    shards = engine.prepare(execution)
    with s3_requests() as calls:
        for shard in shards:
            engine.transfer(execution, shard["shard"])
        marker_calls = list(calls)
        calls.clear()
        engine.finalize(execution)
    assert calls == [], calls  # FINALIZE: nothing to do for markers written with their metadata
    # One PUT per marker and per file: no HEAD, no second request for a marker's metadata.
    assert marker_calls == ["PutObject"] * 6, marker_calls
    head = s3.head_object(Bucket=bucket, Key="data/a/b/")
    # SeaweedFS drops metadata on markers (keeps_directory_metadata=False), so only check what it kept.
    if head.get("Metadata"):
        assert head["Metadata"]["ds-mtime-ns"] == str(1_600_000_000_000_000_000)
    engine.verify(execution)
    assert engine.report(execution)["Status"] == "SUCCESS"


@pytest.mark.parametrize("size", [2 * MULTIPART_THRESHOLD, MULTIPART_THRESHOLD + 1, 3 * MULTIPART_THRESHOLD - 1])
def test_multipart_part_boundaries_keep_bytes_and_full_object_crc(tmp_path, s3, bucket, size):
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(size)
    (src / "big.bin").write_bytes(data)
    summary = run_execution(str(src), s3loc(bucket), {}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    head = s3.head_object(Bucket=bucket, Key="data/big.bin", ChecksumMode="ENABLED")
    h = checksum.new_hasher()
    h.update(data)
    assert head["ContentLength"] == size and head["ChecksumCRC64NVME"] == h.base64()
    assert head["ETag"].strip('"').endswith(f"-{-(-size // MULTIPART_THRESHOLD)}")
    assert s3.get_object(Bucket=bucket, Key="data/big.bin")["Body"].read() == data
