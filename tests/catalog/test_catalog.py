"""The catalog reads executions the real engine wrote: list rows, detail, the per-file report, retention."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from airflow_datasync import catalog, retention
from airflow_datasync.catalog import StoreRef
from tests.catalog.builders import make_tree, run_sync, run_with_failed_file, start_running, write_big_report

DAG_RUN = {"dag_id": "dag_a", "run_id": "manual__1", "task_id": "sync.launch", "group_id": "sync", "map_index": -1,
           "try_number": 1}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Three executions of one store, oldest first: a success (CLI), a failed file (DAG dag_a), a running one."""
    tmp = tmp_path_factory.mktemp("catalog")
    store = tmp / "store"
    run_sync(make_tree(tmp / "src"), tmp / "dst", store, task_name="alpha")
    run_with_failed_file(tmp, store, task_name="beta", airflow=DAG_RUN)
    start_running(tmp, store, task_name="alpha", airflow={**DAG_RUN, "dag_id": "dag_b", "run_id": "manual__2"})
    return store


def ids(page) -> list[str]:
    return [item["execution_id"] for item in page["items"]]


def test_list_is_newest_first_with_status_phase_counters_and_owner(store):
    page = catalog.list_executions([str(store)])
    assert page["total"] == 3 and page["offset"] == 0 and page["limit"] == 50
    running, failed, success = page["items"]
    assert ids(page) == sorted(ids(page), reverse=True)
    assert (success["status"], success["phase"], success["final"], success["airflow"]) == ("SUCCESS", "VERIFYING", True, None)
    assert success["counters"]["FilesTransferred"] == 16 and success["counters"]["FilesFailed"] == 0
    assert set(success["phase_durations_ms"]) == {"PREPARING", "TRANSFERRING", "VERIFYING", "TOTAL"}
    assert (failed["status"], failed["phase"], failed["error_code"]) == ("ERROR", "TRANSFERRING", "FilesFailed")
    assert failed["airflow"]["dag_id"] == "dag_a" and failed["counters"]["FilesFailed"] == 1
    assert (running["status"], running["final"], running["ended_at"]) == ("TRANSFERRING", False, None)
    # Live counters while running: shard 0's entries plus what shard 1's progress file says so far.
    assert running["counters"]["FilesTransferred"] == 10 + 3
    assert running["source"].endswith("src-running") and running["launched_at"]


def test_list_filters_and_pages(store):
    every = catalog.list_executions([str(store)])
    assert ids(catalog.list_executions([str(store)], task_name="alpha")) == [ids(every)[0], ids(every)[2]]
    assert ids(catalog.list_executions([str(store)], status="error")) == [ids(every)[1]]
    assert ids(catalog.list_executions([str(store)], dag_id="dag_a")) == [ids(every)[1]]
    assert ids(catalog.list_executions([str(store)], dag_id="dag_b", run_id="manual__2")) == [ids(every)[0]]
    assert ids(catalog.list_executions([str(store)], run_id="manual__1", task_id="sync.transfer")) == [ids(every)[1]]
    assert ids(catalog.list_executions([str(store)], task_id="other.transfer")) == []
    # DAG restriction: dag_ids lists the readable DAGs; include_unowned says whether CLI runs are shown.
    assert ids(catalog.list_executions([str(store)], dag_ids={"dag_b"})) == [ids(every)[0], ids(every)[2]]
    assert ids(catalog.list_executions([str(store)], dag_ids={"dag_b"}, include_unowned=False)) == [ids(every)[0]]
    assert ids(catalog.list_executions([str(store)], dag_ids=set(), include_unowned=False)) == []
    second = catalog.list_executions([str(store)], offset=1, limit=1)
    assert ids(second) == [ids(every)[1]] and second["total"] == 3
    launched = catalog.launch_time(ids(every)[1])
    assert ids(catalog.list_executions([str(store)], since=launched)) == ids(every)[:2]
    assert ids(catalog.list_executions([str(store)], until=launched.isoformat())) == ids(every)[1:]
    assert catalog.list_executions([str(store / "nothing-here")])["total"] == 0
    assert catalog.list_executions([str(store / "alpha")], task_name="../beta")["total"] == 0


def test_find_execution_across_stores_and_refuses_paths(store, tmp_path):
    newest = ids(catalog.list_executions([str(store)]))[0]
    found = catalog.find_execution([StoreRef(str(tmp_path / "empty")), StoreRef(str(store))], newest)
    assert found is not None and found.dir.execution_id == newest and found.info["task_name"] == "alpha"
    for bad in ("../alpha", "alpha/" + newest, ".hidden", "", "exec-none"):
        assert catalog.find_execution([str(store)], bad) is None


