"""DAGs that the Airflow tests run with dag.test(run_conf=...): paths and options come from the run conf."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from airflow_datasync.operators import sync_task_group


@dag(
    dag_id="datasync_test_sync",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    params={"source": Param("/nonexistent", type="string"), "destination": Param("/nonexistent", type="string"),
            "options": Param({}, type="object"), "resume": Param("", type="string")},
)
def datasync_test_sync():
    sync_task_group("sync", source="{{ params.source }}", destination="{{ params.destination }}",
                    options="{{ params.options }}", sync_task_name="test-sync",
                    transfer_retry_delay=timedelta(seconds=1), resume_execution="{{ params.resume }}")


test_sync_dag = datasync_test_sync()
