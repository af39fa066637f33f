"""The DAG of tests/airflow/test_resume_clear.py, parsed by a real dag-processor: ``$DATASYNC_REAL_ROOT/src``
synced to ``.../dst`` in shards of 4 entries; the shards do not retry (a failed shard stays failed until
cleared), the other tasks retry once (a task runner lost on a loaded machine is not the case under test)."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_datasync.operators import sync_task_group

ROOT = os.environ.get("DATASYNC_REAL_ROOT", "/nonexistent")

with DAG("datasync_real_resume", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         catchup=False, default_args={"retries": 1, "retry_delay": timedelta(seconds=1)}) as resume_dag:
    sync_task_group("sync", source=f"{ROOT}/src", destination=f"{ROOT}/dst", options={"files_per_shard": 4},
                    sync_task_name="real-resume", transfer_retries=0)
