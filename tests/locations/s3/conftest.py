"""The S3 tests' server and buckets come from ``tests/fixtures_servers.py`` (a pytest plugin loaded by
``tests/conftest.py``), so SeaweedFS and moto start once per session for every directory that uses them:
``s3_server`` (SeaweedFS on 127.0.0.1, SigV4 enforced), ``s3`` (a boto3 client), ``bucket`` (a fresh bucket
per test) and ``permissive_s3`` (moto). The connection ids are re-exported here for the tests."""

from __future__ import annotations

import contextlib
from typing import Iterator

from tests.fixtures_servers import PERMISSIVE_S3_CONN_ID as PERMISSIVE_CONN_ID
from tests.fixtures_servers import S3_CONN_ID as CONN_ID

__all__ = ["CONN_ID", "PERMISSIVE_CONN_ID", "s3_requests"]


@contextlib.contextmanager
def s3_requests(conn_id: str = CONN_ID) -> Iterator[list[str]]:
    """The names of the S3 requests sent for ``conn_id`` while inside, in order: boto3's (counted by its
    ``before-call`` events) and the signed-HTTP fast path's (by its observers)."""
    from airflow_datasync.locations.s3 import settings_for

    settings = settings_for(conn_id)
    sent: list[str] = []

    def boto(event_name: str, **_: object) -> None:
        sent.append(event_name.rsplit(".", 1)[-1])

    client = settings.client
    client.meta.events.register("before-call.s3", boto)
    if settings.lite is not None:
        settings.lite.observers.append(sent.append)
    try:
        yield sent
    finally:
        client.meta.events.unregister("before-call.s3", boto)
        if settings.lite is not None:
            settings.lite.observers.remove(sent.append)
