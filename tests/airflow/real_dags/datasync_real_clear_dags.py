"""A DAG for tests/airflow/test_real_clear_resume.py, parsed by a real dag-processor.

It syncs ``$DATASYNC_REAL_ROOT/clear-src`` to ``.../clear-dst`` in shards of a few files. Between PREPARING
and TRANSFERRING, ``hide_one`` moves one planned source file aside, so the shard holding it fails for real
(the file vanished after PREPARING) and the run fails; the test puts the file back and clears the run's
TRANSFERRING/FINALIZE/VERIFYING/report task instances."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, task

from airflow_datasync.operators import sync_task_group

ROOT = os.environ.get("DATASYNC_REAL_ROOT", "/nonexistent")
#: The source file ``hide_one`` moves to ``$DATASYNC_REAL_ROOT/hidden`` (the test moves it back).
HIDDEN = "f13.bin"


@task
def hide_one() -> None:
    os.makedirs(f"{ROOT}/hidden", exist_ok=True)
    if os.path.exists(f"{ROOT}/clear-src/{HIDDEN}"):
        os.rename(f"{ROOT}/clear-src/{HIDDEN}", f"{ROOT}/hidden/{HIDDEN}")


with DAG("datasync_real_clear", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         catchup=False) as clear_dag:
    group = sync_task_group("sync", source=f"{ROOT}/clear-src", destination=f"{ROOT}/clear-dst",
                            options={"files_per_shard": 8}, sync_task_name="real-clear", transfer_retries=0)
    group.children["sync.prepare"] >> hide_one() >> group.children["sync.transfer"]
