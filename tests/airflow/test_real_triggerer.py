"""A real Airflow: api-server, scheduler (LocalExecutor), dag-processor and triggerer on a private
AIRFLOW_HOME with its own SQLite DB, all on 127.0.0.1 (servers that offer it skip their log server).

It shows what dag.test() cannot: the quiet sensor's task instance sits in ``deferred`` (no worker slot)
while the triggerer polls; creating the marker ends the wait; the sync runs; its report task's asset
event makes the scheduler start the consumer DAG, which reads the DataSync counters from that event.
The harness is tests/airflow/real_airflow.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.airflow.real_airflow import started_airflow, xcom_value

DAGS = Path(__file__).parent / "real_dags"


@pytest.fixture
def real_airflow():
    with started_airflow([DAGS / "datasync_real_dags.py"]) as airflow:
        (airflow.root / "incoming" / "sub").mkdir(parents=True)
        yield airflow


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
