"""DAGs for tests/scale/test_celery.py, parsed by a real dag-processor and by each Celery worker from its own
copy of this file. Every execution keeps its manifest store on S3 (``manifest_store_conn_id``), so no
phase needs a disk another worker can see; sources and destinations are S3 and SMB.

Set by the test for every component: ``DATASYNC_SCALE_BUCKET`` (the S3 bucket of the locations and the
store), ``DATASYNC_SCALE_SMB`` (``smb://host:port/share/folder``) and the connections ``datasync_scale_s3``
and ``datasync_scale_smb`` as ``AIRFLOW_CONN_*`` variables."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_datasync.operators import sync_task_group

BUCKET = os.environ.get("DATASYNC_SCALE_BUCKET", "no-bucket")
SMB = os.environ.get("DATASYNC_SCALE_SMB", "smb://127.0.0.1/none")
S3_CONN, SMB_CONN = "datasync_scale_s3", "datasync_scale_smb"
STORE_PREFIX = "store"
STORE = f"s3://{BUCKET}/{STORE_PREFIX}"
START = pendulum.datetime(2026, 1, 1, tz="UTC")
PIT = {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}
#: Shards forced small: tens of files make several shards for the workers to share.
SPREAD_FILES_PER_SHARD = 4
SPREAD_PARALLEL_SHARDS = 2
POOL, POOL_SLOTS = "datasync_scale_transfers", 1
#: A file at or above 1 GiB goes in 256 MiB ranges: the striped case's 2 GiB file makes nine of them.
STRIPE_THRESHOLD, STRIPE_BYTES = 1024**3, 256 * 1024**2
SMB_QUEUE = "smb"


def _group(dag_id: str, source: str, destination: str, source_conn_id: str, destination_conn_id: str,
           options: dict, **kwargs):
    return sync_task_group("sync", source=source, destination=destination, source_conn_id=source_conn_id,
                           destination_conn_id=destination_conn_id, options={**PIT, **options},
                           manifest_store=STORE, manifest_store_conn_id=S3_CONN, **kwargs)


# (1, 2, 5) S3 → SMB, six shards of four files, at most two at once (max_active_tis_per_dagrun).
with DAG("scale_spread", schedule=None, start_date=START, catchup=False) as scale_spread:
    _group("scale_spread", f"s3://{BUCKET}/spread/src", f"{SMB}/spread", S3_CONN, SMB_CONN,
           {"files_per_shard": SPREAD_FILES_PER_SHARD}, sync_task_name="scale_spread",
           parallel_shards=SPREAD_PARALLEL_SHARDS, transfer_retries=1, transfer_retry_delay=timedelta(seconds=2))

# (3) SMB → S3, one rate-limited shard: its worker is killed mid-copy, the retry runs on the other worker.
with DAG("scale_kill", schedule=None, start_date=START, catchup=False) as scale_kill:
    _group("scale_kill", f"{SMB}/kill/src", f"s3://{BUCKET}/kill/dst", SMB_CONN, S3_CONN,
           {"BytesPerSecond": 128 * 1024}, sync_task_name="scale_kill", parallel_shards=1,
           transfer_retries=3, transfer_retry_delay=timedelta(seconds=2))

# (4, 5) A date-partitioned S3 source, one partition per daily run, to SMB; every task of the group in a
# one-slot pool, so the backfill's runs (three active at once) never copy at the same time, and on the
# queue only the worker near the SMB server serves.
with DAG("scale_daily", schedule="@daily", start_date=START, end_date=pendulum.datetime(2026, 1, 3, tz="UTC"),
         catchup=False, max_active_runs=3) as scale_daily:
    _group("scale_daily", f"s3://{BUCKET}/daily/src/dt={{{{ ds }}}}", f"{SMB}/daily/dt={{{{ ds }}}}", S3_CONN,
           SMB_CONN, {}, sync_task_name="scale_daily", parallel_shards=4, default_args={"pool": POOL, "queue": SMB_QUEUE})

# (6) SMB → SMB, one sparse file above the stripe threshold: its ranges are mapped transfer instances that
# both workers take (two at once), each writing its offsets into one temporary that FINALIZE publishes.
with DAG("scale_stripe", schedule=None, start_date=START, catchup=False) as scale_stripe:
    _group("scale_stripe", f"{SMB}/stripe/src", f"{SMB}/stripe/dst", SMB_CONN, SMB_CONN,
           {"stripe_threshold_bytes": STRIPE_THRESHOLD, "stripe_bytes": STRIPE_BYTES},
           sync_task_name="scale_stripe", parallel_shards=2, transfer_retries=1,
           transfer_retry_delay=timedelta(seconds=2))
