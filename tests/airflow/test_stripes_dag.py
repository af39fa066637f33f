"""Airflow runs a striped file (``dag.test()``): each range of a 48 MiB file is a mapped TRANSFERRING task
instance of its own beside the shard of the small files, FINALIZE publishes the file whole and VERIFYING
checks it, towards a local folder, S3 (with an S3 manifest store) and an SMB share."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from airflow_datasync import checksum
from tests.airflow.test_sync_dag import latest_report, load_dag, states

MiB = 1024**2
OPTIONS = {"stripe_threshold_bytes": 32 * MiB, "stripe_bytes": 16 * MiB, "VerifyMode": "POINT_IN_TIME_CONSISTENT"}


def _source(root: Path) -> bytes:
    big = os.urandom(48 * MiB)
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "big.bin").write_bytes(big)
    for i in range(5):
        (root / f"small-{i}.txt").write_text(f"small {i}")
    return big


def _crc(data: bytes) -> str:
    h = checksum.new_hasher()
    h.update(data)
    return h.hexdigest()


def _ranges_ran_as_their_own_task_instances(run) -> None:
    transfers = [ti for ti in run.get_task_instances() if ti.task_id == "sync.transfer"]
    assert len(transfers) == 4, [(ti.map_index, ti.state) for ti in transfers]  # 1 shard + 3 ranges
    assert {str(ti.state) for ti in transfers} == {"success"}
    assert sorted(ti.map_index for ti in transfers) == [0, 1, 2, 3]
    labels = sorted(ti.rendered_map_index or "" for ti in transfers)
    assert sum(" · videos/big.bin @ " in label for label in labels) == 3, labels  # each range says so
    for phase in ("launch", "prepare", "finalize", "verify", "report"):
        assert states(run)[f"sync.{phase}"] == ["success"], (phase, states(run))


@pytest.fixture
def local_dag(airflow_db, dags_folder):
    return load_dag(dags_folder, "datasync_test_dags.py", "datasync_test_sync")


def test_local_to_local(local_dag, airflow_db, tmp_path):
    big = _source(tmp_path / "src")
    run = local_dag.test(run_conf={"source": str(tmp_path / "src"), "destination": str(tmp_path / "dst"),
                                   "options": OPTIONS})
    assert str(run.state) == "success", states(run)
    _ranges_ran_as_their_own_task_instances(run)
    assert (tmp_path / "dst" / "videos" / "big.bin").read_bytes() == big
    assert not list((tmp_path / "dst").rglob(".~ds-*"))
    report = latest_report(airflow_db / "executions", "test-sync")
    assert report["Status"] == "SUCCESS" and report["FilesTransferred"] == 7 and report["FilesVerified"] == 7


def test_local_to_s3_with_an_s3_store(airflow_db, dags_folder, tmp_path, s3_server, s3, bucket):
    dag = load_dag(dags_folder, "datasync_s3_test_dags.py", "datasync_test_s3_sync")
    big = _source(tmp_path / "src")
    run = dag.test(run_conf={"source": str(tmp_path / "src"), "destination": f"s3://{bucket}/data",
                             "store": f"s3://{bucket}/manifests", "options": OPTIONS})
    assert str(run.state) == "success", states(run)
    _ranges_ran_as_their_own_task_instances(run)
    head = s3.head_object(Bucket=bucket, Key="data/videos/big.bin", ChecksumMode="ENABLED")
    assert base64.b64decode(head["ChecksumCRC64NVME"]).hex() == _crc(big)
    assert s3.get_object(Bucket=bucket, Key="data/videos/big.bin")["Body"].read() == big
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="manifests/")
            for o in page.get("Contents", [])]
    assert sum(k.endswith(".json") and "/stripes/range-" in k for k in keys) == 3  # each range's record
    assert any(k.endswith("/stripes.json") for k in keys)


def test_local_to_smb(airflow_db, dags_folder, tmp_path, smb_folder):
    dag = load_dag(dags_folder, "datasync_smb_test_dags.py", "datasync_test_smb_sync")
    big = _source(tmp_path / "src")
    folder = smb_folder()
    run = dag.test(run_conf={"source": str(tmp_path / "src"), "destination": folder.uri, "options": OPTIONS})
    assert str(run.state) == "success", states(run)
    _ranges_ran_as_their_own_task_instances(run)
    assert (folder.disk / "videos" / "big.bin").read_bytes() == big
    assert not list(folder.disk.rglob(".~ds-*"))


def test_ranges_fit_max_map_length(local_dag, airflow_db, tmp_path, monkeypatch):
    """Airflow refuses to map over more than [core] max_map_length: with 3, one shard and three ranges
    would fail PREPARING; the stripe is doubled instead (one shard and two ranges)."""
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "3")
    big = _source(tmp_path / "src")
    run = local_dag.test(run_conf={"source": str(tmp_path / "src"), "destination": str(tmp_path / "dst"),
                                   "options": OPTIONS})
    assert str(run.state) == "success", states(run)
    transfers = [ti for ti in run.get_task_instances() if ti.task_id == "sync.transfer"]
    assert len(transfers) == 3 and sum(" · videos/big.bin @ " in (ti.rendered_map_index or "") for ti in transfers) == 2
    assert (tmp_path / "dst" / "videos" / "big.bin").read_bytes() == big