def test_detail_of_a_finished_execution_has_timeline_shards_and_report_files(store):
    failed = catalog.list_executions([str(store)], status="ERROR")["items"][0]
    ex = catalog.find_execution([str(store)], failed["execution_id"]).dir
    detail = catalog.execution_detail(ex)
    phases = [(t["phase"], t["state"]) for t in detail["timeline"]]
    assert phases == [("LAUNCHING", "SUCCESS"), ("PREPARING", "SUCCESS"), ("TRANSFERRING", "FAILED"),
                      ("VERIFYING", "SKIPPED"), ("ERROR", "ERROR")]
    preparing = detail["timeline"][1]
    assert preparing["started_at"] <= preparing["ended_at"] and preparing["duration_ms"] >= 0
    assert detail["error_code"] == "FilesFailed" and "zero.bin" in detail["error_detail"]
    assert [s["state"] for s in detail["shards"]] == ["FAILED"]
    assert detail["shards"][0]["files"] == 16 and detail["shards"][0]["duration_ms"] >= 0
    assert {f["name"] for f in detail["report_files"]} == {"report.parquet", "manifest.parquet"}
    assert detail["progress"] is None and detail["running"] is False


def test_detail_of_a_running_execution_has_live_progress_and_eta(store):
    running = catalog.list_executions([str(store)], status="TRANSFERRING")["items"][0]
    detail = catalog.execution_detail(catalog.find_execution([str(store)], running["execution_id"]).dir)
    assert [t["state"] for t in detail["timeline"]] == ["SUCCESS", "SUCCESS", "RUNNING", "PENDING"]
    assert detail["timeline"][2]["ended_at"] is None
    states = [(s["shard"], s["state"], s["try_number"]) for s in detail["shards"]]
    assert states[:2] == [(0, "SUCCESS", None), (1, "RUNNING", 2)] and {s for _, s, _ in states[2:]} == {"PENDING"}
    assert detail["shards"][1]["progress"]["current"] == ["dir1/file-4.txt"]
    progress = detail["progress"]
    assert progress["files_total"] == sum(s["files"] for s in detail["shards"])
    assert progress["files_done"] == 10 + 3 and progress["shards_running"] == 1
    assert progress["bytes_per_second"] == 100.0
    assert progress["eta_seconds"] == pytest.approx((progress["bytes_total"] - progress["bytes_done"]) / 100.0)
    assert detail["running"] is True and detail["report_files"] == [{"name": "manifest.parquet",
                                                                      "size": detail["report_files"][0]["size"]}]


def test_files_of_a_report_list_failed_first_and_filter(store):
    failed = catalog.list_executions([str(store)], status="ERROR")["items"][0]
    ex = catalog.find_execution([str(store)], failed["execution_id"]).dir
    page = catalog.execution_files(ex, limit=5)
    assert page["total"] == 16 and page["source"] == "report.parquet"
    assert page["items"][0]["path"] == "zero.bin" and page["items"][0]["status"] == "FAILED"
    assert "directory at the destination" in page["items"][0]["error"]
    assert [r["status"] for r in page["items"][1:]] == ["SUCCESS"] * 4
    in_order = catalog.execution_files(ex, limit=100, failed_first=False)["items"]
    assert [r["path"] for r in in_order] == sorted(r["path"] for r in in_order)
    assert [r["path"] for r in catalog.execution_files(ex, status="FAILED")["items"]] == ["zero.bin"]
    assert catalog.execution_files(ex, action="mkdir")["total"] == 3
    assert {r["path"] for r in catalog.execution_files(ex, path_prefix="dir1/")["items"]} == {
        "dir1/file-1.txt", "dir1/file-4.txt", "dir1/file-7.txt", "dir1/file-10.txt"}
    assert catalog.execution_files(ex, path_contains="file-1")["total"] == 3  # file-1, file-10, file-11


def test_files_of_a_running_execution_come_from_manifest_and_shard_results(store):
    running = catalog.list_executions([str(store)], status="TRANSFERRING")["items"][0]
    ex = catalog.find_execution([str(store)], running["execution_id"]).dir
    page = catalog.execution_files(ex, limit=100)
    assert page["source"] == "manifest.parquet" and page["total"] == 24
    done = [r for r in page["items"] if r["status"] == "SUCCESS"]
    assert len(done) == 10 and all(r["shard"] == 0 for r in done)
    assert catalog.execution_files(ex, status="SUCCESS")["total"] == 10


