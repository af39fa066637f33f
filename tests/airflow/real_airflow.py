"""A real Airflow for tests: api-server, scheduler (LocalExecutor), dag-processor and triggerer on a private
AIRFLOW_HOME with its own SQLite DB, all on 127.0.0.1 (servers that offer it skip their log server).

Shared by tests/airflow/test_real_triggerer.py, tests/airflow/test_real_clear_resume.py and
tests/faults/test_airflow_faults.py. The DB is read with
sqlite3, not through the test process's Airflow (configured for the session DB)."""

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import free_port, stop_airflow_processes

AIRFLOW = str(Path(sys.executable).parent / "airflow")
class AirflowComponents:
    """What a test harness of running Airflow components shares: ``procs`` (name → process), ``port`` (the
    api-server's) and ``logs()``; waits that fail with the logs when a component exits or a wait gives up."""

    procs: dict[str, subprocess.Popen]
    port: int
    #: Seconds a wait may take before it fails (a hang turned into a failure, not a time assertion).
    WAIT_LIMIT = 240.0

    def logs(self) -> str:
        raise NotImplementedError

    def wait_for(self, what: str, check, limit: float | None = None):
        """Poll ``check`` until it returns something truthy: a wait, not a time assertion (the limit only
        turns a hang into a failure that shows the components' logs)."""
        deadline = time.monotonic() + (self.WAIT_LIMIT if limit is None else limit)
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


class RealAirflow(AirflowComponents):
    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
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
        self.env.update(env or {})

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

@contextmanager
def started_airflow(dag_files: list[Path], env: dict[str, str] | None = None,
                    prefix: str = "datasync-real-airflow-") -> Iterator[RealAirflow]:
    """A migrated DB and the four components running over a DAG folder holding ``dag_files``; everything
    stopped and removed on exit. ``env`` adds to (or overrides) the components' environment."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    (home / "dags").mkdir()
    for file in dag_files:
        shutil.copy(file, home / "dags")
    airflow = RealAirflow(home, env)
    airflow.root.mkdir(parents=True)
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
