"""A DAG that the S3 tests run with dag.test(run_conf=...): an S3 destination and an S3 manifest store, both
through the AWS connection ``datasync_test_s3``; source, destination, store and options come from Params."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from airflow_datasync.operators import sync_task_group


@dag(
    dag_id="datasync_test_s3_sync",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    params={"source": Param("/nonexistent", type="string"), "destination": Param("s3://nowhere/data", type="string"),
            "store": Param("s3://nowhere/manifests", type="string"), "options": Param({}, type="object")},
)
def datasync_test_s3_sync():
    sync_task_group("sync", source="{{ params.source }}", destination="{{ params.destination }}",
                    destination_conn_id="datasync_test_s3", options="{{ params.options }}",
                    manifest_store="{{ params.store }}", manifest_store_conn_id="datasync_test_s3",
                    sync_task_name="test-s3-sync", transfer_retry_delay=timedelta(seconds=1))


test_s3_sync_dag = datasync_test_s3_sync()
