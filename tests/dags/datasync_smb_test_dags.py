"""A DAG that the SMB tests run with dag.test(run_conf=...): an SMB destination through a datasync_smb connection."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from airflow_datasync.operators import sync_task_group


@dag(
    dag_id="datasync_test_smb_sync",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    params={"source": Param("/nonexistent", type="string"), "destination": Param("smb://nowhere/share", type="string"),
            "options": Param({}, type="object")},
)
def datasync_test_smb_sync():
    sync_task_group("sync", source="{{ params.source }}", destination="{{ params.destination }}",
                    destination_conn_id="datasync_smb_test", options="{{ params.options }}",
                    sync_task_name="test-smb-sync", transfer_retry_delay=timedelta(seconds=1))


test_smb_sync_dag = datasync_test_smb_sync()
