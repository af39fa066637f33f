"""Example: one folder per day, synced by a daily DAG that backfills naturally.

Paths are templated by the run's date. A run triggered by hand may have no logical date, so the date
falls back to the run's ``run_after`` instead of failing on an undefined ``{{ ds }}``.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag

from airflow_datasync.operators import sync_task_group

ROOT = os.environ.get("AIRFLOW_DATASYNC_DEMO_ROOT", "/tmp/airflow-datasync-demo")
DAY = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"


@dag(
    dag_id="example_datasync_backfill",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["airflow-datasync", "example"],
)
def example_datasync_backfill():
    sync_task_group(
        "daily_sync",
        source=f"{ROOT}/daily/source/{DAY}",
        destination=f"{ROOT}/daily/destination/{DAY}",
        options={"VerifyMode": "POINT_IN_TIME_CONSISTENT", "Excludes": "*.tmp|/scratch"},
        sync_task_name="example-daily",
    )


backfill_dag = example_datasync_backfill()
