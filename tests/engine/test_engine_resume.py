"""Resuming an execution (``resume``, the launch task's ``resume_execution``): the stored partitions,
listings, manifest and journals are used as they are, so PREPARING lists nothing (counted: S3 LIST
requests of SeaweedFS, local scans) and TRANSFERRING redoes only what its journals do not hold."""

from __future__ import annotations

import pytest

from airflow_datasync.engine import (
    LocationSpec,
    finalize,
    launch,
    prepare,
    prepare_partition,
    report,
    resume,
    transfer,
    verify,
)
from airflow_datasync.options import OptionsError
from airflow_datasync.phases import scan
from tests.engine.test_engine_prepare_partitioned import build_destination, build_source


def count_scans(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = scan.scan_to

    def counting(execution, location, path, what, *args, **kwargs):
        calls.append(what)
        return real(execution, location, path, what, *args, **kwargs)

    monkeypatch.setattr(scan, "scan_to", counting)
    return calls


def rest_of_execution(execution, partitions: int) -> dict:
    for i in range(partitions):
        prepare_partition(execution, i)
    for shard in prepare(execution):
        transfer(execution, shard["shard"])
    finalize(execution)
    verify(execution)
    return report(execution)


@pytest.mark.parametrize("partitions", [1, 3])
def test_a_killed_execution_resumes_without_listing(tmp_path, store, monkeypatch, snapshot, partitions):
    src = build_source(tmp_path / "src")
    dst = build_destination(src, tmp_path / "dst")
    options = {"PreserveDeletedFiles": "REMOVE", "files_per_shard": 20, "prepare_partitions": partitions}
    spec = (LocationSpec(str(src)), LocationSpec(str(dst)))
    execution = launch(*spec, options, task_name="resumed", store=str(store))
    for i in range(partitions):
        prepare_partition(execution, i)
    shards = prepare(execution)
    assert len(shards) > 2
    transfer(execution, shards[0]["shard"])  # then the run was lost: the other shards never ran

    scans = count_scans(monkeypatch)
    again = resume(*spec, "latest", task_name="resumed", store=str(store))
    assert again == execution
    summary = rest_of_execution(again, partitions)
    assert scans == []  # PREPARING listed nothing: neither side, no partition
    assert summary["Status"] == "SUCCESS", summary
    assert summary["TaskExecutionId"] == execution.execution_id
    assert summary["FilesTransferred"] == summary["EstimatedFilesToTransfer"]
    assert summary["FilesDeleted"] == 6  # 4 below t5/ and gone/, and two excluded nowhere here
    assert not (dst / "gone").exists() and (dst / "t3").is_dir()


def test_resume_refuses_another_pair_of_locations_or_an_unknown_execution(tmp_path, store):
    src = build_source(tmp_path / "src")
    dst = build_destination(src, tmp_path / "dst")
    launch(LocationSpec(str(src)), LocationSpec(str(dst)), {}, task_name="resumed", store=str(store))
    with pytest.raises(OptionsError, match="not these locations"):
        resume(LocationSpec(str(src)), LocationSpec(str(tmp_path)), "latest", task_name="resumed", store=str(store))
    with pytest.raises(OptionsError, match="no such execution"):
        resume(LocationSpec(str(src)), LocationSpec(str(dst)), "exec-20990101T000000000000-00000000",
               task_name="resumed", store=str(store))
    with pytest.raises(OptionsError, match="has no execution"):
        resume(LocationSpec(str(src)), LocationSpec(str(dst)), "latest", task_name="other", store=str(store))


def test_s3_resume_sends_no_list_request_before_transferring(s3, bucket, store, tmp_path):
    from tests.fixtures_servers import S3_CONN_ID
    from tests.locations.s3.conftest import s3_requests

    src = build_source(tmp_path / "src")
    spec = (LocationSpec(str(src)), LocationSpec(f"s3://{bucket}/dst", S3_CONN_ID))
    execution = launch(*spec, {"files_per_shard": 50, "prepare_partitions": 2}, task_name="s3-resumed", store=str(store))
    for i in range(2):
        prepare_partition(execution, i)
    shards = prepare(execution)
    transfer(execution, shards[0]["shard"])

    with s3_requests() as sent:
        again = resume(*spec, execution.execution_id, task_name="s3-resumed", store=str(store))
        for i in range(2):
            prepare_partition(again, i)
        assert prepare(again) == shards
    assert "ListObjectsV2" not in sent, sent
    for shard in shards:
        transfer(again, shard["shard"])
    finalize(again)
    verify(again)
    summary = report(again)
    assert summary["Status"] == "SUCCESS", summary
