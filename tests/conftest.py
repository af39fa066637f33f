"""Session set-up shared by every test: a private AIRFLOW_HOME with a fresh SQLite metadata DB.

Airflow reads its configuration at import time, so the environment is set here, before any test module
imports airflow. DAG files are copied into a private dags folder (the bundle ``dag.test()`` syncs from):
the shipped examples from ``dags/`` and the test DAGs from ``tests/dags/``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_servers", "tests.browser_env"]

ROOT = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="airflow-datasync-tests-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_HOME / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow.db'}"
os.environ["AIRFLOW_DATASYNC_MANIFEST_STORE"] = str(_HOME / "executions")
(_HOME / "dags").mkdir()
for folder in (ROOT / "dags", ROOT / "tests" / "dags"):
    for file in folder.glob("*.py"):
        shutil.copy(file, _HOME / "dags" / file.name)


@pytest.fixture(scope="session")
def airflow_db():
    """Migrate a fresh metadata DB once per session (dag.test() needs the tables)."""
    from airflow.utils import db

    db.resetdb()
    return _HOME


@pytest.fixture(scope="session")
def dags_folder() -> Path:
    return _HOME / "dags"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)
