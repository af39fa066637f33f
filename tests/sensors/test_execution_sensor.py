"""SyncExecutionSensor through dag.test(): an execution of the engine runs its phases in a background
thread while the sensor's trigger polls its records in the manifest store."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_datasync import engine
from tests.airflow.test_sync_dag import load_dag, make_tree
from tests.sensors.helpers import Producer, TriggerStarted, ti_state, xcom

DAGS = "datasync_sensor_test_dags.py"


@pytest.fixture
def launched(tmp_path):
    """A launched execution (LAUNCHING done) and the phases still to run, in order."""
    src, dst, store = tmp_path / "src", tmp_path / "dst", tmp_path / "store"
    make_tree(src, files=6)
    dst.mkdir()
    execution = engine.launch(engine.LocationSpec(str(src)), engine.LocationSpec(str(dst)), {},
                              task_name="sensor-ref", store=str(store))
    return execution


def run_phases(execution, *, fail_transfer: bool = False):
    """The phases after LAUNCHING as steps; ``fail_transfer`` skips TRANSFERRING so the report says ERROR."""
    def step(i: int) -> None:
        if i == 0:
            for shard in engine.prepare(execution):
                if not fail_transfer:
                    engine.transfer(execution, shard["shard"])
        elif i == 1 and not fail_transfer:
            engine.finalize(execution)
            engine.verify(execution)
        elif i == 2:
            engine.report(execution)
    return step


def test_waits_for_the_end_of_an_execution_given_by_the_launch_tasks_output(airflow_db, dags_folder, launched):
    dag = load_dag(dags_folder, DAGS, "datasync_test_execution_sensor")
    with TriggerStarted() as trigger:
        phases = Producer(run_phases(launched), count=3, interval=0.2, start=trigger.event)
        phases.start()
        run = dag.test(run_conf={"execution": launched.ref(), "wait_for": "DONE"})
    phases.finish()
    assert str(run.state) == "success", ti_state(run, "wait_execution")
    assert trigger.count == 1
    summary = xcom(run, "wait_execution")
    assert summary == xcom(run, "wait_execution", key="summary")
    assert summary["status"] == "SUCCESS" and summary["execution_id"] == launched.execution_id
    assert summary["FilesTransferred"] > 6 and summary["FilesFailed"] == 0
    assert summary["phases_done"] == ["LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING"]


def test_an_error_before_the_phase_fails_the_sensor_with_datasyncs_error_code(airflow_db, dags_folder, launched,
                                                                              capfd):
    dag = load_dag(dags_folder, DAGS, "datasync_test_execution_sensor")
    with TriggerStarted() as trigger:
        phases = Producer(run_phases(launched, fail_transfer=True), count=3, interval=0.2, start=trigger.event)
        phases.start()
        run = dag.test(run_conf={"execution": launched.ref(), "wait_for": "VERIFYING"})
    phases.finish()
    assert ti_state(run, "wait_execution") == "failed"
    log = capfd.readouterr().out
    assert f"execution {launched.execution_id} ended in ERROR before VERIFYING finished: ErrorCode=TransferIncomplete" in log
    assert xcom(run, "wait_execution", key="summary")["status"] == "ERROR"


def test_a_phase_reached_counts_even_if_the_execution_failed_later(airflow_db, dags_folder, launched):
    run_phases(launched, fail_transfer=True)(0)  # PREPARING done, shards never copied
    run_phases(launched, fail_transfer=True)(2)  # report: ERROR
    dag = load_dag(dags_folder, DAGS, "datasync_test_execution_sensor")
    run = dag.test(run_conf={"execution": launched.ref(), "wait_for": "PREPARING"})
    assert str(run.state) == "success", ti_state(run, "wait_execution")
    assert xcom(run, "wait_execution")["status"] == "ERROR"


def test_latest_execution_of_a_task_name_launched_after_a_date(airflow_db, dags_folder, tmp_path):
    """An older finished execution does not satisfy the wait; the one launched while the sensor waits does."""
    src, dst, store = tmp_path / "src", tmp_path / "dst", tmp_path / "store"
    make_tree(src, files=4)
    dst.mkdir()
    old = engine.run_execution(str(src), str(dst), {}, task_name="sensor-latest", store=str(store))
    after = dt.datetime.now(dt.UTC).isoformat()
    started: list = []

    def launch_and_prepare(_i: int) -> None:
        execution = engine.launch(engine.LocationSpec(str(src)), engine.LocationSpec(str(dst)), {},
                                  task_name="sensor-latest", store=str(store))
        started.append(execution)
        engine.prepare(execution)

    dag = load_dag(dags_folder, DAGS, "datasync_test_latest_execution_sensor")
    with TriggerStarted() as trigger:
        producer = Producer(launch_and_prepare, count=1, interval=0, start=trigger.event)
        producer.start()
        run = dag.test(run_conf={"store": str(store), "after": after})
    producer.finish()
    assert str(run.state) == "success", ti_state(run, "wait_latest")
    assert trigger.count == 1  # the old execution did not end the wait at the first poke
    summary = xcom(run, "wait_latest")
    assert summary["execution_id"] == started[0].execution_id != old["TaskExecutionId"]
    assert summary["status"] == "TRANSFERRING" and "PREPARING" in summary["phases_done"]
