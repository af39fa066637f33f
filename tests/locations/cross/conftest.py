"""SMB ↔ S3 tests use both real servers. ``s3_server``/``s3``/``bucket`` (SeaweedFS) and ``samba``/``smb_folder``
(smbd) come from ``tests/fixtures_servers.py``, the plugin ``tests/conftest.py`` loads, so the servers are the
same session-wide instances the S3 and SMB tests use: none starts twice."""

from __future__ import annotations

import pytest

from airflow_datasync.engine import LocationSpec
from tests.fixtures_servers import S3_CONN_ID


@pytest.fixture
def s3_prefix(bucket):
    """``make("name")`` → the LocationSpec of ``s3://<fresh bucket>/name`` through the test AWS connection."""
    return lambda prefix="data": LocationSpec(f"s3://{bucket}/{prefix}", S3_CONN_ID)
