"""DAGs for the AWS DataSync service tests: the task ARN and options come from the run conf.

One DAG per server (moto, the thin fake), because the AWS connection id is not templated.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_datasync.operators.aws_datasync import aws_datasync_task_group


def _aws_dag(dag_id: str, conn_id: str) -> DAG:
    with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
             render_template_as_native_obj=True,
             params={"task_arn": Param("arn:aws:datasync:us-east-1:123456789012:task/task-0", type="string"),
                     "options": Param({}, type="object"), "excludes": Param("", type="string")}) as dag:
        aws_datasync_task_group("aws_sync", task_arn="{{ params.task_arn }}", aws_conn_id=conn_id,
                                options="{{ params.options }}", excludes="{{ params.excludes }}",
                                poll_interval=0.1, start_retries=2, start_retry_delay=timedelta(0))
    return dag


aws_moto_dag = _aws_dag("datasync_test_aws_moto", "datasync_test_aws_moto")
aws_fake_dag = _aws_dag("datasync_test_aws_fake", "datasync_test_aws_fake")


def _aws_poke_dag() -> DAG:
    """The same group with ``deferrable=False``: the phase sensors poke, rescheduled between pokes."""
    with DAG("datasync_test_aws_fake_poke", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
             catchup=False, params={"task_arn": Param("arn:aws:datasync:us-east-1:123456789012:task/task-0",
                                                      type="string")}) as dag:
        aws_datasync_task_group("aws_sync", task_arn="{{ params.task_arn }}", aws_conn_id="datasync_test_aws_fake",
                                poll_interval=0.1, deferrable=False, sensor_mode="reschedule",
                                start_retry_delay=timedelta(0))
    return dag


aws_fake_poke_dag = _aws_poke_dag()
