"""Example: one folder per day, synced by a daily DAG that backfills naturally.

Paths are templated by the run's date: ``$AIRFLOW_DATASYNC_DEMO_ROOT/daily/source/<YYYY-MM-DD>`` is synced
to ``.../daily/destination/<YYYY-MM-DD>`` (root default ``/tmp/airflow-datasync-demo``). A run triggered by
hand may have no logical date, so the date falls back to the run's ``run_after`` instead of failing on an
undefined ``{{ ds }}``. A day whose source folder is missing fails its first task, saying what to set.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_datasync.operators import sync_task_group

ROOT = os.environ.get("AIRFLOW_DATASYNC_DEMO_ROOT", "/tmp/airflow-datasync-demo")
DAY = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"


@task
def check_day_folder(source: str) -> str:
    """Fail at once, saying what to set, when the day's source folder is missing (no retry can create it)."""
    if not os.path.isdir(source):
        raise AirflowFailException(
            f"{source} does not exist. This example syncs one folder per day, laid out as "
            f"<root>/daily/source/<YYYY-MM-DD> with <root> = AIRFLOW_DATASYNC_DEMO_ROOT (now {ROOT!r}). "
            "Set AIRFLOW_DATASYNC_DEMO_ROOT for the scheduler and workers to a folder with that layout, "
            "or create the folder for this day.")
    return source


@dag(
    dag_id="example_datasync_backfill",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["airflow-datasync", "example"],
)
def example_datasync_backfill():
    source = f"{ROOT}/daily/source/{DAY}"
    daily = sync_task_group(
        "daily_sync",
        source=source,
        destination=f"{ROOT}/daily/destination/{DAY}",
        options={"VerifyMode": "POINT_IN_TIME_CONSISTENT", "Excludes": "*.tmp|/scratch"},
        sync_task_name="example-daily",
    )
    check_day_folder(source) >> daily


backfill_dag = example_datasync_backfill()
