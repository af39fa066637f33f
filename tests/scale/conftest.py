"""Fixtures of the Celery deployment: PostgreSQL and Redis for the session, SeaweedFS and Samba from
tests/fixtures_servers.py, and one deployment (tests/scale/celery_airflow.py) for the module."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.scale.celery_airflow import CeleryAirflow, started_celery_airflow
from tests.scale.services import Postgres, Redis, start_postgres, start_redis

DAG_FILE = Path(__file__).with_name("scale_dags.py")
BUCKET = "datasync-scale"
SCALE_DAGS = ("scale_spread", "scale_kill", "scale_daily", "scale_stripe")
#: Both workers serve the default queue; only w2 serves the SMB queue (a worker placed near the file server).
WORKER_QUEUES = {"w1": "default", "w2": "default,smb"}
WORKERS = list(WORKER_QUEUES)


@pytest.fixture(scope="session")
def postgres():
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis():
    server = start_redis()
    yield server
    server.stop()


@dataclass
class Deployment:
    airflow: CeleryAirflow
    s3: object  #: a boto3 client of the SeaweedFS server (locations and the manifest store)
    smb_disk: Path  #: where smbd keeps the SMB locations' folder, checked from outside


@pytest.fixture(scope="module")
def deployment(postgres: Postgres, redis: Redis, s3_server, samba) -> Deployment:
    s3 = s3_server.client()
    s3.create_bucket(Bucket=BUCKET)
    smb_disk = samba.shares["data"] / "scale"
    smb_disk.mkdir()
    smb_conn = {"conn_type": "datasync_smb", "host": "127.0.0.1", "port": samba.port, "login": samba.user,
                "password": samba.password, "extra": {"require_signing": True}}
    env = {
        "DATASYNC_SCALE_BUCKET": BUCKET,
        "DATASYNC_SCALE_SMB": f"smb://127.0.0.1:{samba.port}/data/scale",
        "AIRFLOW_CONN_DATASYNC_SCALE_S3": s3_server.connection_uri_json(),
        "AIRFLOW_CONN_DATASYNC_SCALE_SMB": json.dumps(smb_conn),
        # A worker killed with its task: the scheduler fails the silent task instance after this long.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    }
    hidden = [samba.root, s3_server.workdir, postgres.workdir, redis.workdir]
    with started_celery_airflow(postgres, redis, [DAG_FILE], WORKER_QUEUES, env, hidden) as airflow:
        airflow.wait_for("the scale DAGs parsed", lambda: len(airflow.query(
            "SELECT dag_id FROM dag WHERE dag_id LIKE 'scale_%%'")) == len(SCALE_DAGS))
        from tests.scale.scale_dags import POOL, POOL_SLOTS

        airflow.cli("pools", "set", POOL, str(POOL_SLOTS), "the transfers of the backfill case")
        for dag_id in SCALE_DAGS:
            airflow.cli("dags", "unpause", dag_id)
        yield Deployment(airflow, s3, smb_disk)
