"""LocationQuietSensor through dag.test(): it pokes once, defers, and its trigger (rebuilt from its
serialised kwargs, as the triggerer does) waits until the location settles, on every backend."""

from __future__ import annotations

import pytest

from tests.airflow.test_sync_dag import load_dag
from tests.sensors.helpers import Producer, TriggerStarted, ti_state, xcom

DAGS = "datasync_sensor_test_dags.py"


@pytest.fixture
def quiet_dags(airflow_db, dags_folder):
    return lambda dag_id: load_dag(dags_folder, DAGS, dag_id)


def test_local_folder_that_keeps_changing_is_awaited_until_it_settles(quiet_dags, tmp_path):
    """A writer adds a file every 0.3 s, 8 times; the quiet period is 3 s, so the sensor can only succeed
    once the writer has stopped: its snapshot then holds all 8 files."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "first.csv").write_text("0")
    writer = Producer(lambda i: (folder / f"part-{i}.csv").write_text("x" * (i + 1)), count=8, interval=0.3)
    with TriggerStarted() as trigger:
        writer.start()
        run = quiet_dags("datasync_test_quiet_local").test(run_conf={"uri": str(folder), "marker": ""})
    writer.finish()
    assert str(run.state) == "success", ti_state(run, "wait_quiet")
    assert trigger.count == 1  # it deferred once: the wait happened in the trigger
    snapshot = xcom(run, "wait_quiet")
    assert snapshot["files"] == 9 and snapshot["total_bytes"] == 1 + sum(range(1, 9))


def test_marker_file_appearing_ends_the_wait(quiet_dags, tmp_path):
    folder = tmp_path / "day"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "data.parquet").write_bytes(b"PAR1")
    with TriggerStarted() as trigger:
        marker = Producer(lambda _i: (folder / "_SUCCESS").write_text(""), count=1, interval=0, start=trigger.event)
        marker.start()
        run = quiet_dags("datasync_test_quiet_local").test(run_conf={"uri": f"file://{folder}", "marker": "_SUCCESS"})
    marker.finish()
    assert str(run.state) == "success", ti_state(run, "wait_quiet")
    snapshot = xcom(run, "wait_quiet")
    assert snapshot["marker_present"] is True
    assert snapshot["files"] == 1  # the marker is not counted: writing it last does not restart the quiet period


def test_folder_created_while_waiting_is_not_an_error(quiet_dags, tmp_path):
    folder = tmp_path / "later"

    def create(_i):
        folder.mkdir()
        (folder / "a.txt").write_text("a")

    with TriggerStarted() as trigger:
        producer = Producer(create, count=1, interval=0, start=trigger.event)
        producer.start()
        run = quiet_dags("datasync_test_quiet_local").test(run_conf={"uri": str(folder), "marker": ""})
    producer.finish()
    assert str(run.state) == "success", ti_state(run, "wait_quiet")
    assert xcom(run, "wait_quiet")["files"] == 1


def test_timeout_fails_the_task_with_a_clear_message(quiet_dags, tmp_path, capfd):
    run = quiet_dags("datasync_test_quiet_timeout").test(run_conf={"uri": str(tmp_path / "never"), "marker": ""})
    assert str(run.state) == "failed"
    assert ti_state(run, "wait_quiet") == "failed"
    log = capfd.readouterr().out  # the task log goes to stdout under dag.test()
    assert f"AirflowSensorTimeout: wait_quiet: {tmp_path / 'never'} not quiet in time: the location does not exist yet" in log


def test_s3_prefix_settling_on_seaweedfs(quiet_dags, s3, bucket):
    s3.put_object(Bucket=bucket, Key="exports/2026-11-03/a.json", Body=b"{}")

    def upload(i):
        s3.put_object(Bucket=bucket, Key=f"exports/2026-11-03/part-{i}.json", Body=b"x" * (10 + i))

    with TriggerStarted() as trigger:
        uploader = Producer(upload, count=4, interval=0.3, start=trigger.event)
        uploader.start()
        run = quiet_dags("datasync_test_quiet_s3").test(run_conf={"uri": f"s3://{bucket}/exports/2026-11-03",
                                                                  "marker": ""})
    uploader.finish()
    assert str(run.state) == "success", ti_state(run, "wait_quiet")
    snapshot = xcom(run, "wait_quiet")
    assert snapshot["files"] == 5 and snapshot["total_bytes"] == 2 + sum(10 + i for i in range(4))


def test_smb_folder_on_smbd_with_a_marker(quiet_dags, smb_folder):
    folder = smb_folder()
    (folder.disk / "report.csv").write_text("a,b\n")
    with TriggerStarted() as trigger:
        producer = Producer(lambda _i: (folder.disk / "_SUCCESS").write_text(""), count=1, interval=0,
                            start=trigger.event)
        producer.start()
        run = quiet_dags("datasync_test_quiet_smb").test(run_conf={"uri": folder.uri, "marker": "_SUCCESS"})
    producer.finish()
    assert str(run.state) == "success", ti_state(run, "wait_quiet")
    snapshot = xcom(run, "wait_quiet")
    assert snapshot["files"] == 1 and snapshot["marker_present"] is True


@pytest.mark.parametrize("dag_id", ["datasync_test_quiet_poke", "datasync_test_quiet_reschedule"])
def test_without_deferral_the_sensor_waits_on_the_worker(quiet_dags, tmp_path, dag_id):
    folder = tmp_path / "settled"
    folder.mkdir()
    (folder / "a.txt").write_text("settled")
    with TriggerStarted() as trigger:
        run = quiet_dags(dag_id).test(run_conf={"uri": str(folder), "marker": ""})
    assert str(run.state) == "success", ti_state(run, "wait_quiet")
    assert trigger.count == 0
    assert xcom(run, "wait_quiet")["files"] == 1
