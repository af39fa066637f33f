"""AWS DataSync service fixtures: moto's server (the session's moto, shared with the S3 tests) and the
thin fake in ``fake_datasync.py`` for counters, QUEUED, CANCELLING and failures moto cannot produce.

Both are reached through Airflow AWS connections (``AIRFLOW_CONN_*``, JSON) whose ``endpoint_url``
points at the server, so the code under test goes through the Amazon provider's DataSyncHook.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass

import boto3
import pytest

from tests.aws.fake_datasync import FakeDataSync, start_fake_datasync

MOTO_CONN_ID = "datasync_test_aws_moto"
FAKE_CONN_ID = "datasync_test_aws_fake"


@dataclass
class MotoDataSync:
    endpoint: str
    client: object  # boto3 datasync client

    def create_task(self) -> str:
        role = {"BucketAccessRoleArn": "arn:aws:iam::123456789012:role/datasync"}
        name = uuid.uuid4().hex[:8]
        src = self.client.create_location_s3(S3BucketArn=f"arn:aws:s3:::src-{name}", S3Config=role)["LocationArn"]
        dst = self.client.create_location_s3(S3BucketArn=f"arn:aws:s3:::dst-{name}", S3Config=role)["LocationArn"]
        return self.client.create_task(SourceLocationArn=src, DestinationLocationArn=dst, Name=f"t-{name}")["TaskArn"]

    def executions(self) -> list[dict]:
        """Every task execution moto holds, read from moto's own state API (server side)."""
        import urllib.request

        with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json") as answer:
            data = json.load(answer)
        return list(data.get("datasync", {}).get("TaskExecution", []))

    def execution_status(self, arn: str) -> str:
        return next(e["status"] for e in self.executions() if e["arn"] == arn)


@pytest.fixture(scope="session")
def moto_datasync(permissive_s3) -> MotoDataSync:
    os.environ[f"AIRFLOW_CONN_{MOTO_CONN_ID.upper()}"] = permissive_s3.connection_uri_json()
    client = boto3.client("datasync", endpoint_url=permissive_s3.endpoint, region_name=permissive_s3.region,
                          aws_access_key_id=permissive_s3.access_key, aws_secret_access_key=permissive_s3.secret_key)
    return MotoDataSync(permissive_s3.endpoint, client)


@pytest.fixture
def fake_datasync() -> FakeDataSync:
    fake, server = start_fake_datasync()
    key = f"AIRFLOW_CONN_{FAKE_CONN_ID.upper()}"
    # One attempt per call: the tests inject failures and count calls, botocore's own retries would blur both.
    os.environ[key] = json.dumps({"conn_type": "aws", "login": "fake-key", "password": "fake-secret-Qw7",
                                  "extra": {"endpoint_url": fake.endpoint, "region_name": "us-east-1",
                                            "config_kwargs": {"retries": {"total_max_attempts": 1}}}})
    yield fake
    server.shutdown()
    server.server_close()
    os.environ.pop(key, None)
