"""DAGs for tests/faults/test_airflow_faults.py, parsed by a real dag-processor (copied into its DAG folder).

Each DAG is the pipeline ``sync_task_group`` wires (same operators, the same TRANSFER_RETRY_POLICY), with
the transfer's Airflow arguments the case needs (``execution_timeout``, retries, backoff) and, where the
test must act between PREPARING and TRANSFERRING, a gate task that waits for a marker file the test writes.
Paths live under ``$DATASYNC_REAL_ROOT/<dag_id>/``; the S3 bucket is ``$DATASYNC_FAULT_BUCKET``."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from airflow_datasync.operators import (
    SyncFinalizeOperator,
    SyncLaunchOperator,
    SyncPrepareOperator,
    SyncReportOperator,
    SyncTransferOperator,
    SyncVerifyOperator,
)
from airflow_datasync.operators.group import TRANSFER_RETRY_POLICY

ROOT = os.environ.get("DATASYNC_REAL_ROOT", "/nonexistent")
BUCKET = os.environ.get("DATASYNC_FAULT_BUCKET", "no-bucket")
START = pendulum.datetime(2026, 1, 1, tz="UTC")
#: Every case verifies the whole destination against the source at the end.
PIT = {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}


@task
def gate(dag_id: str) -> None:
    """Wait until the test writes ``<root>/<dag_id>/go`` (it changes a connection or stops a server first)."""
    marker = Path(ROOT) / dag_id / "go"
    deadline = time.monotonic() + 600
    while not marker.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{marker} never appeared")
        time.sleep(0.5)


def pipeline(dag_id: str, *, destination: str, options: dict, destination_conn_id: str | None = None,
             with_gate: bool = False, **transfer_kwargs) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, max_active_runs=1) as dag:
        launch = SyncLaunchOperator(task_id="launch", source=f"{ROOT}/{dag_id}/src", destination=destination,
                                    destination_conn_id=destination_conn_id, options=options, sync_task_name=dag_id)
        prepare = SyncPrepareOperator(task_id="prepare", execution=launch.output)
        transfer = SyncTransferOperator.partial(task_id="transfer", parallel_shards=1,
                                                retry_policy=TRANSFER_RETRY_POLICY, **transfer_kwargs
                                                ).expand(shard=prepare.output)
        finalize = SyncFinalizeOperator(task_id="finalize", execution=launch.output, trigger_rule="none_failed")
        verify = SyncVerifyOperator(task_id="verify", execution=launch.output, trigger_rule="none_failed")
        report = SyncReportOperator(task_id="report", execution=launch.output)
        if with_gate:
            prepare >> gate.override(task_id="gate")(dag_id) >> transfer
        launch >> prepare >> transfer >> finalize >> verify >> report
    return dag


# (a) The supervisor's execution_timeout ends each try mid-copy (BytesPerSecond makes the shard outlast it);
# every retry resumes from the journal, so the shard converges within its retries.
fault_timeout = pipeline("fault_timeout", destination=f"{ROOT}/fault_timeout/dst",
                         options={**PIT, "BytesPerSecond": 512 * 1024},
                         execution_timeout=timedelta(seconds=4), retries=8, retry_delay=timedelta(seconds=1))

# (b) kill -9 of the task runner while it copies (the test finds its pid); the retry resumes.
fault_kill = pipeline("fault_kill", destination=f"{ROOT}/fault_kill/dst", options={**PIT, "BytesPerSecond": 256 * 1024},
                      retries=3, retry_delay=timedelta(seconds=1))

# (c) The destination's secret is changed between LAUNCHING (which checked it) and TRANSFERRING.
fault_auth = pipeline("fault_auth", destination=f"s3://{BUCKET}/auth", destination_conn_id="datasync_fault_auth",
                      options=PIT, with_gate=True, retries=3, retry_delay=timedelta(seconds=1))

# (d) The destination server is unreachable for the first try; retries back off exponentially.
fault_network = pipeline("fault_network", destination=f"s3://{BUCKET}/net", destination_conn_id="datasync_fault_net",
                         options=PIT, with_gate=True, retries=3, retry_delay=timedelta(seconds=3),
                         retry_exponential_backoff=2.0)
