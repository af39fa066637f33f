"""ManifestConfig with S3 (SeaweedFS): a manifest stored on S3, in DataSync's S3 form and in the native URI
form, picks a few objects of many; PREPARING sends no LIST request for the source, only a HEAD per listed
path (real server, real engine runs)."""

from __future__ import annotations

import pyarrow.parquet as pq

from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.locations.s3 import S3Location
from tests.locations.s3.conftest import CONN_ID, s3_requests


def _fill(s3, bucket: str, count: int = 40) -> None:
    for i in range(count):
        s3.put_object(Bucket=bucket, Key=f"data/obj{i:03d}.txt", Body=f"object {i}".encode())
    s3.put_object(Bucket=bucket, Key="data/sub/deeper/pick.json", Body=b'{"p": 1}')
    s3.put_object(Bucket=bucket, Key="lists/today.csv", Body=b"obj003.txt\nsub/deeper/pick.json\nmissing.txt\n")


def test_a_manifest_on_s3_copies_only_the_listed_objects_without_listing_the_source(tmp_path, s3, bucket,
                                                                                   monkeypatch):
    _fill(s3, bucket)

    def no_scan(self, *args, **kwargs):
        raise AssertionError("the S3 source was listed although a manifest names what to transfer")

    monkeypatch.setattr(S3Location, "scan", no_scan)
    dst = tmp_path / "dst"
    config = {"Action": "TRANSFER", "Format": "CSV", "Source": {"S3": {
        "S3BucketArn": f"arn:aws:s3:::{bucket}", "ManifestObjectPath": "lists/today.csv",
        "BucketAccessRoleArn": "arn:aws:iam::111122223333:role/manifest-reader"}}}
    with s3_requests() as sent:
        summary = run_execution(LocationSpec(f"s3://{bucket}/data", CONN_ID), LocationSpec(str(dst)),
                                {"ManifestConfig": config}, store=str(tmp_path / "store"))
    assert summary["Status"] == "ERROR"  # missing.txt is reported as an error entry
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()) == ["obj003.txt",
                                                                                     "sub/deeper/pick.json"]
    assert (dst / "sub/deeper/pick.json").read_bytes() == b'{"p": 1}'
    lists = [name for name in sent if "List" in name]
    # Launching checks the location (one LIST of at most one key); PREPARING lists nothing, whatever the count.
    assert len(lists) <= 1, sent
    assert sent.count("HeadObject") <= 10, sent  # a HEAD per listed path and parent, not per object


def test_a_local_source_with_a_manifest_stored_on_s3_by_uri(tmp_path, s3, bucket):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"n{i}.txt").write_text(str(i))
    s3.put_object(Bucket=bucket, Key="m/list.csv", Body=b"n4.txt\nn17.txt\n../n5.txt\n")
    config = {"Action": "TRANSFER", "Format": "CSV", "Source": {"Uri": f"s3://{bucket}/m/list.csv", "ConnId": CONN_ID}}
    summary = run_execution(str(src), LocationSpec(f"s3://{bucket}/copy", CONN_ID), {"ManifestConfig": config},
                            store=str(tmp_path / "store"))
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="copy/").get("Contents", []))
    assert keys == ["copy/n17.txt", "copy/n4.txt"], keys
    errors = {r["path"]: r["error"] for r in pq.read_table(summary["ReportUri"]).to_pylist() if r.get("error")}
    assert list(errors) == ["../n5.txt"] and "outside the source location" in errors["../n5.txt"]
