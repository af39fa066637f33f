"""The AWS path where moto stops: counters, QUEUED, CANCELLING, ERROR in a given phase, retries that
reattach, cancel on kill. Against the thin fake DataSync service in ``fake_datasync.py`` (see its
docstring for why moto is not enough); Airflow runs the DAGs with ``dag.test()``."""

from __future__ import annotations

import asyncio

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_datasync.operators.aws_datasync import EXECUTION_KEY, AwsSyncStartExecutionOperator
from airflow_datasync.options import OptionsError
from airflow_datasync.sensors.aws_datasync import AwsSyncPhaseSensor
from airflow_datasync.triggers.aws_datasync import AwsSyncPhaseTrigger
from tests.airflow.test_sync_dag import load_dag, states
from tests.aws.conftest import FAKE_CONN_ID
from tests.aws.fake_datasync import SUCCESS_SCRIPT, TRANSFER_ERROR_SCRIPT
from tests.aws.test_aws_moto import GROUP, xcom


@pytest.fixture
def fake_dag(airflow_db, dags_folder, fake_datasync):
    return load_dag(dags_folder, "datasync_aws_test_dags.py", "datasync_test_aws_fake")


def tries(run, task: str) -> int:
    return next(ti.try_number for ti in run.get_task_instances() if ti.task_id == f"{GROUP}.{task}")


def test_counters_come_through_under_datasync_names_after_queued(fake_dag, fake_datasync):
    task_arn = fake_datasync.create_task("nightly-archive")

    run = fake_dag.test(run_conf={"task_arn": task_arn, "options": {"VerifyMode": "ONLY_FILES_TRANSFERRED",
                                                                     "Uid": "NAME"}, "excludes": "*.tmp"})

    st = states(run)
    assert str(run.state) == "success", st
    assert all(v == ["success"] for v in st.values()), st
    report = xcom(run, f"{GROUP}.report", key="summary")
    final = SUCCESS_SCRIPT[-1]
    for name in ("FilesTransferred", "BytesWritten", "BytesTransferred", "FilesSkipped", "FilesDeleted",
                 "FilesVerified", "EstimatedFilesToTransfer", "EstimatedBytesToTransfer"):
        assert report[name] == final[name], name
    for name in ("PrepareDuration", "TransferDuration", "VerifyDuration", "TotalDuration"):
        assert report[name] == final["Result"][name], name
    assert report["FilesFailed"] == 0 and report["Status"] == "SUCCESS" and report["ErrorCode"] is None
    assert report["TaskName"] == "nightly-archive" and report["TaskExecutionId"].startswith("exec-")
    assert report["TaskExecutionArn"] == xcom(run, f"{GROUP}.start")
    assert fake_datasync.started() == 1
    (_, request), = [r for r in fake_datasync.requests if r[0] == "StartTaskExecution"]
    assert request == {"TaskArn": task_arn, "OverrideOptions": {"VerifyMode": "ONLY_FILES_TRANSFERRED", "Uid": "NAME"},
                       "Excludes": [{"FilterType": "SIMPLE_PATTERN", "Value": "*.tmp"}]}
    # QUEUED twice, then LAUNCHING: the LAUNCHING sensor's trigger kept waiting through QUEUED.
    assert fake_datasync.calls["DescribeTaskExecution"] >= len(SUCCESS_SCRIPT)


def test_error_during_transfer_fails_the_transferring_task_only(fake_dag, fake_datasync):
    fake_datasync.scripts = [TRANSFER_ERROR_SCRIPT]
    run = fake_dag.test(run_conf={"task_arn": fake_datasync.create_task()})

    st = states(run)
    assert str(run.state) == "failed"
    assert st[f"{GROUP}.launching"] == st[f"{GROUP}.preparing"] == ["success"]
    assert st[f"{GROUP}.transferring"] == ["failed"] and st[f"{GROUP}.verifying"] == ["upstream_failed"]
    assert st[f"{GROUP}.report"] == ["failed"]  # it ran (all_done) and failed because the execution did
    assert tries(run, "transferring") == 1  # an ERROR execution cannot recover: no retry
    report = xcom(run, f"{GROUP}.report", key="summary")
    assert report["Status"] == "ERROR" and report["ErrorCode"] == "SyncTaskErrorLocationNotReadable"
    assert report["FilesFailed"] == 3 and report["FilesTransferred"] == 37
    assert fake_datasync.started() == 1


