"""Resuming an execution with Airflow running the DAG (issue 15): a new run with ``resume_execution``
carries on from the stored plan and shard journals; no PREPARING listing is repeated (ListObjectsV2
requests of the S3 source, counted in this process, where dag.test() runs the tasks).

dag.test() clears a whole run before it starts it, so it cannot clear only a run's shards: that path is
tested at the engine level (tests/engine/test_engine_resume.py: a PREPARING run again hands out the stored
plan without listing; the shards resume from their journals as retries do) and with a real scheduler
clearing a failed run's shards through the REST API (tests/airflow/test_real_clear_resume.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
import pytest

from airflow_datasync.engine import transfer
from airflow_datasync.manifest import ExecutionDir
from tests.airflow.test_sync_dag import load_dag, states
from tests.engine.test_engine_resume import FILES, checks_lists, lists
from tests.engine.test_engine_resume import source as source  # the fixture
from tests.locations.s3.conftest import s3_requests


@pytest.fixture
def resume_dag(airflow_db, dags_folder):
    return load_dag(dags_folder, "datasync_resume_test_dags.py", "datasync_test_resume")


def failed_first_run(dag, source, tmp_path, logical_date):
    """A run whose shards never copied (marked success without running, as a worker lost before it started
    them would leave nothing behind): its report says ERROR, the run fails."""
    conf = {"source": source.uri, "destination": str(tmp_path / "dst"), "store": str(tmp_path / "store")}
    with s3_requests() as sent:
        run = dag.test(logical_date=logical_date, run_conf=conf, mark_success_pattern=r"^sync\.transfer$")
    assert str(run.state) == "failed", states(run)
    assert lists(sent) > checks_lists(source)  # PREPARING listed the source
    (execution_dir,) = (tmp_path / "store" / "test-resume").iterdir()
    return conf, ExecutionDir(str(execution_dir))


def assert_converged(run, execution: ExecutionDir, dst) -> dict:
    assert str(run.state) == "success", states(run)
    report = json.loads(Path(execution.report).read_text())
    assert report["Status"] == "SUCCESS" and report["TaskExecutionId"] == execution.execution_id
    assert report["FilesTransferred"] == len(FILES) and report["FilesVerified"] == len(FILES)
    assert {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()} == FILES
    return report


def test_a_new_run_resumes_the_execution_it_names(resume_dag, source, tmp_path):
    conf, execution = failed_first_run(resume_dag, source, tmp_path, pendulum.datetime(2026, 2, 2, tz="UTC"))
    transfer(execution, 0)  # a shard a worker finished before the run failed: its journal says so
    with s3_requests() as sent:
        run = resume_dag.test(logical_date=pendulum.datetime(2026, 2, 3, tz="UTC"),
                              run_conf={**conf, "resume_execution": execution.execution_id})
    # Only LAUNCHING's check of the source lists; PREPARING hands out the stored plan.
    assert lists(sent) == checks_lists(source), sent
    report = assert_converged(run, execution, tmp_path / "dst")
    assert report["FilesResumed"] == 8  # shard 0's files, copied once, counted once
    assert len(list((tmp_path / "store" / "test-resume").iterdir())) == 1  # no new execution
