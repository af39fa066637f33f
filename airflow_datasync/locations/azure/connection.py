"""Credentials and the service client of an Azure Blob location, from an Airflow connection read by id.

The connection is the Microsoft Azure provider's ``wasb`` connection, read without that provider
(Airflow is imported only when a connection id is given, so the CLI stays quick without it):

- ``extra.connection_string``: an Azure Storage connection string (Azurite's included), or
- ``login`` = account name with ``password`` = account key (or ``extra.shared_access_key``), or
- ``extra.sas_token`` (the query after ``?``, or a whole SAS URL) with the account from ``login`` or the URL;
- ``host``, ``extra.account_url`` or ``extra.endpoint``: the account's blob endpoint where it is not
  ``https://<account>.blob.core.windows.net`` (Azurite: ``http://127.0.0.1:10000/devstoreaccount1``).

Without a connection id the environment's ``AZURE_STORAGE_CONNECTION_STRING`` is used. No key, SAS or
connection string is ever put in a message or a log line.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_datasync.errors import LocationError
from airflow_datasync.locations.connections import get_connection

#: Per-request sizes the client uses: a GET is streamed in pieces of this size, so that many copy
#: threads never hold the SDK's default 32 MiB first read each.
READ_CHUNK = 4 * 1024 * 1024
#: Connections kept per account and process: every copy thread keeps one.
POOL_SIZE = 64
#: Seconds to wait for a connection and for a response's next bytes.
CONNECT_TIMEOUT, READ_TIMEOUT = 20, 120


@dataclass(frozen=True)
class AzureCredentials:
    """Where the account is and how to prove who we are; ``repr`` never shows the secret."""

    account_url: str
    #: An account key as ``(account name, key)``, a SAS token, or None (anonymous: public containers).
    credential: Any = field(default=None, repr=False)
    connection_string: str | None = field(default=None, repr=False)
    #: Which connection this came from, for messages.
    source: str = "the environment"

    @property
    def account(self) -> str:
        """The account URL without any query: what messages and :meth:`AzureLocation.contains` compare."""
        return self.account_url.split("?", 1)[0].rstrip("/")


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _account_in(url: str) -> str:
    """The account an endpoint names: its path's first segment (emulators, ``http://127.0.0.1:10000/acct``)
    or else its host's first label (``https://acct.blob.core.windows.net``)."""
    parsed = urllib.parse.urlparse(url)
    path = parsed.path.strip("/")
    return path.split("/", 1)[0] if path else (parsed.hostname or "").split(".", 1)[0]


def credentials_from_fields(login: str | None, password: str | None, host: str | None, extra: Mapping[str, Any],
                            source: str) -> AzureCredentials:
    """Credentials from a ``wasb`` connection's fields, as the Microsoft Azure provider reads them."""
    connection_string = _text(extra.get("connection_string"))
    if connection_string:
        return AzureCredentials("", connection_string=connection_string, source=source)
    account = _text(login)
    url = _text(host) or _text(extra.get("account_url")) or _text(extra.get("endpoint"))
    sas = _text(extra.get("sas_token"))
    if sas.startswith(("https://", "http://")):  # a whole SAS URL: the account is in it
        url, _, sas = sas.partition("?")
    if url and "://" not in url:
        url = "https://" + url
    if not url:
        if not account:
            raise LocationError(f"{source}: give the storage account: login (account name), host (account URL) or "
                                "extra.connection_string")
        url = f"https://{account}.blob.core.windows.net"
    key = _text(extra.get("shared_access_key")) or _text(password)
    if sas:
        return AzureCredentials(url, credential=sas.lstrip("?"), source=source)
    if key:
        return AzureCredentials(url, credential=(account or _account_in(url), key), source=source)
    if _text(extra.get("tenant_id")) or _text(extra.get("client_id")):
        raise LocationError(f"{source}: service principals and managed identities need azure-identity, which this "
                            "provider does not use; give an account key, a SAS token or a connection string")
    return AzureCredentials(url, source=source)


def credentials_for(conn_id: str | None) -> AzureCredentials:
    """Read the Airflow connection ``conn_id`` (or the environment when None)."""
    if conn_id is None:
        import os

        connection_string = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "").strip()
        if not connection_string:
            raise LocationError("no Azure credentials: give the location an Airflow wasb connection (conn_id) or set "
                                "AZURE_STORAGE_CONNECTION_STRING")
        return AzureCredentials("", connection_string=connection_string, source="AZURE_STORAGE_CONNECTION_STRING")
    conn = get_connection(conn_id, conn_type="wasb", where=f"Azure connection {conn_id!r}")
    return credentials_from_fields(conn.login, conn.password, conn.host, conn.extra_dejson or {},
                                   f"connection {conn_id!r}")


def _session() -> Any:
    """A requests session whose pool keeps a connection per copy thread, with urllib3's retries off (the
    backend retries through :func:`airflow_datasync.retry.retrying`)."""
    import requests
    from azure.core.pipeline.transport._bigger_block_size_http_adapters import BiggerBlockSizeHTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    adapter = BiggerBlockSizeHTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE,
                                         max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return session


def service_client(creds: AzureCredentials) -> Any:
    """A ``BlobServiceClient`` for these credentials: thread-safe, its own retries off."""
    # The SDK logs every request and response at INFO: a line per blob copied, in every task log.
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.core.pipeline.transport import RequestsTransport
    from azure.storage.blob import BlobServiceClient

    options = dict(retry_total=0, max_single_get_size=READ_CHUNK, max_chunk_get_size=READ_CHUNK,
                   transport=RequestsTransport(session=_session(), session_owner=False,
                                               connection_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT))
    try:
        if creds.connection_string:
            return BlobServiceClient.from_connection_string(creds.connection_string, **options)
        credential = creds.credential
        if isinstance(credential, tuple):
            credential = AzureNamedKeyCredential(*credential)
        return BlobServiceClient(creds.account_url, credential=credential, **options)
    except ValueError as exc:  # a malformed connection string or URL: the SDK's message quotes no secret
        raise LocationError(f"{creds.source}: {str(exc).splitlines()[0][:200]}") from None


_LOCK = threading.Lock()
_CLIENTS: dict[str | None, Any] = {}


def shared_client(conn_id: str | None) -> Any:
    """One service client per connection and process, shared by every location and thread."""
    with _LOCK:
        client = _CLIENTS.get(conn_id)
    if client is None:
        client = service_client(credentials_for(conn_id))
        with _LOCK:
            client = _CLIENTS.setdefault(conn_id, client)
    return client
