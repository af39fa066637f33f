"""The manifest store's view of S3 (``locations/s3/filesystem.py``): a pyarrow file system over the S3
backend's transport, on SeaweedFS."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from airflow_datasync import checksum
from airflow_datasync.locations.s3 import PART_SIZE, store_filesystem
from airflow_datasync.manifest import Store
from tests.locations.s3.conftest import CONN_ID, s3_requests


def test_large_files_are_uploaded_whole_and_read_by_ranges(s3, bucket):
    """Above PART_SIZE an output stream becomes a multipart upload with the whole object's CRC64NVME,
    visible only once closed; a large Parquet file is read back through ranged GETs pinned to its ETag."""
    fs = store_filesystem(CONN_ID)
    data = os.urandom(2 * PART_SIZE + 4321)
    with s3_requests() as sent, fs.open_output_stream(f"{bucket}/m/blob.bin") as out:
        for i in range(0, len(data), 1 << 20):
            out.write(data[i:i + (1 << 20)])
        assert "ListObjectsV2" not in sent and not s3.list_objects_v2(Bucket=bucket, Prefix="m/").get("Contents")
    assert sent.count("UploadPart") == 3 and sent[-1] == "CompleteMultipartUpload", sent
    head = s3.head_object(Bucket=bucket, Key="m/blob.bin", ChecksumMode="ENABLED")
    whole = checksum.new_hasher()
    whole.update(data)
    assert head["ChecksumCRC64NVME"] == whole.base64()
    with fs.open_input_stream(f"{bucket}/m/blob.bin") as fh:
        assert fh.read() == data

    table = pa.table({"n": pa.array(range(3_000_000), pa.int64()), "s": [f"row {i % 977}" for i in range(3_000_000)]})
    with fs.open_output_stream(f"{bucket}/m/big.parquet") as out:
        pq.write_table(table, out, compression="none")
    assert fs.get_file_info(f"{bucket}/m/big.parquet").size > 8 * 1024 * 1024
    with s3_requests() as sent:
        back = pq.read_table(f"{bucket}/m/big.parquet", filesystem=fs, columns=["n"])
    assert back.column("n").equals(table.column("n")) and "GetObject" in sent, sent


def test_listing_info_and_deletion_follow_the_keys(s3, bucket):
    for key in ("st/a/x.json", "st/a/b/y.json", "st/c.json"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    fs = store_filesystem(CONN_ID)
    flat = fs.get_file_info(pafs.FileSelector(f"{bucket}/st"))
    assert [(i.path, i.type) for i in flat] == [(f"{bucket}/st/a", pafs.FileType.Directory),
                                               (f"{bucket}/st/c.json", pafs.FileType.File)]
    deep = {i.path: i.type for i in fs.get_file_info(pafs.FileSelector(f"{bucket}/st", recursive=True))}
    assert deep[f"{bucket}/st/a/b"] == pafs.FileType.Directory and deep[f"{bucket}/st/a/b/y.json"] == pafs.FileType.File
    assert fs.get_file_info(f"{bucket}/st/a").type == pafs.FileType.Directory
    assert fs.get_file_info(f"{bucket}/st/none").type == pafs.FileType.NotFound
    assert fs.get_file_info(pafs.FileSelector(f"{bucket}/st/none", allow_not_found=True)) == []
    with pytest.raises(FileNotFoundError):
        fs.get_file_info(pafs.FileSelector(f"{bucket}/st/none"))
    store = Store.for_uri(f"s3://{bucket}/st", CONN_ID)
    assert store.read_bytes(f"{bucket}/st/c.json") == b"{}" and store.read_bytes(f"{bucket}/st/gone.json") is None
    fs.delete_dir(f"{bucket}/st/a")
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="st/")["Contents"]) == ["st/c.json"]