def test_a_large_report_pages_by_row_groups_with_failed_rows_first(tmp_path):
    store = tmp_path / "store"
    ex = run_sync(make_tree(tmp_path / "src", files=2), tmp_path / "dst", store)
    rows = 120_000
    table = write_big_report(ex, rows)
    failed = np.flatnonzero(pc.equal(table["status"], "FAILED").to_numpy(zero_copy_only=False))
    others = np.flatnonzero(~pc.equal(table["status"], "FAILED").to_numpy(zero_copy_only=False))
    reference = np.concatenate([failed, others])
    paths = table["path"].to_pylist()

    for offset, limit in ((0, 50), (len(failed) - 10, 30), (70_000, 100), (rows - 7, 100)):
        page = catalog.execution_files(ex, offset=offset, limit=limit)
        assert page["total"] == rows
        assert [r["path"] for r in page["items"]] == [paths[i] for i in reference[offset:offset + limit]]
    assert page["items"][-1] == table.slice(int(reference[-1]), 1).to_pylist()[0]

    copies = catalog.execution_files(ex, action="copy", path_prefix="d3/", failed_first=False, offset=500, limit=20)
    expected = [p for p, a in zip(paths, table["action"].to_pylist()) if a == "copy" and p.startswith("d3/")]
    assert copies["total"] == len(expected) and [r["path"] for r in copies["items"]] == expected[500:520]
    hits = catalog.execution_files(ex, path_contains="f00123", status="SKIPPED")
    expected = [p for p, s in zip(paths, table["status"].to_pylist()) if "f00123" in p and s == "SKIPPED"]
    assert [r["path"] for r in hits["items"]] == expected[:100] and hits["total"] == len(expected)
    only_failed = catalog.execution_files(ex, status="FAILED", limit=1000)
    assert [r["error"] for r in only_failed["items"]] == [table["error"][int(i)].as_py() for i in failed]


def test_prune_keeps_last_n_per_task_and_never_a_running_execution(tmp_path):
    store = tmp_path / "store"
    src = make_tree(tmp_path / "src", files=2)
    made = {name: [run_sync(src, tmp_path / f"dst-{name}-{i}", store, task_name=name).execution_id for i in range(3)]
            for name in ("one", "two")}
    running = start_running(tmp_path, store, task_name="one")

    preview = retention.prune(str(store), keep_last=1, dry_run=True)
    # Per task name, newest first: "one" keeps the running one (newest, and running) and removes all 3 done.
    assert sorted(r["execution_id"] for r in preview) == sorted(made["one"] + made["two"][:2])
    assert all(r["dry_run"] for r in preview) and len(list((store / "one").iterdir())) == 4

    removed = retention.prune(str(store), keep_last=2, task_name="two")
    assert [r["execution_id"] for r in removed] == [made["two"][0]]
    assert sorted(p.name for p in (store / "two").iterdir()) == made["two"][1:]

    # Everything is older than 0 s; the running execution stays all the same, the others go.
    assert {r["execution_id"] for r in retention.prune(str(store), older_than="0s")} == set(made["one"] + made["two"][1:])
    assert [p.name for p in (store / "one").iterdir()] == [running.execution_id]
    assert catalog.list_executions([str(store)])["total"] == 1


def test_prune_by_age_and_abandoned_executions(tmp_path):
    store = tmp_path / "store"
    src = make_tree(tmp_path / "src", files=2)
    done = run_sync(src, tmp_path / "dst", store, task_name="aged")
    stalled = start_running(tmp_path, store, task_name="aged")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    assert retention.prune(str(store), older_than="30d", now=later) == []
    # Ten days on, the execution with no report and no change for an hour is abandoned: prune takes it.
    assert catalog.is_running(stalled) and not catalog.is_running(stalled, now=later)
    gone = retention.prune(str(store), older_than=dt.timedelta(days=7), now=later)
    assert {r["execution_id"] for r in gone} == {done.execution_id, stalled.execution_id}
    # Both rules given: an execution goes only when it is beyond the newest N *and* older than D.
    kept = run_sync(src, tmp_path / "dst2", store, task_name="aged")
    assert retention.prune(str(store), keep_last=0, older_than="30d", now=later) == []
    assert [r["execution_id"] for r in retention.prune(str(store), keep_last=0, older_than="1d", now=later)] == [
        kept.execution_id]
    with pytest.raises(ValueError):
        retention.prune(str(store))
    with pytest.raises(ValueError):
        retention.parse_age("soon")


def test_store_ref_parses_uri_and_connection():
    assert StoreRef.parse(" s3://bucket/prefix::aws_store ") == StoreRef("s3://bucket/prefix", "aws_store")
    assert StoreRef.parse("/data/executions") == StoreRef("/data/executions", None)


def test_a_rerun_report_replaces_the_listed_status(tmp_path):
    """Clearing the failed tasks re-runs the shard and the report: the list must not keep the old ERROR."""
    from airflow_datasync import engine

    ex = run_with_failed_file(tmp_path, tmp_path / "store")
    assert catalog.list_executions([str(tmp_path / "store")])["items"][0]["status"] == "ERROR"
    (tmp_path / "dst-failing" / "zero.bin").rmdir()
    engine.transfer(ex, 0)
    engine.finalize(ex)
    engine.verify(ex)
    engine.report(ex)
    row = catalog.list_executions([str(tmp_path / "store")])["items"][0]
    assert (row["status"], row["counters"]["FilesFailed"]) == ("SUCCESS", 0)
