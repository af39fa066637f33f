"""DAGs for tests/airflow/test_real_triggerer.py, parsed by a real dag-processor (not by the tests' DAG folder).

The producer waits (deferred, in the triggerer) for ``$DATASYNC_REAL_ROOT/incoming`` to settle with a
``_SUCCESS`` marker, syncs it to ``.../outgoing``, and its report task emits the destination's asset event;
the consumer is scheduled on that asset and reads the counters from the event that triggered it."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, task

from airflow_datasync.assets import destination_asset
from airflow_datasync.operators import sync_task_group
from airflow_datasync.sensors import LocationQuietSensor

ROOT = os.environ.get("DATASYNC_REAL_ROOT", "/nonexistent")
START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("datasync_real_producer", schedule=None, start_date=START, catchup=False) as producer:
    wait = LocationQuietSensor(task_id="wait_quiet", uri=f"{ROOT}/incoming", marker="_SUCCESS", quiet_period=1,
                               poke_interval=1, timeout=600)
    wait >> sync_task_group("sync", source=f"{ROOT}/incoming", destination=f"{ROOT}/outgoing",
                            sync_task_name="real-producer", transfer_retries=0)


@task
def read_counters(triggering_asset_events=None) -> dict:
    (events,) = triggering_asset_events.values()
    extra = events[-1].extra
    return {key: extra[key] for key in ("Status", "FilesTransferred", "BytesWritten", "TaskExecutionId")}


with DAG("datasync_real_consumer", schedule=[destination_asset(f"{ROOT}/outgoing")], start_date=START,
         catchup=False) as consumer:
    read_counters()
