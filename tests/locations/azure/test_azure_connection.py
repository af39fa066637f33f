"""The ``wasb`` connection forms an Azure Blob location accepts, read as fields and used for real on Azurite."""

from __future__ import annotations

import datetime
import json
import logging

import pytest

from airflow_datasync.errors import LocationError, NotFoundError, PermissionDeniedError
from airflow_datasync.locations import open_location
from airflow_datasync.locations.azure import connection
from airflow_datasync.locations.azure.connection import credentials_from_fields


def test_a_connection_string_wins_over_every_other_field():
    creds = credentials_from_fields("acct", "key", None, {"connection_string": " DefaultEndpointsProtocol=https; "},
                                    "connection 'c'")
    assert creds.connection_string == "DefaultEndpointsProtocol=https;" and creds.credential is None


def test_account_name_and_key_reach_the_public_endpoint():
    creds = credentials_from_fields("acct", "s3cret==", None, {}, "connection 'c'")
    assert creds.account_url == "https://acct.blob.core.windows.net"
    assert creds.credential == ("acct", "s3cret==")
    assert "s3cret" not in repr(creds)


def test_an_emulator_endpoint_names_the_account_in_its_path():
    creds = credentials_from_fields(None, "k", "http://127.0.0.1:10000/devstoreaccount1", {}, "c")
    assert creds.credential == ("devstoreaccount1", "k")
    assert credentials_from_fields(None, None, None, {"shared_access_key": "k", "account_url": "acct.example.net"},
                                   "c").account_url == "https://acct.example.net"


def test_a_sas_token_or_a_whole_sas_url():
    token = credentials_from_fields("acct", None, None, {"sas_token": "?sv=2024&sig=abc"}, "c")
    assert (token.account_url, token.credential) == ("https://acct.blob.core.windows.net", "sv=2024&sig=abc")
    whole = credentials_from_fields(None, None, None, {"sas_token": "https://other.blob.core.windows.net/?sv=1&sig=x"}, "c")
    assert (whole.account_url, whole.credential) == ("https://other.blob.core.windows.net/", "sv=1&sig=x")
    assert whole.account == "https://other.blob.core.windows.net"


def test_forms_this_provider_cannot_serve_say_so():
    with pytest.raises(LocationError, match="azure-identity"):
        credentials_from_fields("acct", None, None, {"tenant_id": "t", "client_id": "c"}, "connection 'c'")
    with pytest.raises(LocationError, match="give the storage account"):
        credentials_from_fields(None, None, None, {}, "connection 'c'")


def _with_connection(monkeypatch, conn_id: str, fields: dict) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "wasb", **fields}))
    return conn_id


def test_every_form_works_against_the_service(azurite, azure_container, monkeypatch):
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    sas = generate_account_sas(azurite.account, azurite.key, ResourceTypes(container=True, object=True),
                               AccountSasPermissions(read=True, write=True, delete=True, list=True),
                               datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1))
    forms = {
        "az_form_key": {"login": azurite.account, "password": azurite.key, "host": azurite.endpoint},
        "az_form_string": {"extra": {"connection_string": azurite.connection_string()}},
        "az_form_sas": {"host": azurite.endpoint, "extra": {"sas_token": sas}},
        "az_form_shared_key": {"extra": {"account_url": azurite.endpoint, "shared_access_key": azurite.key}},
    }
    for conn_id, fields in forms.items():
        location = open_location(azure_container.uri(conn_id), _with_connection(monkeypatch, conn_id, fields))
        assert location.check(writable=True), conn_id
        location.write("probe.txt", iter([b"x"]), _meta(), tag="t")
        assert location.stat("probe.txt").size == 1, conn_id


def _meta():
    from airflow_datasync.locations.base import Metadata

    return Metadata(mtime_ns=1)


def test_a_wrong_key_is_permission_denied_and_the_key_is_never_shown(azurite, azure_container, monkeypatch, caplog):
    wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="
    conn_id = _with_connection(monkeypatch, "az_wrong_key",
                               {"login": azurite.account, "password": wrong, "host": azurite.endpoint})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermissionDeniedError) as caught:
        open_location(azure_container.uri(), conn_id).check(writable=False)
    assert "az_wrong_key" in str(caught.value)
    for text in (str(caught.value), caplog.text):
        assert wrong not in text and azurite.key not in text


def test_a_missing_container_is_not_found_and_names_the_account(azurite):
    with pytest.raises(NotFoundError, match="container 'no-such-container' does not exist in http://127.0.0.1"):
        open_location("azure://no-such-container/x", "datasync_test_azure").check(writable=False)


def test_no_connection_reads_the_environment(azurite, azure_container, monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    connection._CLIENTS.pop(None, None)  # the client of "no connection" is cached per process
    try:
        with pytest.raises(LocationError, match="AZURE_STORAGE_CONNECTION_STRING"):
            open_location(azure_container.uri()).check(writable=False)
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())
        assert open_location(azure_container.uri()).check(writable=True)
    finally:
        connection._CLIENTS.pop(None, None)


def test_a_refused_connection_is_retried_then_lost_and_the_sas_never_shown(monkeypatch):
    from tests.servers import free_port

    conn_id = _with_connection(monkeypatch, "az_nobody_listens",
                               {"host": f"http://127.0.0.1:{free_port()}/acct", "extra": {"sas_token": "sv=1&sig=S3CRETSIG"}})
    location = open_location("azure://container/x", conn_id)
    with pytest.raises(LocationError) as caught:
        location.stat("f")
    assert caught.value.retryable and type(caught.value).__name__ == "ConnectionLostError"
    assert "S3CRETSIG" not in str(caught.value) and caught.value.__cause__ is None


def test_a_transient_failure_is_tried_again():
    from azure.core.exceptions import ServiceResponseError

    from airflow_datasync.locations.azure.errors import azure_call

    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ServiceResponseError("connection reset by peer")
        return "done"

    assert azure_call(flaky, "azure://c/p") == "done" and len(calls) == 3
