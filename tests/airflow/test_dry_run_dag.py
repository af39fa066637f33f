"""Dry runs through the task group with Airflow running the DAG: LAUNCHING and PREPARING run, the transfer
tasks are skipped, finalize and verify do nothing, the report says DryRun, the destination is untouched."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from tests.airflow.test_sync_dag import latest_report, load_dag, make_tree, states, tree


@pytest.mark.parametrize("dag_id, task_name, conf", [
    ("datasync_test_dry_run", "test-dry-run", {}),                # sync_task_group(..., dry_run=True)
    ("datasync_test_params", "test-params", {"dry_run": True}),   # the form's "Dry run" toggle
], ids=["task-group-flag", "form-toggle"])
def test_dry_run_dag_plans_and_reports_without_writing(airflow_db, dags_folder, tmp_path, dag_id, task_name, conf):
    dag = load_dag(dags_folder, "datasync_params_test_dags.py", dag_id)
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, files=8)
    dst.mkdir()
    (dst / "stale.txt").write_text("not in the source")
    before = tree(dst)
    run = dag.test(run_conf={"source": str(src), "destination": str(dst), "PreserveDeletedFiles": "REMOVE",
                             "files_per_shard": 3, **conf})
    st = states(run)
    assert str(run.state) == "success", st
    assert st["sync.transfer"] == ["skipped"]
    for phase in ("launch", "prepare", "finalize", "verify", "report"):
        assert st[f"sync.{phase}"] == ["success"], (phase, st)
    assert tree(dst) == before
    report = latest_report(airflow_db / "executions", task_name)
    assert report["DryRun"] is True and report["Status"] == "SUCCESS"
    assert report["FilesTransferred"] == 0 and report["EstimatedFilesToTransfer"] == len(tree(src))
    assert report["EstimatedFilesToDelete"] == 1 and report["ShardCount"] >= 3
    rows = pq.read_table(report["ReportUri"]).to_pylist()
    assert {r["status"] for r in rows} == {"DRY_RUN"}
    assert next(r for r in rows if r["path"] == "stale.txt")["action"] == "delete"
    summaries = {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in run.get_task_instances()
                 if ti.task_id in ("sync.finalize", "sync.verify")}
    assert set(summaries) == {"sync.finalize", "sync.verify"}
    assert all(s and s["dry_run"] is True for s in summaries.values()), summaries
