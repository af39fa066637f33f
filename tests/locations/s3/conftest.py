"""The S3 tests' server and buckets come from ``tests/fixtures_servers.py`` (a pytest plugin loaded by
``tests/conftest.py``), so SeaweedFS and moto start once per session for every directory that uses them:
``s3_server`` (SeaweedFS on 127.0.0.1, SigV4 enforced), ``s3`` (a boto3 client), ``bucket`` (a fresh bucket
per test) and ``permissive_s3`` (moto). The connection ids are re-exported here for the tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.fixtures_servers import PERMISSIVE_S3_CONN_ID as PERMISSIVE_CONN_ID
from tests.fixtures_servers import S3_CONN_ID as CONN_ID

__all__ = ["CONN_ID", "PERMISSIVE_CONN_ID", "s3_requests"]


@contextlib.contextmanager
def s3_requests(conn_id: str = CONN_ID) -> Iterator[list[str]]:
    """The names of the S3 requests sent for ``conn_id`` while inside, in order, as the connection's
    transport reports them (SigV4 client or boto3 alike)."""
    from airflow_datasync.locations.s3 import settings_for

    transport = settings_for(conn_id).transport
    sent: list[str] = []
    transport.observers.append(sent.append)
    try:
        yield sent
    finally:
        transport.observers.remove(sent.append)


def list_pages(monkeypatch, conn_id: str = CONN_ID) -> list[tuple[str, str | None]]:
    """(prefix, delimiter) of every LIST page ``conn_id``'s transport sends from now on, in order (the real
    transport sends them; this only records)."""
    from airflow_datasync.locations.s3 import settings_for

    transport = settings_for(conn_id).transport
    pages: list[tuple[str, str | None]] = []
    real = transport.list_page

    def recording(bucket, prefix, token=None, **kwargs):
        pages.append((prefix, kwargs.get("delimiter")))
        return real(bucket, prefix, token, **kwargs)

    monkeypatch.setattr(transport, "list_page", recording)
    return pages
