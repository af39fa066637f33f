"""Clearing a failed execution's shards in a real Airflow resumes it (issue 15): no listing is repeated.

dag.test() clears a whole run before it starts it, so only a real scheduler (tests/airflow/real_airflow.py)
can clear part of a run. The DAG (real_dags/datasync_real_clear_dags.py) plans 30 files in shards of 8,
then moves one planned source file aside: its shard fails (the file vanished after PREPARING), the others
copy and journal theirs, the run fails. The test puts the file back and clears TRANSFERRING, FINALIZE,
VERIFYING and report through the REST API. The cleared shards read their journals: the run succeeds with
the same execution, LAUNCHING/PREPARING are not run again, and neither side's listing is rewritten."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

from tests.airflow.real_airflow import started_airflow

DAGS = Path(__file__).parent / "real_dags"
DAG_ID = "datasync_real_clear"
HIDDEN = "f13.bin"  # as real_dags/datasync_real_clear_dags.py hides
CLEARED = ["sync.transfer", "sync.finalize", "sync.verify", "sync.report"]


def api(airflow, method: str, path: str, body: dict | None = None) -> dict:
    base = f"http://127.0.0.1:{airflow.port}"
    with urllib.request.urlopen(f"{base}/auth/token", timeout=30) as r:  # all-admins: a token without login
        token = json.loads(r.read())["access_token"]
    request = urllib.request.Request(f"{base}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read())


def run_state(airflow) -> str | None:
    rows = airflow.query("SELECT state FROM dag_run WHERE dag_id = ?", DAG_ID)
    return rows[0][0] if rows and rows[0][0] in ("success", "failed") else None


def tries(airflow) -> dict[tuple[str, int], tuple[int, str]]:
    return {(t, m): (n, s) for t, m, n, s in airflow.query(
        "SELECT task_id, map_index, try_number, state FROM task_instance WHERE dag_id = ?", DAG_ID)}


def footprint(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns


def test_clearing_a_failed_runs_shards_resumes_from_the_journals_without_listing():
    with started_airflow([DAGS / "datasync_real_clear_dags.py"], prefix="datasync-real-clear-") as airflow:
        src = airflow.root / "clear-src"
        src.mkdir()
        files = {f"f{i:02d}.bin": os.urandom(1000 + i) for i in range(30)}
        for name, data in files.items():
            (src / name).write_bytes(data)
        airflow.wait_for("the DAG parsed", lambda: airflow.query("SELECT 1 FROM dag WHERE dag_id = ?", DAG_ID))
        airflow.cli("dags", "trigger", DAG_ID)
        assert airflow.wait_for("the first run to end", lambda: run_state(airflow), limit=600) == "failed", tries(airflow)
        first = tries(airflow)
        failed_shards = [m for (t, m), (_, s) in first.items() if t == "sync.transfer" and s == "failed"]
        shards = [m for (t, m) in first if t == "sync.transfer"]
        assert len(shards) >= 3 and len(failed_shards) == 1, first
        assert not (airflow.root / "clear-dst" / HIDDEN).exists()

        (execution,) = (airflow.home / "executions" / "real-clear").iterdir()
        planned = {name: footprint(execution / name) for name in
                   ("source.parquet", "destination.parquet", "manifest.parquet", "prepare.json", "launch.json")}
        assert json.loads((execution / "report.json").read_text())["Status"] == "ERROR"
        summaries = {p.name: json.loads(p.read_text()) for p in (execution / "shards").glob("shard-*.json")}
        assert [s["failed"] for s in summaries.values()].count(1) == 1 and len(summaries) == len(shards), summaries
        os.rename(airflow.root / "hidden" / HIDDEN, src / HIDDEN)  # mtime and size as PREPARING saw them

        (run_id,) = airflow.query("SELECT run_id FROM dag_run WHERE dag_id = ?", DAG_ID)[0]
        cleared = api(airflow, "POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", {
            "dag_run_id": run_id, "task_ids": CLEARED, "only_failed": False, "reset_dag_runs": True,
            "dry_run": False})
        assert {ti["task_id"] for ti in cleared["task_instances"]} == set(CLEARED), cleared
        # The clear reset the run to queued before it answered, so the next end seen is the cleared run's.
        assert airflow.wait_for("the cleared run to end", lambda: run_state(airflow), limit=600) == "success", (
            tries(airflow), airflow.logs())

        second = tries(airflow)
        for key, (number, _) in first.items():
            assert second[key][0] == (number + 1 if key[0] in CLEARED else number), (key, first, second)
        # No listing repeated, no new plan, no new execution.
        assert {name: footprint(execution / name) for name in planned} == planned
        assert [p.name for p in (airflow.home / "executions" / "real-clear").iterdir()] == [execution.name]

        # Each cleared shard carried on from its journal: only the file that failed was copied again.
        after = {p.name: json.loads(p.read_text()) for p in (execution / "shards").glob("shard-*.json")}
        assert after.keys() == summaries.keys()
        for name, summary in after.items():
            retried = summaries[name]["failed"] == 1
            assert summary["failed"] == 0 and summary["entries"] - summary["resumed"] == int(retried), (name, summary)
            assert summary["bytes_written"] == (len(files[HIDDEN]) if retried else 0), (name, summary)
        report = json.loads((execution / "report.json").read_text())
        assert report["Status"] == "SUCCESS" and report["TaskExecutionId"] == execution.name, report
        dst = airflow.root / "clear-dst"
        assert {p.name: p.read_bytes() for p in dst.iterdir() if p.is_file()} == files
        assert not [p for p in dst.iterdir() if not p.is_file()]  # no temporary left behind
        # Each file counted once: the cleared shards' journaled files as resumed, never twice.
        assert report["FilesTransferred"] == len(files) and report["FilesVerified"] == len(files), report
        assert report["FilesResumed"] == len(files) - 1, report  # all but the hidden file copied in the first run