def test_cancelling_is_waited_through_and_ends_as_error(fake_dag, fake_datasync):
    cancelled_in_console = SUCCESS_SCRIPT[2:5] + [
        {"Status": "CANCELLING"}, {"Status": "CANCELLING"},
        {"Status": "ERROR", "Result": {"PrepareStatus": "SUCCESS", "TransferStatus": "ERROR", "VerifyStatus": "PENDING",
                                       "ErrorCode": "OperationCanceled", "ErrorDetail": "Task execution was cancelled"}}]
    fake_datasync.scripts = [cancelled_in_console]
    run = fake_dag.test(run_conf={"task_arn": fake_datasync.create_task()})

    st = states(run)
    assert st[f"{GROUP}.preparing"] == ["success"] and st[f"{GROUP}.transferring"] == ["failed"], st
    assert xcom(run, f"{GROUP}.report", key="summary")["ErrorCode"] == "OperationCanceled"


def test_error_event_names_the_phase_and_aws_error():
    sensor = AwsSyncPhaseSensor(task_id="transferring", phase="TRANSFERRING", aws_conn_id=FAKE_CONN_ID,
                                task_execution_arn="arn:aws:datasync:us-east-1:1:task/task-1/execution/exec-9")
    event = {"outcome": "FAILED", "status": "ERROR",
             "result": {"ErrorCode": "SyncTaskErrorLocationNotReadable", "ErrorDetail": "3 files unreadable"}}
    with pytest.raises(AirflowFailException, match="exec-9 ended in ERROR during TRANSFERRING: "
                                                   "SyncTaskErrorLocationNotReadable: 3 files unreadable"):
        sensor.execute_complete({}, event)


def test_unknown_status_fails_with_a_clear_message(fake_dag, fake_datasync):
    fake_datasync.scripts = [[{"Status": "PAUSED"}]]
    run = fake_dag.test(run_conf={"task_arn": fake_datasync.create_task()})
    assert states(run)[f"{GROUP}.launching"] == ["failed"]
    assert tries(run, "launching") == 1


def test_retry_reattaches_to_the_stored_execution(fake_dag, fake_datasync):
    fake_datasync.fail_next["DescribeTaskExecution"] = 1  # try 1 dies right after StartTaskExecution
    run = fake_dag.test(run_conf={"task_arn": fake_datasync.create_task()})

    assert str(run.state) == "success", states(run)
    assert tries(run, "start") == 2
    assert fake_datasync.started() == 1  # counted at the server: no second StartTaskExecution
    assert xcom(run, f"{GROUP}.report", key="summary")["FilesTransferred"] == SUCCESS_SCRIPT[-1]["FilesTransferred"]


def test_retry_adopts_the_execution_whose_start_answer_was_lost(fake_dag, fake_datasync):
    fake_datasync.lose_next_start_answer = True  # AWS created it, the answer never arrived
    task_arn = fake_datasync.create_task()
    run = fake_dag.test(run_conf={"task_arn": task_arn})

    assert str(run.state) == "success", states(run)
    assert tries(run, "start") == 2
    assert fake_datasync.started() == 1 and fake_datasync.calls["DescribeTask"] >= 1
    (only,) = fake_datasync.executions
    assert xcom(run, f"{GROUP}.start") == only


def test_retry_after_an_execution_that_ended_in_error_starts_a_new_one(fake_dag, fake_datasync):
    failed = [{"Status": "ERROR", "Result": {"PrepareStatus": "ERROR", "ErrorCode": "SyncTaskErrorLocationNotAdded",
                                             "ErrorDetail": "agent offline"}}]
    fake_datasync.scripts = [failed, SUCCESS_SCRIPT]
    fake_datasync.fail_next["DescribeTaskExecution"] = 1
    run = fake_dag.test(run_conf={"task_arn": fake_datasync.create_task()})

    assert str(run.state) == "success", states(run)
    assert fake_datasync.started() == 2
    first, second = fake_datasync.executions
    assert xcom(run, f"{GROUP}.report", key="summary")["TaskExecutionArn"] == second


def test_bad_option_fails_at_once_without_retries_or_calls(fake_dag, fake_datasync):
    run = fake_dag.test(run_conf={"task_arn": fake_datasync.create_task(), "options": {"VerifyMode": "SOMETIMES"}})

    assert states(run)[f"{GROUP}.start"] == ["failed"]
    assert tries(run, "start") == 1
    assert fake_datasync.started() == 0


