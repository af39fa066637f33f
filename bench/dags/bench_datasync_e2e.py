"""The benchmark's end-to-end DAG: the example migration's shape, with a destination connection.

``dags/example_datasync_migration.py`` takes no connection id through its Params (it targets local
paths), so the harness points ``AIRFLOW__CORE__DAGS_FOLDER`` here. The connection id comes from
``DATASYNC_BENCH_DESTINATION_CONN_ID`` (the harness sets ``AIRFLOW_CONN_<ID>`` next to it).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param, dag

from airflow_datasync.operators import sync_task_group


@dag(
    dag_id="bench_datasync_e2e",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["airflow-datasync", "bench"],
    params={
        "source": Param("/tmp/bench-source", type="string"),
        "destination": Param("s3://bench/e2e", type="string"),
        "options": Param({"VerifyMode": "POINT_IN_TIME_CONSISTENT"}, type="object"),
    },
)
def bench_datasync_e2e():
    sync_task_group(
        "migrate",
        source="{{ params.source }}",
        destination="{{ params.destination }}",
        options="{{ params.options }}",
        destination_conn_id=os.environ.get("DATASYNC_BENCH_DESTINATION_CONN_ID") or None,
        sync_task_name="bench-e2e",
    )


bench_datasync_e2e()
