"""The extras rule through real runs: a copy carries the extras both sides declare (source ``extras_read``,
destination ``extras_write``), gated by the options that govern them, and drops the others. SMB → SMB keeps
attributes and the security descriptor (tests/locations/smb/test_smb_sync.py), S3 → S3 by server-side copy
keeps user metadata and tags (tests/locations/s3/test_s3_location.py); here: S3 → S3 streamed through this
process, and the pairs across protocols that must drop what the other side cannot hold."""

from __future__ import annotations

import json
import os

import pytest

from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.locations import open_location
from airflow_datasync.locations.base import (
    S3_TAGS,
    S3_USER_METADATA,
    SMB_ATTRIBUTES,
    SMB_CREATION_NS,
    SMB_SECURITY_DESCRIPTOR,
    SMB_SECURITY_FLAGS,
)
from airflow_datasync.options import TaskOptions
from airflow_datasync.phases.transfer import copied_extras
from tests.fixtures_servers import S3_CONN_ID

#: The same SeaweedFS through an endpoint spelt otherwise: no server-side copy between the two
#: connections, so the bytes and the extras pass through the copy.
OTHER_S3_CONN_ID = "datasync_test_s3_other_endpoint"
HIDDEN = 0x2
SMB_EXTRAS = {SMB_CREATION_NS, SMB_ATTRIBUTES, SMB_SECURITY_DESCRIPTOR, SMB_SECURITY_FLAGS}


@pytest.fixture
def other_endpoint(s3_server, monkeypatch):
    conn = json.loads(s3_server.connection_uri_json())
    conn["extra"]["endpoint_url"] = conn["extra"]["endpoint_url"].rstrip("/") + "/"
    monkeypatch.setenv(f"AIRFLOW_CONN_{OTHER_S3_CONN_ID.upper()}", json.dumps(conn))
    return OTHER_S3_CONN_ID


def seed_s3(s3, bucket: str, prefix: str) -> None:
    s3.put_object(Bucket=bucket, Key=f"{prefix}/report.pdf", Body=b"%PDF", Metadata={"owner": "finance"},
                  Tagging="project=apollo")


def test_copied_extras_are_what_both_sides_declare_and_the_options_allow(smb_folder, bucket, tmp_path):
    smb = open_location(smb_folder().uri, smb_folder().conn_id)
    s3 = open_location(f"s3://{bucket}/x", S3_CONN_ID)
    local = open_location(str(tmp_path))
    defaults = TaskOptions()
    assert copied_extras(smb, smb, defaults) == SMB_EXTRAS
    assert copied_extras(smb, smb, TaskOptions(Mtime="NONE", Atime="NONE")) == SMB_EXTRAS - {SMB_CREATION_NS}
    assert copied_extras(smb, smb, TaskOptions(SecurityDescriptorCopyFlags="NONE")) == {SMB_CREATION_NS,
                                                                                          SMB_ATTRIBUTES}
    assert copied_extras(s3, s3, defaults) == {S3_USER_METADATA, S3_TAGS}
    assert copied_extras(s3, s3, TaskOptions(ObjectTags="NONE")) == {S3_USER_METADATA}
    for src, dst in ((s3, smb), (smb, s3), (local, s3), (s3, local), (local, smb), (smb, local)):
        assert copied_extras(src, dst, defaults) == frozenset(), (src, dst)


@pytest.mark.parametrize("object_tags", ["PRESERVE", "NONE"])
def test_s3_to_s3_streamed_keeps_user_metadata_and_tags_as_asked(s3, bucket, other_endpoint, tmp_path, object_tags):
    seed_s3(s3, bucket, "from")
    src, dst = LocationSpec(f"s3://{bucket}/from", S3_CONN_ID), LocationSpec(f"s3://{bucket}/to", other_endpoint)
    assert not dst.open().can_copy_from(src.open())  # the copy streams, it is not the server's
    summary = run_execution(src, dst, {"ObjectTags": object_tags}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    assert s3.head_object(Bucket=bucket, Key="to/report.pdf")["Metadata"]["owner"] == "finance"
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key="to/report.pdf")["TagSet"]}
    assert tags == ({"project": "apollo"} if object_tags == "PRESERVE" else {})


def test_s3_to_smb_drops_the_s3_extras(s3, bucket, smb_folder, tmp_path):
    seed_s3(s3, bucket, "from")
    dst = smb_folder()
    summary = run_execution(LocationSpec(f"s3://{bucket}/from", S3_CONN_ID), LocationSpec(dst.uri, dst.conn_id),
                            {"ObjectTags": "PRESERVE"}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    assert (dst.disk / "report.pdf").read_bytes() == b"%PDF"
    stat = open_location(dst.uri, dst.conn_id).stat("report.pdf")
    assert set(stat.extras) == {SMB_CREATION_NS, SMB_ATTRIBUTES}  # its own, nothing of the S3 object's


def test_smb_to_s3_drops_the_smb_extras(s3, bucket, smb_folder, tmp_path):
    src = smb_folder()
    (src.disk / "a.txt").write_bytes(b"alpha")
    source = open_location(src.uri, src.conn_id)
    source._set_basic("a.txt", attributes=HIDDEN)
    assert source.stat("a.txt").extras[SMB_ATTRIBUTES] & HIDDEN
    summary = run_execution(LocationSpec(src.uri, src.conn_id), LocationSpec(f"s3://{bucket}/to", S3_CONN_ID),
                            {"SecurityDescriptorCopyFlags": "OWNER_DACL"}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    head = s3.head_object(Bucket=bucket, Key="to/a.txt")
    # Only our POSIX metadata (ds-*, and rclone's mtime): no attributes, creation time or descriptor.
    assert all(k.startswith("ds-") or k == "mtime" for k in head["Metadata"]), head["Metadata"]
    assert not s3.get_object_tagging(Bucket=bucket, Key="to/a.txt")["TagSet"]
    assert os.path.exists(src.disk / "a.txt")
