"""What an ``azure://`` URI names, and what it refuses before any request is sent."""

from __future__ import annotations

import pytest

from airflow_datasync.errors import LocationError
from airflow_datasync.locations import backend_class
from airflow_datasync.locations.azure import AzureLocation
from airflow_datasync.locations.azure.uri import BLOCK_SIZE, parse_azure_uri


def test_container_and_prefix_as_azure_users_write_them():
    parsed = parse_azure_uri("azure://backups/daily/2026-12-01")
    assert (parsed.container, parsed.prefix, parsed.block_size, parsed.access_tier) == (
        "backups", "daily/2026-12-01/", BLOCK_SIZE, None)
    assert parse_azure_uri("azure://backups").prefix == ""
    assert parse_azure_uri("azure://backups/").prefix == ""
    assert parse_azure_uri("az://backups/x/").prefix == "x/"  # fsspec's and obstore's spelling


def test_both_schemes_open_the_azure_backend():
    assert backend_class("azure") is backend_class("az") is AzureLocation


def test_write_settings_from_the_query():
    parsed = parse_azure_uri("azure://c-1/p?block_size=64MiB&block_concurrency=8&access_tier=cool")
    assert (parsed.block_size, parsed.block_concurrency, parsed.access_tier) == (64 << 20, 8, "Cool")


@pytest.mark.parametrize("uri, says", [
    ("s3://bucket/x", "azure://container"),
    ("azure:///x", "azure://container"),
    ("azure://Upper/x", "not a valid container name"),
    ("azure://ab/x", "not a valid container name"),
    ("azure://a--b/x", "not a valid container name"),
    ("azure://-ab/x", "not a valid container name"),
    ("azure://account:key@container/x", "not in the URI"),
    ("azure://container/a//b", "empty, '.' or '..'"),
    ("azure://container/a/../b", "empty, '.' or '..'"),
    ("azure://container/x?block_size=100KiB", "between 1MiB and 4000MiB"),
    ("azure://container/x?block_size=lots", "not a size"),
    ("azure://container/x?block_concurrency=0", "from 1 to 64"),
    ("azure://container/x?access_tier=FROZEN", "HOT, COOL, COLD, ARCHIVE"),
    ("azure://container/x?colour=blue", "unknown parameter 'colour'"),
])
def test_refused_with_a_message_that_names_the_fix(uri, says):
    with pytest.raises(LocationError, match=None) as caught:
        parse_azure_uri(uri)
    assert says in str(caught.value)


def test_a_key_put_in_the_uri_never_reaches_the_message():
    with pytest.raises(LocationError) as caught:
        parse_azure_uri("azure://account:s3cr3tKey@container/x")
    assert "s3cr3tKey" not in str(caught.value)


def test_the_access_tier_is_what_written_blobs_get(azure_container):
    from airflow_datasync.locations import open_location
    from airflow_datasync.locations.base import Metadata

    loc = open_location(azure_container.uri("t?access_tier=COOL"), azure_container.conn_id)
    loc.write("f", iter([b"x"]), Metadata(), tag="t")
    assert azure_container.client.get_blob_client("t/f").get_blob_properties().blob_tier == "Cool"
