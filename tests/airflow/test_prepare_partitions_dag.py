"""Airflow runs PREPARING as mapped tasks (``dag.test()``): one ``prepare_partition`` per partition of the
top-level names, each listing only its own names, then ``prepare`` collecting them; the result is the
result of one listing (same report counters, same destination), deletions and the shard cap included.
An execution in one partition skips the mapped task (mapped over nothing) and ``prepare`` lists it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from airflow_datasync.locations.base import LISTING_SCHEMA
from airflow_datasync.manifest import ExecutionDir
from airflow_datasync.phases.key_space import part_file, read_partitions
from tests.airflow.test_sync_dag import latest_report, load_dag, make_tree, states, tree
from tests.locations.s3.test_s3_airflow import objects, reports

#: Counters that say what an execution did, equal however PREPARING was split.
COUNTERS = ("EstimatedFilesToTransfer", "EstimatedBytesToTransfer", "EstimatedFilesToDelete", "FilesPrepared",
            "FilesTransferred", "BytesWritten", "FilesDeleted", "FilesSkipped", "FilesVerified", "Status")


def stale_copy(src: Path, dst: Path) -> None:
    """A destination that went stale below several top-level names."""
    shutil.copytree(src, dst, symlinks=True)
    (dst / "dir0" / "sub0" / "file 0 ✓.txt").write_bytes(b"changed")
    shutil.rmtree(dst / "dir2")
    for extra in ("dir1/old.txt", "dir3/sub2/old.txt", "gone/deep/x.txt", "old-top.txt"):
        (dst / extra).parent.mkdir(parents=True, exist_ok=True)
        (dst / extra).write_text("only at the destination")


def counters(report: dict) -> dict:
    return {k: report[k] for k in COUNTERS}


def test_mapped_prepare_equals_one_listing_with_deletions(airflow_db, dags_folder, tmp_path):
    dag = load_dag(dags_folder, "datasync_test_dags.py", "datasync_test_sync")
    src = tmp_path / "src"
    make_tree(src, files=40)
    options = {"files_per_shard": 10, "PreserveDeletedFiles": "REMOVE"}
    results = {}
    for parts in (1, 3):
        dst = tmp_path / f"dst{parts}"
        stale_copy(src, dst)
        run = dag.test(run_conf={"source": str(src), "destination": str(dst),
                                 "options": {**options, "prepare_partitions": parts}})
        st = states(run)
        assert str(run.state) == "success", st
        # One partition: mapped over nothing (skipped), and prepare lists both trees itself.
        assert st["sync.prepare_partition"] == (["success"] * parts if parts > 1 else ["skipped"]), st
        assert st["sync.prepare"] == ["success"]
        report = latest_report(airflow_db / "executions", "test-sync")
        assert tree(dst) == tree(src)
        results[parts] = (report, st)
    one, three = results[1][0], results[3][0]
    assert counters(three) == counters(one) and one["FilesDeleted"] == 6  # 3 files, gone/, gone/deep/, old-top.txt
    assert len(results[3][1]["sync.transfer"]) == three["ShardCount"] == one["ShardCount"]

    execution = ExecutionDir(three["ExecutionUri"])
    names = read_partitions(execution)
    assert len(names) == 3
    for i, part in enumerate(names):  # each partition task listed only its own top-level names
        for side in ("source", "destination"):
            listed = execution.read_table(part_file(execution, i, f"{side}.parquet"), LISTING_SCHEMA)
            assert {p.split("/", 1)[0] for p in listed["path"].to_pylist()} <= set(part)


def test_shards_of_all_partitions_fit_max_map_length(airflow_db, dags_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "3")
    dag = load_dag(dags_folder, "datasync_test_dags.py", "datasync_test_sync")
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, files=30)
    dst.mkdir()
    run = dag.test(run_conf={"source": str(src), "destination": str(dst),
                             "options": {"files_per_shard": 1, "prepare_partitions": 4}})
    st = states(run)
    assert str(run.state) == "success", st
    assert len(st["sync.prepare_partition"]) == 3  # 4 asked for: no more than max_map_length either
    assert 1 < len(st["sync.transfer"]) <= 3  # 30+ entries at 1 per shard, merged across partitions
    report = latest_report(airflow_db / "executions", "test-sync")
    assert report["ShardCount"] == len(st["sync.transfer"]) and tree(dst) == tree(src)


def test_s3_mapped_prepare_lists_each_prefix_in_one_task(s3_server, s3, bucket, airflow_db, dags_folder, tmp_path,
                                                         monkeypatch):
    from tests.fixtures_servers import S3_CONN_ID
    from tests.locations.s3.conftest import list_pages

    dag = load_dag(dags_folder, "datasync_s3_test_dags.py", "datasync_test_s3_sync")
    src = tmp_path / "src"
    make_tree(src, files=30)
    (src / "link").unlink()
    for extra in ("dir1/old.txt", "gone/x.txt"):
        s3.put_object(Bucket=bucket, Key=f"data/{extra}", Body=b"only at the destination")
    lists = list_pages(monkeypatch, S3_CONN_ID)
    conf = {"source": str(src), "destination": f"s3://{bucket}/data", "store": f"s3://{bucket}/manifests",
            "options": {"files_per_shard": 10, "PreserveDeletedFiles": "REMOVE", "prepare_partitions": 3}}
    run = dag.test(run_conf=conf)
    st = states(run)
    assert str(run.state) == "success", st
    assert st["sync.prepare_partition"] == ["success"] * 3
    assert objects(s3, bucket, "data/") == tree(src)  # gone/x.txt and dir1/old.txt deleted
    (report,) = reports(s3, bucket, "manifests/test-s3-sync/")
    assert report["FilesDeleted"] == 2 and report["Status"] == "SUCCESS"
    below = [prefix for prefix, delimiter in lists if prefix.startswith("data/") and delimiter is None]
    # Each folder the destination held listed once, by its partition's task (other phases list "data/").
    assert sorted(p for p in below if p != "data/") == ["data/dir1/", "data/gone/"]
    execution = json.loads(s3.get_object(Bucket=bucket, Key=f"manifests/test-s3-sync/{report['TaskExecutionId']}/"
                                         "partitions.json")["Body"].read())
    assert execution["count"] == 3


def test_a_failed_run_resumed_by_the_next_lists_nothing(airflow_db, dags_folder, tmp_path, monkeypatch):
    from tests.engine.test_engine_resume import count_scans

    dag = load_dag(dags_folder, "datasync_test_dags.py", "datasync_test_sync")
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, files=20)
    dst.mkdir()
    (dst / "zero.bin").mkdir()  # a directory in the way: that shard fails for good
    conf = {"source": str(src), "destination": str(dst), "options": {"files_per_shard": 5, "prepare_partitions": 2}}
    failed = dag.test(run_conf=conf)
    assert str(failed.state) == "failed"
    first = latest_report(airflow_db / "executions", "test-sync")
    assert first["Status"] == "ERROR"

    (dst / "zero.bin").rmdir()
    scans = count_scans(monkeypatch)
    run = dag.test(run_conf={**conf, "resume": "latest"})
    st = states(run)
    assert str(run.state) == "success", st
    assert scans == []  # neither side listed again, in no partition
    assert st["sync.prepare_partition"] == ["success"] * 2
    again = latest_report(airflow_db / "executions", "test-sync")
    assert again["TaskExecutionId"] == first["TaskExecutionId"] and again["Status"] == "SUCCESS"
    assert tree(dst) == tree(src)
