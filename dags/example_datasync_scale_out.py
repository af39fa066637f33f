"""Example for the scale-out stack (docker/compose.yaml): S3 → S3 and S3 → SMB, shards on any Celery worker.

Workers share nothing but the network, so everything an execution hands over is on S3: the source and
the S3 destination are prefixes of the stack's SeaweedFS bucket, the manifest store is another prefix of
it, and the SMB destination is the stack's Samba share. The S3 → SMB group runs on the ``smb`` queue
(only workers started with ``--queues …,smb`` take it); the S3 → S3 group on the default queue, so its
shards spread over every worker. The first task writes a small sample tree at the demo source prefix
when that prefix is empty; any other source is left alone.

The locations and connections come from the environment, with the stack's values as defaults:
``AIRFLOW_DATASYNC_SCALE_OUT_BUCKET`` (``datasync``), ``AIRFLOW_DATASYNC_SCALE_OUT_SMB``
(``smb://samba/data/mirror``), connections ``datasync_s3`` and ``datasync_smb``. See docs/scale-out.md.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task

from airflow_datasync.operators import sync_task_group

BUCKET = os.environ.get("AIRFLOW_DATASYNC_SCALE_OUT_BUCKET", "datasync")
SMB_DESTINATION = os.environ.get("AIRFLOW_DATASYNC_SCALE_OUT_SMB", "smb://samba/data/mirror")
S3_CONN, SMB_CONN = "datasync_s3", "datasync_smb"
SOURCE = f"s3://{BUCKET}/source"
STORE = f"s3://{BUCKET}/executions"
#: Small shards, so that even the sample tree makes several and both workers get some.
OPTIONS = {"files_per_shard": 50, "VerifyMode": "ONLY_FILES_TRANSFERRED"}
SAMPLE_FILES = 200


@task
def create_demo_source() -> str:
    """Write ``SAMPLE_FILES`` small objects under the source prefix when it holds none."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client = S3Hook(aws_conn_id=S3_CONN).get_conn()
    if client.list_objects_v2(Bucket=BUCKET, Prefix="source/", MaxKeys=1).get("KeyCount", 0):
        return f"{SOURCE}: left as it is"
    for n in range(SAMPLE_FILES):
        body = f"sample file {n}\n".encode() * (1 + n % 64)
        client.put_object(Bucket=BUCKET, Key=f"source/dir-{n % 8}/file-{n:04d}.txt", Body=body)
    return f"{SOURCE}: wrote {SAMPLE_FILES} sample objects"


@dag(
    dag_id="example_datasync_scale_out",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["airflow-datasync", "example", "scale-out"],
)
def example_datasync_scale_out():
    seeded = create_demo_source()
    to_s3 = sync_task_group(
        "to_s3", source=SOURCE, destination=f"s3://{BUCKET}/mirror", source_conn_id=S3_CONN,
        destination_conn_id=S3_CONN, manifest_store=STORE, manifest_store_conn_id=S3_CONN, options=OPTIONS,
        sync_task_name="scale-out-s3",
    )
    to_smb = sync_task_group(
        "to_smb", source=SOURCE, destination=SMB_DESTINATION, source_conn_id=S3_CONN,
        destination_conn_id=SMB_CONN, manifest_store=STORE, manifest_store_conn_id=S3_CONN, options=OPTIONS,
        sync_task_name="scale-out-smb", default_args={"queue": "smb"},
    )
    seeded >> [to_s3, to_smb]


scale_out_dag = example_datasync_scale_out()
