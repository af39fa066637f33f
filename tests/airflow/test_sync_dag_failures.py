"""Airflow runs the group (``dag.test()``) when a file cannot be copied and when the deletion cap refuses:
FINALIZE and VERIFYING still run after a failed shard (trigger rule all_done), and are skipped when
PREPARING refused the plan; the report fails the run with the reason either way."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.airflow.test_sync_dag import latest_report, load_dag, states, tree


@pytest.fixture
def sync_dag(airflow_db, dags_folder):
    return load_dag(dags_folder, "datasync_test_dags.py", "datasync_test_sync")


def _source(root: Path, files: int = 12) -> Path:
    for i in range(files):
        p = root / f"d{i % 3}" / f"f{i}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"file {i} " * (i + 1))
    return root


def test_a_file_in_the_way_fails_its_shard_but_finalize_and_verify_run(sync_dag, airflow_db, tmp_path):
    src, dst = _source(tmp_path / "src"), tmp_path / "dst"
    (dst / "d1" / "f1.txt").mkdir(parents=True)  # a directory where the source has a file: permanent
    (dst / "d1" / "f1.txt" / "keep").write_text("keep")
    (dst / "stale.txt").write_text("not in the source")
    options = {"PreserveDeletedFiles": "REMOVE", "VerifyMode": "POINT_IN_TIME_CONSISTENT", "files_per_shard": 4}
    run = sync_dag.test(run_conf={"source": str(src), "destination": str(dst), "options": options})
    st = states(run)
    assert str(run.state) == "failed"
    assert st["sync.transfer"].count("failed") == 1 and "success" in st["sync.transfer"]
    assert st["sync.finalize"] == ["success"] and st["sync.verify"] == ["success"], st
    assert st["sync.report"] == ["failed"]
    report = latest_report(airflow_db / "executions", "test-sync")
    assert report["Status"] == "ERROR" and report["ErrorCode"] == "FilesFailed"
    assert "2 deletions skipped because 1 copy failed" in report["ErrorDetail"]
    assert report["FilesFailedDetail"] == {"Prepare": 0, "Transfer": 1, "Verify": 0, "Delete": 0}
    assert report["FilesDeleted"] == 0 and (dst / "stale.txt").exists() and (dst / "d1" / "f1.txt" / "keep").exists()
    copied = {k: v for k, v in tree(src).items() if k != "d1/f1.txt"}
    assert {k: v for k, v in tree(dst).items() if k in copied} == copied
    assert report["FilesVerified"] >= 11


def test_the_deletion_cap_fails_prepare_and_skips_the_rest(sync_dag, airflow_db, tmp_path):
    src, dst = tmp_path / "src", _source(tmp_path / "dst")
    src.mkdir()  # an empty source, as an unmounted export looks
    before = tree(dst)
    run = sync_dag.test(run_conf={"source": str(src), "destination": str(dst),
                                  "options": {"PreserveDeletedFiles": "REMOVE"}})
    st = states(run)
    assert str(run.state) == "failed"
    assert st["sync.prepare"] == ["failed"]
    assert st["sync.finalize"] == ["skipped"] and st["sync.verify"] == ["skipped"], st
    assert st["sync.report"] == ["failed"]
    prepare = next(ti for ti in run.get_task_instances() if ti.task_id == "sync.prepare")
    assert prepare.try_number == 1  # refused at once: the same source gives the same plan
    report = latest_report(airflow_db / "executions", "test-sync")
    assert report["ErrorCode"] == "DeletionCapExceeded" and "allow_empty_source_delete" in report["ErrorDetail"]
    assert tree(dst) == before
