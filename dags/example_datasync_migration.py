"""Example: a scheduled migration of a mounted file tree, with a trigger form for one-off runs.

Trigger it from the UI with other paths or options (the form shows the Params), or let it run daily:
each run is one DataSync-style execution (LAUNCHING → PREPARING → TRANSFERRING → VERIFYING → report).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param, dag

from airflow_datasync.operators import sync_task_group

DEMO_ROOT = os.environ.get("AIRFLOW_DATASYNC_DEMO_ROOT", "/tmp/airflow-datasync-demo")


@dag(
    dag_id="example_datasync_migration",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["airflow-datasync", "example"],
    params={
        "source": Param(f"{DEMO_ROOT}/source", type="string", title="Source",
                        description="file:///path or /path of a local disk or mounted NFS/EFS/FSx export"),
        "destination": Param(f"{DEMO_ROOT}/destination", type="string", title="Destination"),
        "options": Param(
            {"VerifyMode": "ONLY_FILES_TRANSFERRED", "TransferMode": "CHANGED", "PreserveDeletedFiles": "PRESERVE",
             "files_per_shard": 500},
            type="object", title="Options",
            description="DataSync Options: VerifyMode, TransferMode, OverwriteMode, PreserveDeletedFiles, Mtime, "
                        "Atime, Uid, Gid, PosixPermissions, BytesPerSecond, Includes, Excludes, TaskReportConfig",
        ),
    },
)
def example_datasync_migration():
    sync_task_group(
        "migrate",
        source="{{ params.source }}",
        destination="{{ params.destination }}",
        options="{{ params.options }}",
        sync_task_name="example-migration",
    )


migration_dag = example_datasync_migration()
