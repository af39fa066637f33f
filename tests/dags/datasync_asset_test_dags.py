"""Producer DAGs whose report task emits an asset event for the destination, and consumers scheduled on it."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, AssetAlias, Param, task

from airflow_datasync.assets import default_alias_name, destination_asset
from airflow_datasync.operators import sync_task_group

START = pendulum.datetime(2026, 1, 1, tz="UTC")
#: A destination known when the DAG is parsed: the report task declares its asset.
FIXED_DESTINATION = os.path.join(os.environ.get("AIRFLOW_HOME", "/tmp"), "asset-destination")
PARAMS = {"source": Param("/nonexistent", type="string"), "destination": Param("/nonexistent", type="string")}

with DAG("datasync_test_asset_fixed", schedule=None, start_date=START, catchup=False, params=PARAMS) as fixed:
    sync_task_group("sync", source="{{ params.source }}", destination=FIXED_DESTINATION,
                    sync_task_name="test-asset-fixed")

with DAG("datasync_test_asset_templated", schedule=None, start_date=START, catchup=False, params=PARAMS) as templated:
    sync_task_group("sync", source="{{ params.source }}", destination="{{ params.destination }}",
                    sync_task_name="test-asset-templated")

with DAG("datasync_test_asset_lenient", schedule=None, start_date=START, catchup=False, params=PARAMS) as lenient:
    sync_task_group("sync", source="{{ params.source }}", destination=FIXED_DESTINATION + "-lenient",
                    sync_task_name="test-asset-lenient", fail_on_error=False)

with DAG("datasync_test_asset_any", schedule=None, start_date=START, catchup=False, params=PARAMS) as any_status:
    sync_task_group("sync", source="{{ params.source }}", destination="{{ params.destination }}",
                    sync_task_name="test-asset-any", fail_on_error=False, emit_asset_on="ANY")


@task
def read_counters(triggering_asset_events=None) -> dict:
    """What a consumer does: read what arrived from the event that triggered this run."""
    events = [event for events in triggering_asset_events.values() for event in events]
    extra = events[-1].extra
    return {"FilesTransferred": extra["FilesTransferred"], "BytesWritten": extra["BytesWritten"],
            "TaskExecutionId": extra["TaskExecutionId"], "uri": events[-1].asset.uri}


with DAG("datasync_test_asset_consumer", schedule=[destination_asset(FIXED_DESTINATION)], start_date=START,
         catchup=False) as consumer:
    read_counters()

with DAG("datasync_test_alias_consumer", schedule=[AssetAlias(default_alias_name("datasync_test_asset_templated", "sync"))],
         start_date=START, catchup=False) as alias_consumer:
    read_counters()
