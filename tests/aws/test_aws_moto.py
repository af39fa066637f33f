"""The AWS path against moto's DataSync server: Airflow runs the whole group with ``dag.test()`` (each
phase sensor defers, its trigger runs inline after the serialize() round trip), and cancel on kill."""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_datasync.aws.client import AwsSyncClient
from airflow_datasync.triggers.aws_datasync import AwsSyncPhaseTrigger
from tests.airflow.test_sync_dag import load_dag, states
from tests.aws.conftest import MOTO_CONN_ID

GROUP = "aws_sync"
PHASE_TASKS = ("launching", "preparing", "transferring", "verifying")


def xcom(run, task_id: str, key: str = "return_value"):
    ti = next(t for t in run.get_task_instances() if t.task_id == task_id)
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=ti.dag_id, run_id=ti.run_id, task_id=task_id, key=key).one()
        return XComModel.deserialize_value(row)


@pytest.fixture
def moto_dag(airflow_db, dags_folder, moto_datasync):
    return load_dag(dags_folder, "datasync_aws_test_dags.py", "datasync_test_aws_moto")


def test_moto_full_group_start_each_phase_through_its_trigger_then_report(moto_dag, moto_datasync):
    task_arn = moto_datasync.create_task()
    before = len(moto_datasync.executions())

    run = moto_dag.test(run_conf={"task_arn": task_arn, "options": {"VerifyMode": "POINT_IN_TIME_CONSISTENT"},
                                  "excludes": "*.tmp|/scratch"})

    st = states(run)
    assert str(run.state) == "success", st
    assert set(st) == {f"{GROUP}.{t}" for t in ("start", *PHASE_TASKS, "report")}
    assert all(v == ["success"] for v in st.values()), st
    arn = xcom(run, f"{GROUP}.start")
    assert arn.startswith(task_arn + "/execution/")
    for phase in PHASE_TASKS:
        left = xcom(run, f"{GROUP}.{phase}")
        assert left["Phase"] == phase.upper() and left["TaskExecutionArn"] == arn
    for task in ("start", "transferring"):  # the Amazon provider's console button, there while a sensor waits
        link = xcom(run, f"{GROUP}.{task}", key="datasync_task_execution")
        assert link == {"region_name": "us-east-1", "aws_domain": "aws.amazon.com",
                        "task_id": task_arn.rsplit("/", 1)[-1], "task_execution_id": arn.rsplit("/", 1)[-1]}
    report = xcom(run, f"{GROUP}.report", key="summary")
    assert report["Status"] == "SUCCESS" and report["TaskExecutionArn"] == arn
    assert report["TaskExecutionId"] == arn.rsplit("/", 1)[-1]
    assert report["FilesTransferred"] == 0 and report["Engine"] == "aws"  # moto has no counters
    assert len(moto_datasync.executions()) == before + 1  # counted by moto itself: one StartTaskExecution


def test_trigger_round_trips_with_ids_only():
    trigger = AwsSyncPhaseTrigger(task_execution_arn="arn:aws:datasync:us-east-1:1:task/task-1/execution/exec-1",
                                  phase="PREPARING", aws_conn_id=MOTO_CONN_ID, region_name="us-east-1",
                                  poll_interval=5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_datasync.triggers.aws_datasync.AwsSyncPhaseTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert set(kwargs) == {"task_execution_arn", "phase", "aws_conn_id", "region_name", "poll_interval",
                           "cancel_on_kill"}
    assert "moto-secret" not in json.dumps(kwargs)


def test_trigger_on_kill_cancels_the_execution_in_moto(moto_datasync):
    task_arn = moto_datasync.create_task()
    arn = moto_datasync.client.start_task_execution(TaskArn=task_arn)["TaskExecutionArn"]
    trigger = AwsSyncPhaseTrigger(task_execution_arn=arn, phase="VERIFYING", aws_conn_id=MOTO_CONN_ID,
                                  poll_interval=600)

    async def waits_then_is_killed():
        waiting = asyncio.ensure_future(anext(trigger.run()))
        while moto_datasync.execution_status(arn) == "INITIALIZING":  # until the trigger's first poll
            await asyncio.sleep(0.05)
        assert not waiting.done()  # it saw INITIALIZING and now sleeps until its next poll
        waiting.cancel()  # what the triggerer does on mark-failed; then it calls on_kill
        await trigger.on_kill()
        await trigger.cleanup()

    asyncio.run(waits_then_is_killed())
    assert moto_datasync.execution_status(arn) == "ERROR"  # moto turns a cancelled execution into ERROR at once
    assert AwsSyncClient(MOTO_CONN_ID).describe_task(task_arn).get("CurrentTaskExecutionArn") is None


def test_example_dag_runs_against_moto_and_reads_the_counters(airflow_db, dags_folder, moto_datasync, permissive_s3,
                                                             monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", permissive_s3.connection_uri_json())
    dag = load_dag(dags_folder, "example_aws_datasync.py", "example_aws_datasync")
    task_arn = moto_datasync.create_task()
    run = dag.test(run_conf={"task_arn": task_arn, "verify_mode": "NONE", "excludes": "*.tmp"})
    assert str(run.state) == "success", states(run)
    assert xcom(run, "announce").endswith(": 0 files, 0 bytes")
