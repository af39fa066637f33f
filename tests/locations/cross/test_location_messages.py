"""The shape of the messages a new user reads first: a refused location names its URI once (not the URI
and then the same path again) and says what to fix; counts agree with their noun ("1 entry", never
"1 entries"). Real locations: local paths, SeaweedFS S3 and the private smbd."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec
from airflow_datasync.locations import LocationError
from airflow_datasync.units import counted, entries
from tests.fixtures_servers import S3_CONN_ID

FIX_WORDS = ("create", "fix", "mount", "give", "set", "share the folder")


def refusal(source: LocationSpec, destination: LocationSpec, store: Path) -> str:
    with pytest.raises(LocationError) as info:
        engine.launch(source, destination, store=str(store))
    return str(info.value)


def assert_names_once(message: str, uri: str) -> None:
    assert message.startswith(f"{uri}: "), message
    path = uri.split("://", 1)[-1].split("/", 1)[-1]  # the path part of a URI, or the whole local path
    assert message.count(path) == 1, message
    assert any(word in message.lower() for word in FIX_WORDS), message


def test_local_refusals_name_the_path_once(tmp_path):
    src, store = tmp_path / "src", tmp_path / "store"
    src.mkdir()
    (tmp_path / "a-file").write_text("x")
    dst = LocationSpec(str(tmp_path / "dst"))
    for uri in (str(tmp_path / "missing"), f"file://{tmp_path}/missing", str(tmp_path / "a-file")):
        assert_names_once(refusal(LocationSpec(uri), dst, store), uri)
    no_parent = str(tmp_path / "no-parent" / "dst")
    message = refusal(LocationSpec(str(src)), LocationSpec(no_parent), store)
    assert_names_once(message, no_parent)
    assert "parent" in message
    under_proc = "/proc/datasync-cannot-create"  # the parent exists, mkdir fails: refused, not a traceback
    assert_names_once(refusal(LocationSpec(str(src)), LocationSpec(under_proc), store), under_proc)


def test_s3_refusals_name_the_location_once(tmp_path, bucket):
    src, store = tmp_path / "src", tmp_path / "store"
    src.mkdir()
    missing_bucket = f"s3://datasync-no-such-bucket-{bucket}/prefix"
    message = refusal(LocationSpec(str(src)), LocationSpec(missing_bucket, S3_CONN_ID), store)
    assert_names_once(message, missing_bucket)
    assert "bucket does not exist" in message
    uncredentialed = f"s3://{bucket}/prefix"
    message = refusal(LocationSpec(uncredentialed, "datasync_no_such_aws_conn"), LocationSpec(str(tmp_path / "d")), store)
    assert message.startswith(f"{uncredentialed}: ") and "datasync_no_such_aws_conn" in message, message


def test_smb_refusals_tell_a_missing_share_from_a_missing_folder(tmp_path, smb_folder):
    store, local = tmp_path / "store", LocationSpec(str(tmp_path / "dst"))
    folder = smb_folder(create=False)
    message = refusal(LocationSpec(folder.uri, folder.conn_id), local, store)
    assert_names_once(message, folder.uri)
    assert "folder does not exist" in message
    no_share = folder.uri.replace("/data/", "/no-such-share/")
    message = refusal(LocationSpec(no_share, folder.conn_id), local, store)
    assert_names_once(message, no_share)
    assert "no share 'no-such-share'" in message
    message = refusal(LocationSpec(folder.uri, "datasync_no_such_smb_conn"), local, store)
    assert message.startswith(f"{folder.uri}: ") and "'datasync_no_such_smb_conn'" in message and "create it" in message
    (tmp_path / "src").mkdir()
    deeper = folder.uri + "/deeper"
    message = refusal(LocationSpec(str(tmp_path / "src")), LocationSpec(deeper, folder.conn_id), store)
    assert_names_once(message, deeper)
    assert "parent" in message or "inside an existing one" in message


def test_counts_agree_with_their_noun():
    assert entries(1) == "1 entry" and entries(2) == "2 entries" and entries(0) == "0 entries"
    assert counted(1, "shard") == "1 shard" and counted(1500, "file") == "1,500 files"
    assert counted(1, "mismatch", "mismatches") == "1 mismatch"


def test_a_report_with_one_failure_says_1_entry(tmp_path):
    """VERIFYING finds the one file changed behind its back: the ErrorDetail counts it in the singular."""
    src, dst, store = tmp_path / "src", tmp_path / "dst", tmp_path / "store"
    src.mkdir()
    (src / "a.txt").write_text("a")
    (src / "b.txt").write_text("b")
    execution = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"},
                              store=str(store))
    for shard in engine.prepare(execution):
        engine.transfer(execution, shard["shard"])
    engine.finalize(execution)
    (dst / "a.txt").write_text("changed after the copy")
    engine.verify(execution)
    summary = engine.report(execution)
    assert summary["Status"] == "ERROR" and summary["ErrorCode"] == "VerificationFailed", summary
    assert re.search(r"\b1 entry failed verification", summary["ErrorDetail"]), summary["ErrorDetail"]
    assert not re.search(r"\b1 (entries|shards|files)\b", summary["ErrorDetail"])


def test_the_cli_refuses_a_missing_source_in_one_line(tmp_path, capsys):
    """``airflow-datasync run /missing /tmp/x``, as a new user first typed it."""
    from airflow_datasync.cli import main

    missing = str(tmp_path / "missing")
    assert main(["run", missing, str(tmp_path / "x"), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {missing}: ") and err.count(missing) == 1 and "\n" not in err, err
    assert not (tmp_path / "store").exists()