def test_bad_option_fails_when_the_dag_is_parsed():
    with pytest.raises(OptionsError, match="VerifyMode='SOMETIMES' is invalid"):
        AwsSyncStartExecutionOperator(task_id="start", task_arn="arn:aws:datasync:us-east-1:1:task/task-1",
                                      options={"VerifyMode": "SOMETIMES"})


def test_poke_mode_runs_the_same_group_on_the_worker(airflow_db, dags_folder, fake_datasync):
    dag = load_dag(dags_folder, "datasync_aws_test_dags.py", "datasync_test_aws_fake_poke")
    run = dag.test(run_conf={"task_arn": fake_datasync.create_task()})
    assert str(run.state) == "success", states(run)
    assert xcom(run, f"{GROUP}.report", key="summary")["FilesVerified"] == SUCCESS_SCRIPT[-1]["FilesVerified"]


# -- cancel on kill --------------------------------------------------------------------------------------
class _TaskStateStore:
    """Stands in for Airflow's ``context["task_state_store"]`` when calling execute() outside a task run."""

    def __init__(self) -> None:
        self.values: dict = {}

    def get(self, key, default=None):
        return self.values.get(key, default)

    def set(self, key, value, **_):
        self.values[key] = value

    def delete(self, key):
        self.values.pop(key, None)


def _statuses_after(fake, arn: str, describes: int) -> list[str]:
    execution = fake.executions[arn]
    return [execution.describe()["Status"] for _ in range(describes)]


def test_killing_the_start_task_cancels_the_execution_it_started(fake_datasync):
    op = AwsSyncStartExecutionOperator(task_id="start", task_arn=fake_datasync.create_task(), aws_conn_id=FAKE_CONN_ID)
    store = _TaskStateStore()
    arn = op.execute({"task_state_store": store})
    assert store.values[EXECUTION_KEY]["TaskExecutionArn"] == arn

    op.on_kill()
    assert fake_datasync.calls["CancelTaskExecution"] == 1
    assert _statuses_after(fake_datasync, arn, 3) == ["CANCELLING", "CANCELLING", "ERROR"]


def test_killing_a_poking_sensor_cancels_the_execution(fake_datasync):
    task_arn = fake_datasync.create_task()
    arn = AwsSyncStartExecutionOperator(task_id="s", task_arn=task_arn, aws_conn_id=FAKE_CONN_ID).execute(
        {"task_state_store": _TaskStateStore()})
    sensor = AwsSyncPhaseSensor(task_id="transferring", phase="TRANSFERRING", task_execution_arn=arn,
                                aws_conn_id=FAKE_CONN_ID, deferrable=False)
    sensor.on_kill()
    assert [body for op, body in fake_datasync.requests if op == "CancelTaskExecution"] == [{"TaskExecutionArn": arn}]


def test_trigger_on_kill_cancels_but_cleanup_does_not(fake_datasync):
    arn = AwsSyncStartExecutionOperator(task_id="s", task_arn=fake_datasync.create_task(),
                                        aws_conn_id=FAKE_CONN_ID).execute({"task_state_store": _TaskStateStore()})
    trigger = AwsSyncPhaseTrigger(task_execution_arn=arn, phase="VERIFYING", aws_conn_id=FAKE_CONN_ID, poll_interval=600)

    async def deferred_then_marked_failed():
        calls = fake_datasync.calls["DescribeTaskExecution"]
        waiting = asyncio.ensure_future(anext(trigger.run()))
        while fake_datasync.calls["DescribeTaskExecution"] == calls:  # until its first poll
            await asyncio.sleep(0.02)
        await trigger.cleanup()  # also runs when a trigger just moves to another triggerer
        assert fake_datasync.calls["CancelTaskExecution"] == 0
        waiting.cancel()
        await trigger.on_kill()

    asyncio.run(deferred_then_marked_failed())
    assert fake_datasync.calls["CancelTaskExecution"] == 1

    # A trigger watching the cancelled execution waits through CANCELLING and reports the ERROR.
    watcher = AwsSyncPhaseTrigger(task_execution_arn=arn, phase="VERIFYING", aws_conn_id=FAKE_CONN_ID,
                                  poll_interval=0.01)
    event = asyncio.run(anext(watcher.run()))
    assert event.payload["outcome"] == "FAILED" and event.payload["result"]["ErrorCode"] == "OperationCanceled"
