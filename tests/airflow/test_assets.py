"""Asset events from the report task: the destination's asset, the DataSync counters as the event's extra,
only for a SUCCESS unless asked otherwise, and the consumer DAGs scheduled on it queued by the event.

The producers run with dag.test(); the asset-triggered consumer *run* needs a scheduler, which
tests/airflow/test_real_triggerer.py starts (it also checks that the consumer reads the counters)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from airflow_datasync.assets import EVENT_FIELDS, asset_uri, destination_asset
from tests.airflow.test_sync_dag import latest_report, load_dag, make_tree, states

DAGS = "datasync_asset_test_dags.py"
FIXED_DESTINATION = os.path.join(os.environ["AIRFLOW_HOME"], "asset-destination")  # as the DAG file says
CONSUMERS = ("datasync_test_asset_consumer", "datasync_test_alias_consumer")


@pytest.fixture
def producers(airflow_db, dags_folder):
    """Producer DAGs, with every DAG of the folder in the DB and the consumers unpaused (Airflow queues
    asset-triggered runs only for unpaused DAGs)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():
        bundle.initialize()
        sync_bag_to_db(BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name),
                       bundle.name, bundle.version)
    with create_session() as session:
        for model in session.scalars(select(DagModel).where(DagModel.dag_id.in_(CONSUMERS))):
            model.is_paused = False
    return lambda dag_id: load_dag(dags_folder, DAGS, dag_id)


def events_for(uri: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                               .where(AssetModel.uri == uri).order_by(AssetEvent.id))
        return [dict(row.extra or {}) for row in rows]


def queued_for(dag_id: str) -> int:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session

    with create_session() as session:
        return len(list(session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag_id))))


def with_unreadable_name(src) -> None:
    """A source entry whose name is not UTF-8: it is refused, so the execution ends in ERROR."""
    os.close(os.open(os.fsencode(str(src)) + b"/bad-\xff.txt", os.O_CREAT | os.O_WRONLY))


def test_uri_rules():
    assert asset_uri("/data/out/") == "file:///data/out"
    assert asset_uri("file:///data//out/") == "file:///data/out"
    assert asset_uri("s3://bucket/exports/") == "s3://bucket/exports"
    assert asset_uri("smb://svc@FS01.corp:445/share/dir/") == "smb://fs01.corp/share/dir"
    assert asset_uri("smb://fs01:1445/share") == "smb://fs01:1445/share"
    assert destination_asset("s3://bucket").uri == destination_asset("s3://bucket").name == "s3://bucket/"


def test_declared_destination_asset_carries_the_counters_and_queues_the_consumer(producers, airflow_db, tmp_path):
    uri = destination_asset(FIXED_DESTINATION).uri
    before, queued = len(events_for(uri)), queued_for("datasync_test_asset_consumer")
    src = tmp_path / "src"
    make_tree(src, files=5)
    run = producers("datasync_test_asset_fixed").test(run_conf={"source": str(src)})
    assert str(run.state) == "success", states(run)
    report = latest_report(airflow_db / "executions", "test-asset-fixed")
    events = events_for(uri)
    assert len(events) == before + 1
    extra = events[-1]
    assert set(EVENT_FIELDS) <= set(extra)
    assert extra["Status"] == "SUCCESS" and extra["TaskExecutionId"] == report["TaskExecutionId"]
    for key in ("FilesTransferred", "BytesWritten", "FilesSkipped", "FilesDeleted", "FilesVerified", "FilesFailed"):
        assert extra[key] == report[key], key
    assert extra["ExecutionUri"] == report["ExecutionUri"] and extra["DestinationLocation"] == uri
    assert queued_for("datasync_test_asset_consumer") == queued + 1


def test_templated_destination_emits_through_the_alias(producers, airflow_db, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "day-2026-11-03"
    make_tree(src, files=3)
    run = producers("datasync_test_asset_templated").test(run_conf={"source": str(src), "destination": str(dst)})
    assert str(run.state) == "success", states(run)
    (extra,) = events_for(asset_uri(str(dst)))
    assert extra["Status"] == "SUCCESS" and extra["FilesTransferred"] > 3
    assert queued_for("datasync_test_alias_consumer") >= 1


def test_an_error_emits_no_event_unless_any_status_is_asked_for(producers, airflow_db, tmp_path):
    src = tmp_path / "src"
    make_tree(src, files=2)
    with_unreadable_name(src)
    lenient_uri = asset_uri(FIXED_DESTINATION + "-lenient")
    before = len(events_for(lenient_uri))
    run = producers("datasync_test_asset_lenient").test(run_conf={"source": str(src)})
    assert states(run)["sync.report"] == ["success"]  # fail_on_error=False: the report task succeeds...
    assert latest_report(airflow_db / "executions", "test-asset-lenient")["Status"] == "ERROR"
    assert len(events_for(lenient_uri)) == before  # ...but an ERROR is no event

    dst = tmp_path / "any"
    run = producers("datasync_test_asset_any").test(run_conf={"source": str(src), "destination": str(dst)})
    assert states(run)["sync.report"] == ["success"]
    (extra,) = events_for(asset_uri(str(dst)))
    assert extra["Status"] == "ERROR" and extra["ErrorCode"] == "SourceErrors"
