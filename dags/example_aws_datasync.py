"""Run an AWS DataSync task (defined in AWS) phase by phase, then act on its counters.

Each phase is a task that waits in the triggerer (no worker slot held); a retried or cleared start
task reattaches to the execution it started; marking a waiting task failed cancels the execution.
Set the DataSync task's ARN in the trigger form (or the run conf) and an AWS connection ``aws_default``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from airflow_datasync.operators.aws_datasync import aws_datasync_task_group


@dag(
    dag_id="example_aws_datasync",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "task_arn": Param("arn:aws:datasync:eu-west-1:123456789012:task/task-0123456789abcdef0", type="string",
                          pattern=r"^arn:aws[a-z-]*:datasync:[a-z0-9-]+:\d{12}:task/task-[0-9a-f]+$",
                          title="DataSync task ARN"),
        "verify_mode": Param("ONLY_FILES_TRANSFERRED", enum=["ONLY_FILES_TRANSFERRED", "POINT_IN_TIME_CONSISTENT",
                                                             "NONE"], title="VerifyMode"),
        "excludes": Param("*.tmp|/scratch", type="string", title="Exclude filter (DataSync pattern)"),
    },
)
def example_aws_datasync():
    sync = aws_datasync_task_group(
        "archive",
        task_arn="{{ params.task_arn }}",
        aws_conn_id="aws_default",
        options={"VerifyMode": "{{ params.verify_mode }}", "LogLevel": "BASIC"},
        excludes="{{ params.excludes }}",
        poll_interval=30,
    )

    @task
    def announce(summary: dict) -> str:
        return f"{summary['TaskExecutionId']}: {summary['FilesTransferred']} files, {summary['BytesWritten']} bytes"

    announce(sync.report.output)


example_aws_datasync_dag = example_aws_datasync()
