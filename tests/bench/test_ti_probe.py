"""bench/ti_probe.py on the real `airflow dags test` of the end-to-end baseline DAG: one line per task
instance and per execute(), the CLI's start and the end, and the table it makes of them. No timings asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.ti_probe import summary

ROOT = Path(__file__).resolve().parents[2]
TASKS = ["migrate.launch", "migrate.prepare", "migrate.transfer", "migrate.finalize", "migrate.verify", "migrate.report"]


def test_probe_splits_dags_test_by_task_instance(airflow_db, tmp_path):
    out = tmp_path / "ti.jsonl"
    env = dict(os.environ, AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "bench" / "dags_baseline"))
    done = subprocess.run([sys.executable, "-m", "bench.ti_probe", "--out", str(out), "--", "dags", "test",
                           "bench_empty_e2e"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]

    assert lines[0]["what"] == "before the first task instance"
    assert [x["task"] for x in lines if x["what"] == "task instance"] == TASKS
    assert sorted(x["task"] for x in lines if x["what"] == "execute") == sorted(TASKS)
    end = lines[-1]
    assert end["what"] == "when dags test returned"
    assert "InProcessExecutionAPI-loop" in end["threads"]  # the execution API's server side, shown apart
    assert all(x["cpu"] >= 0 and x["wall"] >= 0 for x in lines)

    table = summary(lines).splitlines()
    assert len(table) == 2 + 1 + len(TASKS) + 1  # header, start, one row per task instance, end
    assert table[3].startswith("| migrate.launch |")
