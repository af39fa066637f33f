"""A DAG that tests/airflow/test_resume_dag.py runs with dag.test(): an S3 source (connection
``datasync_test_s3``), a local destination and store from Params, and ``resume_execution`` from the run's
conf (empty: a new execution)."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from airflow_datasync.operators import sync_task_group


@dag(
    dag_id="datasync_test_resume",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"source": Param("s3://nowhere/src", type="string"), "destination": Param("/nonexistent", type="string"),
            "store": Param("/nonexistent", type="string"), "resume_execution": Param(None, type=["null", "string"])},
)
def datasync_test_resume():
    sync_task_group("sync", source="{{ params.source }}", source_conn_id="datasync_test_s3",
                    destination="{{ params.destination }}", options={"files_per_shard": 8},
                    manifest_store="{{ params.store }}", sync_task_name="test-resume",
                    resume_execution="{{ params.resume_execution }}", transfer_retries=0)


test_resume_dag = datasync_test_resume()
