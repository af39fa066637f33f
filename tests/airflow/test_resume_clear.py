"""Clearing a failed execution's TRANSFERRING/VERIFYING tasks in a real Airflow (scheduler, LocalExecutor:
tests/airflow/real_airflow.py) carries it on from its plan and shard journals (issue 15): PREPARING does
not run again (its task instance keeps its one try; the listings and the plan are the files it wrote),
the cleared shards copy only what is left, and the report counts each file once."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.airflow.real_airflow import started_airflow

DAGS = Path(__file__).parent / "real_dags"
DAG_ID = "datasync_real_resume"
FILES = {f"d{d}/f{i:02d}.txt": f"file {d}/{i}\n".encode() * (i + 1) for d in range(2) for i in range(6)}
#: A directory where the source has a file: the shard copying it fails, permanently, until it is removed.
BLOCKED = "d1/f03.txt"
LOGICAL_DATE = "2026-01-02T00:00:00+00:00"


@pytest.fixture
def real_airflow():
    with started_airflow([DAGS / "datasync_resume_real_dag.py"], prefix="datasync-real-resume-") as airflow:
        yield airflow


def run_state(airflow) -> str | None:
    rows = airflow.query("SELECT state FROM dag_run WHERE dag_id = ?", DAG_ID)
    return rows[0][0] if rows and rows[0][0] in ("success", "failed") else None


def task_logs(airflow, task_id: str) -> str:
    text = "\n".join(p.read_text(errors="replace") for p in airflow.home.rglob("*.log")
                     if p.is_file() and task_id in str(p))
    return "\n".join(line[:400] for line in text.splitlines() if '"level":"error"' in line or "Error" in line)


def task_tries(airflow) -> dict[tuple[str, int], tuple[str, int]]:
    return {(t, m): (s, n) for t, m, s, n in airflow.query(
        "SELECT task_id, map_index, state, try_number FROM task_instance WHERE dag_id = ?", DAG_ID)}


def test_clearing_the_failed_shards_resumes_without_preparing_again(real_airflow):
    airflow = real_airflow
    src, dst = airflow.root / "src", airflow.root / "dst"
    for rel, body in FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(body)
    (dst / BLOCKED).mkdir(parents=True)
    (dst / BLOCKED / "in-the-way").write_text("a directory where the source has a file")
    airflow.wait_for("the DAG parsed", lambda: airflow.query("SELECT 1 FROM dag WHERE dag_id = ?", DAG_ID))
    # A logical date, which `airflow tasks clear` selects runs by (a run without one it cannot select).
    airflow.cli("dags", "trigger", DAG_ID, "--logical-date", LOGICAL_DATE)
    assert airflow.wait_for("the first run to end", lambda: run_state(airflow)) == "failed", task_tries(airflow)
    first = task_tries(airflow)
    assert first[("sync.prepare", -1)][0] == "success", task_logs(airflow, "sync.launch")[-4000:]
    assert sorted(s for (t, _), (s, _) in first.items() if t == "sync.transfer").count("failed") == 1
    (execution,) = (airflow.home / "executions" / "real-resume").iterdir()
    planned = {name: os.stat(execution / name).st_mtime_ns
               for name in ("source.parquet", "destination.parquet", "manifest.parquet", "prepare.json")}

    shutil.rmtree(dst / BLOCKED)  # the obstacle removed: a clear of the shards can now finish the execution
    cleared = airflow.cli("tasks", "clear", DAG_ID, "--task-regex", r"^sync\.(transfer|finalize|verify|report)$",
                          "--start-date", LOGICAL_DATE, "--end-date", LOGICAL_DATE, "--yes")
    # The report runs again last (its second try): then the run has ended again.
    airflow.wait_for("the cleared tasks to run again", lambda: task_tries(airflow)[("sync.report", -1)][1] >= 2
                     and run_state(airflow))
    assert run_state(airflow) == "success", (cleared, task_tries(airflow), task_logs(airflow, "sync.transfer")[-3000:])

    again = task_tries(airflow)
    assert again[("sync.prepare", -1)] == first[("sync.prepare", -1)]  # PREPARING did not run again
    assert {name: os.stat(execution / name).st_mtime_ns for name in planned} == planned
    assert {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()} == FILES
    report = json.loads((execution / "report.json").read_text())
    assert report["Status"] == "SUCCESS" and report["FilesVerified"] == len(FILES)
    # Every file and directory once; those the first run copied come from the journals.
    assert report["FilesTransferred"] == len(FILES) + 2
    assert report["FilesResumed"] >= len(FILES) + 2 - 4
