"""A real S3-compatible server (SeaweedFS) on 127.0.0.1 for the whole session, and a bucket per test."""

from __future__ import annotations

import itertools
import os

import pytest

from tests.servers import start_moto, start_seaweedfs

CONN_ID = "datasync_test_s3"
PERMISSIVE_CONN_ID = "datasync_test_permissive_s3"
_names = itertools.count()


@pytest.fixture(scope="session")
def s3_server():
    server = start_seaweedfs()
    # Airflow reads connections from AIRFLOW_CONN_<ID> (JSON form): no metadata DB needed for the engine.
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = server.connection_uri_json()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server):
    return s3_server.client()


@pytest.fixture
def bucket(s3, request):
    name = f"t{next(_names)}-{os.getpid()}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def permissive_s3():
    """An S3 API server that, like AWS, accepts keys such as ``../x`` (SeaweedFS refuses them)."""
    server = start_moto()
    os.environ[f"AIRFLOW_CONN_{PERMISSIVE_CONN_ID.upper()}"] = server.connection_uri_json()
    yield server
    server.stop()
