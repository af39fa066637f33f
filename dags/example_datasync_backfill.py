"""Example: one folder per day, synced by a daily DAG that backfills naturally.

Paths are templated by the run's date: ``$AIRFLOW_DATASYNC_DEMO_ROOT/daily/source/<YYYY-MM-DD>`` is synced
to ``.../daily/destination/<YYYY-MM-DD>`` (root default ``/tmp/airflow-datasync-demo``). A run triggered by
hand may have no logical date, so the date falls back to the run's ``run_after`` instead of failing on an
undefined ``{{ ds }}``.

Before copying, ``wait_for_day`` (a deferrable LocationQuietSensor: it waits in the triggerer, holding no
worker slot) waits until the producer has finished the day's folder: nothing in it changed for
``AIRFLOW_DATASYNC_DEMO_QUIET_SECONDS`` (default 60) and, if the run's ``marker`` param names one (e.g.
``_SUCCESS``), that file exists. A day folder that does not exist yet is waited for; a missing
``<root>/daily/source`` is a setup mistake, so the first task fails at once, saying what to set.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_datasync.operators import sync_task_group
from airflow_datasync.sensors import LocationQuietSensor

ROOT = os.environ.get("AIRFLOW_DATASYNC_DEMO_ROOT", "/tmp/airflow-datasync-demo")
DAY = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"
QUIET_SECONDS = float(os.environ.get("AIRFLOW_DATASYNC_DEMO_QUIET_SECONDS", "60"))


@task
def check_source_root(source: str) -> str:
    """Fail at once, saying what to set, when ``<root>/daily/source`` is missing: that is a setup mistake no
    waiting fixes (a missing day folder below it is a late producer, which the sensor waits for)."""
    if not os.path.isdir(os.path.dirname(source.rstrip("/"))):
        raise AirflowFailException(
            f"{os.path.dirname(source.rstrip('/'))} does not exist, so {source} never will. This example syncs "
            "one folder per day, laid out as "
            f"<root>/daily/source/<YYYY-MM-DD> with <root> = AIRFLOW_DATASYNC_DEMO_ROOT (now {ROOT!r}). "
            "Set AIRFLOW_DATASYNC_DEMO_ROOT for the scheduler and workers to a folder with that layout, "
            "or create that folder.")
    return source


@dag(
    dag_id="example_datasync_backfill",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["airflow-datasync", "example"],
    params={"marker": Param("", type="string", title="Marker file",
                            description="Wait for this file in the day's folder too (e.g. _SUCCESS); empty: no marker.")},
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
    wait_for_day = LocationQuietSensor(
        task_id="wait_for_day", uri=source, marker="{{ params.marker }}", quiet_period=QUIET_SECONDS,
        poke_interval=min(30.0, max(QUIET_SECONDS / 3, 0.5)), timeout=6 * 3600,
    )
    check_source_root(source) >> wait_for_day >> daily


backfill_dag = example_datasync_backfill()
