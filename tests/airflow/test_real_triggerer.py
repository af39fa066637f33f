"""A real Airflow: api-server, scheduler (LocalExecutor), dag-processor and triggerer on a private
AIRFLOW_HOME with its own SQLite DB, all on 127.0.0.1 (servers that offer it skip their log server).

It shows what dag.test() cannot: the quiet sensor's task instance sits in ``deferred`` (no worker slot)
while the triggerer polls; creating the marker ends the wait; the sync runs; its report task's asset
event makes the scheduler start the consumer DAG, which reads the DataSync counters from that event.
The DB is read with sqlite3, not through the test process's Airflow (configured for the session DB)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.servers import free_port, stop_airflow_processes

AIRFLOW = str(Path(sys.executable).parent / "airflow")
DAGS = Path(__file__).parent / "real_dags"


class RealAirflow:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.db = home / "airflow.db"
        self.port = free_port()
        self.root = home / "data"
        self.procs: dict[str, subprocess.Popen] = {}
        base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        self.env.update({
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW_DATASYNC_MANIFEST_STORE": str(home / "executions"),
            "DATASYNC_REAL_ROOT": str(self.root),
        })

    def cli(self, *args: str) -> str:
        done = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"airflow {' '.join(args)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done.stdout

    def start(self, name: str, *args: str) -> None:
        with open(self.home / f"{name}.log", "wb") as out:
            self.procs[name] = subprocess.Popen([AIRFLOW, *args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        """SIGINT to every component, then the process groups of anything left (LocalExecutor's workers)."""
        stop_airflow_processes(list(self.procs.values()), timeout=20)

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{(self.home / f'{name}.log').read_text(errors='replace')[-3000:]}"
                         for name in self.procs)

    def query(self, sql: str, *params) -> list[tuple]:
        with sqlite3.connect(self.db, timeout=30) as db:
            return db.execute(sql, params).fetchall()

    def wait_for(self, what: str, check, limit: float = 240.0):
        """Poll ``check`` until it returns something truthy: a wait, not a time assertion (the limit only
        turns a hang into a failure that shows the components' logs)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    pytest.fail(f"airflow {name} exited with {proc.returncode} while waiting for {what}\n{self.logs()}")
            value = check()
            if value:
                return value
            time.sleep(1)
        pytest.fail(f"gave up waiting for {what}\n{self.logs()}")

    def health(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/monitor/health", timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False


@pytest.fixture
def real_airflow():
    home = Path(tempfile.mkdtemp(prefix="datasync-real-airflow-"))
    (home / "dags").mkdir()
    shutil.copy(DAGS / "datasync_real_dags.py", home / "dags")
    airflow = RealAirflow(home)
    (airflow.root / "incoming" / "sub").mkdir(parents=True)
    try:
        airflow.cli("db", "migrate")
        airflow.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(airflow.port))
        airflow.wait_for("the api-server", airflow.health)
        airflow.start("scheduler", "scheduler", "--skip-serve-logs")
        airflow.start("dag-processor", "dag-processor")
        airflow.start("triggerer", "triggerer", "--skip-serve-logs")
        yield airflow
    finally:
        airflow.stop()
        shutil.rmtree(home, ignore_errors=True)


def xcom_value(raw):
    value = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    return json.loads(value) if isinstance(value, str) else value


def test_deferred_sensor_in_a_real_triggerer_then_sync_then_asset_triggered_consumer(real_airflow):
    airflow = real_airflow
    incoming = airflow.root / "incoming"
    (incoming / "a.csv").write_text("id,value\n1,2\n")
    (incoming / "sub" / "b.bin").write_bytes(os.urandom(4096))
    airflow.wait_for("both DAGs parsed", lambda: len(airflow.query(
        "SELECT dag_id FROM dag WHERE dag_id IN ('datasync_real_producer', 'datasync_real_consumer')")) == 2)
    airflow.cli("dags", "trigger", "datasync_real_producer")

    airflow.wait_for("the sensor deferred", lambda: airflow.query(
        "SELECT 1 FROM task_instance WHERE dag_id = 'datasync_real_producer' AND task_id = 'wait_quiet' "
        "AND state = 'deferred'"))
    (trigger_kwargs,) = airflow.query("SELECT kwargs FROM trigger")[0]
    assert "LocationQuietTrigger" in airflow.query("SELECT classpath FROM trigger")[0][0]
    assert str(incoming) in trigger_kwargs
    # Settled but no marker yet: the trigger keeps polling and the task stays deferred.
    assert airflow.query("SELECT state FROM task_instance WHERE dag_id = 'datasync_real_producer' "
                         "AND task_id = 'wait_quiet'") == [("deferred",)]

    (incoming / "_SUCCESS").write_text("")
    state = airflow.wait_for("the producer run to finish", lambda: (airflow.query(
        "SELECT state FROM dag_run WHERE dag_id = 'datasync_real_producer'") or [(None,)])[0][0]
        in ("success", "failed") and airflow.query("SELECT state FROM dag_run WHERE dag_id = 'datasync_real_producer'"))
    tis = airflow.query("SELECT task_id, state FROM task_instance WHERE dag_id = 'datasync_real_producer'")
    assert state == [("success",)], (tis, airflow.logs())
    assert (airflow.root / "outgoing" / "sub" / "b.bin").read_bytes() == (incoming / "sub" / "b.bin").read_bytes()

    airflow.wait_for("the asset-triggered consumer run to succeed", lambda: airflow.query(
        "SELECT 1 FROM dag_run WHERE dag_id = 'datasync_real_consumer' AND run_type = 'asset_triggered' "
        "AND state = 'success'"))
    (raw,) = airflow.query("SELECT value FROM xcom WHERE dag_id = 'datasync_real_consumer' "
                           "AND task_id = 'read_counters' AND key = 'return_value'")[0]
    counters = xcom_value(raw)
    report = json.loads(next((airflow.home / "executions" / "real-producer").glob("*/report.json")).read_text())
    assert counters == {"Status": "SUCCESS", "FilesTransferred": report["FilesTransferred"],
                        "BytesWritten": report["BytesWritten"], "TaskExecutionId": report["TaskExecutionId"]}
    assert report["FilesTransferred"] >= 3  # a.csv, sub/b.bin and _SUCCESS (plus the directory)
