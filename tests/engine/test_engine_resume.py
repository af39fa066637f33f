"""Resuming an execution from its stored plan and journals (issue 15): no PREPARING listing is repeated.

The first cases copy from an S3 prefix on SeaweedFS, so every listing is a ListObjectsV2 request the test
counts (the transport's observers); the destination and the store are local, so nothing else lists the
source. The last ones resume executions PREPARED in partitions (the mapped ``prepare_partition`` tasks):
local scans are counted, and S3 LIST requests with the destination on SeaweedFS.
"""

from __future__ import annotations

import pytest

from airflow_datasync.engine import (
    LocationSpec,
    finalize,
    launch,
    prepare,
    prepare_partition,
    report,
    run_execution,
    transfer,
    verify,
)
from airflow_datasync.locations import LocationError
from airflow_datasync.phases import scan
from tests.engine.test_engine_prepare_partitioned import build_destination, build_source
from tests.fixtures_servers import S3_CONN_ID
from tests.locations.s3.conftest import s3_requests

FILES = {f"d{d}/f{i:02d}.txt": f"file {d}/{i}\n".encode() * (i + 1) for d in range(3) for i in range(10)}
#: 30 files (S3 keeps no directories), 8 entries a shard: 4 shards.
OPTIONS = {"files_per_shard": 8}


@pytest.fixture
def source(s3, bucket) -> LocationSpec:
    for key, body in FILES.items():
        s3.put_object(Bucket=bucket, Key=f"src/{key}", Body=body)
    return LocationSpec(f"s3://{bucket}/src", S3_CONN_ID)


def lists(sent: list[str]) -> int:
    return sum(1 for op in sent if op.startswith("ListObjects"))


def checks_lists(source: LocationSpec) -> int:
    """The ListObjectsV2 requests LAUNCHING's check of the source sends (it proves the prefix readable)."""
    with s3_requests() as sent, source.open() as loc:
        loc.check(writable=False)
    return lists(sent)


def half_done(source: LocationSpec, dst: str, store: str):
    """An execution that planned, copied its first two shards and stopped (its report says ERROR)."""
    with s3_requests() as sent:
        execution = launch(source, LocationSpec(dst), OPTIONS, task_name="resume", store=store)
        shards = prepare(execution)
    assert lists(sent) > checks_lists(source), "PREPARING lists the source"
    assert len(shards) == 4
    for shard in shards[:2]:
        transfer(execution, shard["shard"])
    finalize(execution)
    verify(execution)
    assert report(execution)["Status"] == "ERROR"
    return execution, shards


def assert_converged(summary: dict, dst) -> None:
    assert summary["Status"] == "SUCCESS", summary["ErrorDetail"]
    assert {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()} == FILES
    # Each entry counted once: the resumed shards' entries come from their journals, not copied twice.
    assert summary["FilesTransferred"] == len(FILES)
    assert summary["FilesVerified"] == len(FILES)
    assert summary["ShardsCompleted"] == summary["ShardCount"] == 4


def test_a_resumed_execution_lists_nothing_and_converges(source, tmp_path):
    dst, store = tmp_path / "dst", str(tmp_path / "store")
    execution, _ = half_done(source, str(dst), store)
    with s3_requests() as sent:
        summary = run_execution(source, LocationSpec(str(dst)), OPTIONS, task_name="resume", store=store,
                                resume=execution.execution_id)
    # Only LAUNCHING's check of the source lists (a page of at most one key); PREPARING lists nothing.
    assert lists(sent) == checks_lists(source), sent
    assert summary["TaskExecutionId"] == execution.execution_id
    assert summary["FilesResumed"] == 16  # the two shards copied before
    assert_converged(summary, dst)


def test_latest_resumes_the_newest_planned_execution(source, tmp_path):
    dst, store = tmp_path / "dst", str(tmp_path / "store")
    execution, _ = half_done(source, str(dst), store)
    summary = run_execution(source, LocationSpec(str(dst)), OPTIONS, task_name="resume", store=store, resume="latest")
    assert summary["TaskExecutionId"] == execution.execution_id
    assert_converged(summary, dst)


