"""Airflow itself runs the DAGs (``dag.test()``): phases as tasks, mapped shards, reports through XCom."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest


def load_dag(dags_folder: Path, filename: str, dag_id: str):
    spec = importlib.util.spec_from_file_location(filename.removesuffix(".py"), dags_folder / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(v for v in vars(module).values() if getattr(v, "dag_id", None) == dag_id and hasattr(v, "test"))


def make_tree(root: Path, files: int = 60) -> None:
    for i in range(files):
        p = root / f"dir{i % 4}" / f"sub{i % 3}" / f"file {i} ✓.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(i * 37))
    (root / "empty-dir").mkdir()
    (root / "zero.bin").write_bytes(b"")
    (root / "link").symlink_to("dir0/sub0/file 0 ✓.txt")


def states(dagrun) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ti in dagrun.get_task_instances():
        out.setdefault(ti.task_id, []).append(str(ti.state))
    return out


def latest_report(store: Path, task_name: str) -> dict:
    runs = sorted((store / task_name).iterdir())
    return json.loads((runs[-1] / "report.json").read_text())


@pytest.fixture
def sync_dag(airflow_db, dags_folder):
    return load_dag(dags_folder, "datasync_test_dags.py", "datasync_test_sync")


def tree(root: Path) -> dict[str, bytes | str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = ("->" + os.readlink(p)) if p.is_symlink() else (p.read_bytes() if p.is_file() else "dir")
    return out


def test_dag_runs_all_phases_with_mapped_shards_then_skips_everything(sync_dag, airflow_db, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    dst.mkdir()
    conf = {"source": str(src), "destination": str(dst), "options": {"files_per_shard": 20}}

    run = sync_dag.test(run_conf=conf)
    st = states(run)
    assert str(run.state) == "success", st
    assert len(st["sync.transfer"]) >= 3 and set(st["sync.transfer"]) == {"success"}
    for phase in ("launch", "partitions", "prepare", "finalize", "verify", "report"):
        assert st[f"sync.{phase}"] == ["success"], (phase, st)
    # A small tree is one partition: the mapped PREPARING task maps over nothing and prepare lists it.
    assert st["sync.prepare_partition"] == ["skipped"], st
    assert tree(dst) == tree(src)
    report = latest_report(airflow_db / "executions", "test-sync")
    assert not Path(report["ExecutionUri"], "partitions").exists()  # listed once, by prepare
    assert report["Status"] == "SUCCESS"
    assert report["FilesTransferred"] == report["EstimatedFilesToTransfer"] > 60
    assert report["FilesVerified"] == 61  # 60 files + zero.bin; symlinks and directories are not hashed
    assert report["ShardCount"] == len(st["sync.transfer"])
    launched = json.loads(Path(report["ExecutionUri"], "launch.json").read_text())["airflow"]
    assert launched == {"dag_id": "datasync_test_sync", "run_id": run.run_id, "task_id": "sync.launch",
                        "group_id": "sync", "map_index": -1, "try_number": 1}

    rerun = sync_dag.test(run_conf=conf)
    assert str(rerun.state) == "success", states(rerun)
    again = latest_report(airflow_db / "executions", "test-sync")
    assert again["TaskExecutionId"] != report["TaskExecutionId"]
    assert again["FilesTransferred"] == 0 and again["BytesWritten"] == 0
    assert again["FilesSkipped"] == report["FilesPrepared"]
    assert states(rerun)["sync.transfer"] == ["skipped"]  # no shards: the mapped task is skipped, the rest runs


def test_dag_fails_with_report_when_source_is_missing(sync_dag, tmp_path):
    dst = tmp_path / "dst"
    dst.mkdir()
    run = sync_dag.test(run_conf={"source": str(tmp_path / "missing"), "destination": str(dst), "options": {}})
    st = states(run)
    assert str(run.state) == "failed"
    assert st["sync.launch"] == ["failed"]
    # prepare runs after a skipped prepare_partition (none_failed), never after a failed LAUNCHING.
    assert st["sync.prepare_partition"] == ["upstream_failed"] and st["sync.prepare"] == ["upstream_failed"], st
    assert list(dst.iterdir()) == []


def test_dag_reports_error_when_a_file_cannot_be_copied(sync_dag, airflow_db, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, files=10)
    dst.mkdir()
    # The destination has a directory where the source has a file: that file fails, the rest is copied.
    (dst / "zero.bin").mkdir()
    run = sync_dag.test(run_conf={"source": str(src), "destination": str(dst), "options": {"files_per_shard": 5}})
    st = states(run)
    assert str(run.state) == "failed"
    assert "failed" in st["sync.transfer"] and "success" in st["sync.transfer"]
    # A directory in the way is permanent: the retry policy fails the shard at once, without retries.
    failed_shard = next(ti for ti in run.get_task_instances() if ti.task_id == "sync.transfer" and str(ti.state) == "failed")
    assert failed_shard.try_number == 1 and failed_shard.max_tries == 2
    assert st["sync.report"] == ["failed"]
    report = latest_report(airflow_db / "executions", "test-sync")
    assert report["Status"] == "ERROR" and report["ErrorCode"] == "FilesFailed"
    assert "zero.bin" in report["ErrorDetail"]
    assert (dst / "dir1" / "sub1" / "file 1 ✓.txt").read_bytes() == (src / "dir1" / "sub1" / "file 1 ✓.txt").read_bytes()
