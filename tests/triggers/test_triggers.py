"""The triggers as the triggerer sees them: rebuilt from JSON kwargs that name connections, never carry
their secrets; one event per run; cancellation propagates and closes the location."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from airflow.sdk._shared.module_loading import import_string
from airflow.sdk.serde import deserialize, serialize

from airflow_datasync import engine
from airflow_datasync.locations import LocationError
from airflow_datasync.sensors import LocationQuietSensor
from airflow_datasync.triggers import LocationQuietTrigger, SyncExecutionTrigger
from tests.airflow.test_sync_dag import make_tree
from tests.fixtures_servers import S3_CONN_ID, SMB_CONN_ID


def round_trip(trigger):
    """What the triggerer does with a deferral: serde-encode the kwargs, store, decode, rebuild."""
    classpath, kwargs = trigger.serialize()
    stored = json.dumps(serialize(kwargs))  # the triggers table holds JSON
    return import_string(classpath)(**deserialize(json.loads(stored))), stored


def first_event(trigger):
    async def first():
        async for event in trigger.run():
            return event.payload
    return asyncio.run(first())


def test_quiet_trigger_kwargs_name_the_s3_connection_and_never_its_secret(s3_server, bucket):
    trigger = LocationQuietTrigger(uri=f"s3://{bucket}/in", conn_id=S3_CONN_ID, quiet_period=5, marker="_SUCCESS",
                                   deadline=time.time() + 60)
    rebuilt, stored = round_trip(trigger)
    assert rebuilt.serialize() == trigger.serialize()
    assert S3_CONN_ID in stored
    assert s3_server.secret_key not in stored and s3_server.access_key not in stored


def test_quiet_trigger_kwargs_never_carry_the_smb_password(samba, smb_folder):
    folder = smb_folder()
    (folder.disk / "a.txt").write_text("a")
    trigger = LocationQuietTrigger(uri=folder.uri, conn_id=SMB_CONN_ID, quiet_period=0)
    rebuilt, stored = round_trip(trigger)
    assert samba.password not in stored and SMB_CONN_ID in stored
    event = first_event(rebuilt)  # the rebuilt trigger lists the share through the connection id alone
    assert event["status"] == "success" and event["snapshot"]["files"] == 1


def test_credentials_in_a_uri_are_refused_before_they_reach_the_triggers_table():
    with pytest.raises(LocationError, match="put credentials in an Airflow connection"):
        LocationQuietTrigger(uri="smb://alice:s3cret@fs01/share/in")
    sensor = LocationQuietSensor(task_id="t", uri="smb://alice:s3cret@fs01/share/in")
    with pytest.raises(Exception, match="put credentials in an Airflow connection"):
        sensor.make_trigger({}, deadline=0)


def test_execution_trigger_round_trip_and_event(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, files=3)
    dst.mkdir()
    summary = engine.run_execution(str(src), str(dst), {}, task_name="trigger-test", store=str(tmp_path / "store"))
    execution = summary["ExecutionUri"]
    trigger = SyncExecutionTrigger(execution=execution, store_conn_id=None, wait_for="DONE", poll_interval=0.1)
    rebuilt, stored = round_trip(trigger)
    assert json.loads(stored)  # JSON only
    event = first_event(rebuilt)
    assert event["status"] == "success"
    assert event["summary"]["FilesTransferred"] == summary["FilesTransferred"]


def test_execution_trigger_times_out_at_its_deadline(tmp_path):
    trigger = SyncExecutionTrigger(task_name="nothing-yet", manifest_store=str(tmp_path), poll_interval=0.05,
                                   deadline=time.time() + 0.3)
    assert first_event(trigger)["status"] == "timeout"


def test_cancelling_the_quiet_trigger_propagates_and_closes_the_location(tmp_path):
    """The triggerer cancels a trigger when its task is cleared or marked: CancelledError must come out of
    run(), and the location opened for polling must be closed."""
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "a").write_text("a")
    trigger = LocationQuietTrigger(uri=str(folder), quiet_period=3600, poll_interval=0.05)
    closed: list[bool] = []

    async def scenario():
        task = asyncio.create_task(anext(trigger.run()))
        while trigger._location is None:
            await asyncio.sleep(0.01)
        location = trigger._location
        original = location.close
        location.close = lambda: (closed.append(True), original())[1]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return location

    asyncio.run(scenario())
    assert closed == [True] and trigger._location is None


def test_quiet_trigger_polls_off_the_event_loop(tmp_path):
    """Listings run in a thread: a coroutine beside the trigger keeps running while the trigger polls."""
    folder = tmp_path / "tree"
    make_tree(folder, files=40)
    trigger = LocationQuietTrigger(uri=str(folder), quiet_period=0.3, poll_interval=0.05)
    ticks: list[int] = []

    async def scenario():
        async def ticker():
            while True:
                ticks.append(1)
                await asyncio.sleep(0)
        other = asyncio.create_task(ticker())
        event = await anext(trigger.run())
        other.cancel()
        return event.payload

    import threading
    main = threading.get_ident()
    seen: list[int] = []
    original = trigger._poll
    trigger._poll = lambda: (seen.append(threading.get_ident()), original())[1]
    assert asyncio.run(scenario())["status"] == "success"
    assert seen and main not in seen and ticks


def test_an_execution_reference_rendered_as_text_is_read_back():
    """``"{{ ti.xcom_pull(task_ids='sync.launch') }}"`` renders the launch output as Python-literal text
    unless the DAG renders native objects: both forms name the same execution."""
    from airflow_datasync.triggers.execution import ExecutionTarget

    ref = {"execution": "/store/t/exec-1", "store_conn_id": None, "execution_id": "exec-1"}
    assert ExecutionTarget.from_reference(str(ref)) == ExecutionTarget.from_reference(ref)
    assert ExecutionTarget.from_reference(json.dumps(ref)).execution == "/store/t/exec-1"


def test_a_listing_that_keeps_failing_is_named_in_the_timeout(tmp_path):
    """Not a missing folder but one the triggerer cannot list: waited for (it may come back), and the
    timeout says why, not "does not exist"."""
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "a").write_text("a")
    trigger = LocationQuietTrigger(uri=str(folder), quiet_period=0, poll_interval=0.05, deadline=time.time() + 0.3)

    def refuse():
        raise LocationError(f"{folder}: cannot list the root: permission denied")

    trigger._poll = refuse
    event = first_event(trigger)
    assert event["status"] == "timeout"
    assert "the last listing failed (LocationError:" in event["message"] and "permission denied" in event["message"]
