"""DAGs for the trigger-form tests: options from the run's params (datasync_params), retries in default_args
so that a bad option retried would show, and a task group that always dry-runs."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag

from airflow_datasync.operators import sync_task_group
from airflow_datasync.params import datasync_params


@dag(
    dag_id="datasync_test_params",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=1)},
    params=datasync_params(source="/nonexistent", destination="/nonexistent"),
)
def datasync_test_params():
    sync_task_group("sync", options_from_params=True, sync_task_name="test-params",
                    transfer_retry_delay=timedelta(seconds=1))


@dag(
    dag_id="datasync_test_dry_run",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    params=datasync_params(source="/nonexistent", destination="/nonexistent", PreserveDeletedFiles="REMOVE"),
)
def datasync_test_dry_run():
    sync_task_group("sync", source="{{ params.source }}", destination="{{ params.destination }}",
                    options_from_params=True, dry_run=True, sync_task_name="test-dry-run")


params_dag = datasync_test_params()
dry_run_dag = datasync_test_dry_run()