def test_a_cleared_prepare_hands_out_the_stored_plan_without_listing(source, tmp_path):
    """Clearing PREPARING with the shards (an Airflow clear of the whole group but LAUNCHING) re-runs it:
    it finds its plan and returns the same shards, listing nothing, so the journals still index the manifest."""
    dst, store = tmp_path / "dst", str(tmp_path / "store")
    execution, shards = half_done(source, str(dst), store)
    with s3_requests() as sent:
        again = prepare(execution)
        for shard in again:
            transfer(execution, shard["shard"])
        finalize(execution)
        verify(execution)
        summary = report(execution)
    assert lists(sent) == 0, sent
    assert again == shards
    assert_converged(summary, dst)


def test_resume_refuses_what_it_cannot_carry_on(source, tmp_path):
    dst, store = tmp_path / "dst", str(tmp_path / "store")
    execution, _ = half_done(source, str(dst), store)
    other = tmp_path / "other"
    with pytest.raises(LocationError, match="keeps its two locations"):
        launch(source, LocationSpec(str(other)), OPTIONS, task_name="resume", store=store, resume=execution.execution_id)
    with pytest.raises(LocationError, match="no execution"):
        launch(source, LocationSpec(str(dst)), OPTIONS, task_name="resume", store=store, resume="exec-19700101T000000000000-00000000")
    with pytest.raises(LocationError, match="no execution of task"):
        launch(source, LocationSpec(str(dst)), OPTIONS, task_name="never-ran", store=store, resume="latest")
    dry = launch(source, LocationSpec(str(dst)), {**OPTIONS, "dry_run": True}, task_name="dry", store=store)
    assert prepare(dry) == []
    with pytest.raises(LocationError, match="dry run"):
        launch(source, LocationSpec(str(dst)), OPTIONS, task_name="dry", store=store, resume=dry.execution_id)
    unplanned = launch(source, LocationSpec(str(dst)), OPTIONS, task_name="unplanned", store=store)
    with pytest.raises(LocationError, match="never completed PREPARING"):
        launch(source, LocationSpec(str(dst)), OPTIONS, task_name="unplanned", store=store, resume=unplanned.execution_id)
    assert not other.exists()


def count_scans(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = scan.scan_to

    def counting(execution, location, path, what, *args, **kwargs):
        calls.append(what)
        return real(execution, location, path, what, *args, **kwargs)

    monkeypatch.setattr(scan, "scan_to", counting)
    return calls


def rest_of_execution(execution, partitions: int) -> dict:
    """The DAG's tasks after LAUNCHING, run in turn: the mapped PREPARING ones first."""
    for i in range(partitions):
        prepare_partition(execution, i)
    for shard in prepare(execution):
        transfer(execution, shard["shard"])
    finalize(execution)
    verify(execution)
    return report(execution)


@pytest.mark.parametrize("partitions", [1, 3])
def test_a_killed_partitioned_execution_resumes_without_listing(tmp_path, store, monkeypatch, partitions):
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
    again = launch(*spec, options, task_name="resumed", store=str(store), resume="latest")
    assert again.execution_id == execution.execution_id
    summary = rest_of_execution(again, partitions)
    assert scans == []  # PREPARING listed nothing: neither side, no partition
    assert summary["Status"] == "SUCCESS", summary
    assert summary["TaskExecutionId"] == execution.execution_id
    assert summary["FilesTransferred"] == summary["EstimatedFilesToTransfer"]
    assert summary["FilesDeleted"] == 6  # 4 below t5/ and gone/, and two excluded nowhere here
    assert not (dst / "gone").exists() and (dst / "t3").is_dir()


def test_s3_partitioned_resume_sends_no_list_request_before_transferring(s3, bucket, store, tmp_path):
    src = build_source(tmp_path / "src")
    spec = (LocationSpec(str(src)), LocationSpec(f"s3://{bucket}/dst", S3_CONN_ID))
    options = {"files_per_shard": 50, "prepare_partitions": 2}
    execution = launch(*spec, options, task_name="s3-resumed", store=str(store))
    for i in range(2):
        prepare_partition(execution, i)
    shards = prepare(execution)
    transfer(execution, shards[0]["shard"])

    again = launch(*spec, options, task_name="s3-resumed", store=str(store), resume=execution.execution_id)
    with s3_requests() as sent:  # the PREPARING tasks of the resumed run: the stored plan, nothing listed
        for i in range(2):
            prepare_partition(again, i)
        assert prepare(again) == shards
    assert lists(sent) == 0, sent
    for shard in shards:
        transfer(again, shard["shard"])
    finalize(again)
    verify(again)
    summary = report(again)
    assert summary["Status"] == "SUCCESS", summary
