"""Example: a scheduled migration of a mounted file tree, with a trigger form for one-off runs.

Trigger it from the UI with other paths or options: the form has one field per DataSync option (with its
allowed values in a drop-down), a "Dry run" toggle, and the engine settings; or let it run daily. Each run
is one DataSync-style execution (LAUNCHING → PREPARING → TRANSFERRING → VERIFYING → report).

Out of the box it syncs ``$AIRFLOW_DATASYNC_DEMO_ROOT/source`` (default ``/tmp/airflow-datasync-demo``)
to ``.../destination``; the first task writes a small sample tree there when that demo source does not
exist yet, so the DAG runs green when unpaused in a fresh Airflow. Any other source is left alone.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task

from airflow_datasync.operators import sync_task_group
from airflow_datasync.params import datasync_params

DEMO_ROOT = os.environ.get("AIRFLOW_DATASYNC_DEMO_ROOT", "/tmp/airflow-datasync-demo")
DEMO_SOURCE = f"{DEMO_ROOT}/source"


@task
def create_demo_source(source: str) -> str:
    """Write a small sample tree at the demo source if that is the run's source and it does not exist."""
    if source != DEMO_SOURCE or os.path.exists(source):
        return f"{source}: left as it is"
    from pathlib import Path

    from airflow_datasync.demo import generate

    files, size = generate(Path(source), files=200, large_files=0)
    return f"{source}: wrote a sample tree of {files} files ({size:,} bytes)"


@dag(
    dag_id="example_datasync_migration",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["airflow-datasync", "example"],
    params=datasync_params(source=DEMO_SOURCE, destination=f"{DEMO_ROOT}/destination", files_per_shard=500),
)
def example_datasync_migration():
    migrate = sync_task_group("migrate", options_from_params=True, sync_task_name="example-migration")
    create_demo_source("{{ params.source }}") >> migrate


migration_dag = example_datasync_migration()
