"""The one place where a location reads an Airflow connection.

Locations do not import Airflow: this module does, inside :func:`get_connection`, and only when a location
was given a connection id. So the CLI and the engine run without Airflow's import cost, and a backend's
modules can be imported (and their URIs parsed) where Airflow is not configured at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_datasync.errors import LocationError


class ConnectionNotDefinedError(LocationError):
    """No Airflow connection of that id: neither in the metadata database, nor a secrets backend, nor an
    ``AIRFLOW_CONN_*`` environment variable."""


@dataclass(frozen=True)
class HandedConnection:
    """A connection's fields as a parent process read them (see :func:`hand_over`)."""

    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    port: int | None = None
    extra_dejson: dict[str, Any] = field(default_factory=dict)


#: Connections this process was handed by its parent: a copy process (phases/copy_processes.py) is no
#: Airflow task process (no supervisor to ask), and importing Airflow only to read them costs 0.7 s of CPU.
_HANDED: dict[str, HandedConnection] = {}


def connection_fields(conn_id: str, *, conn_type: str, where: str) -> dict[str, Any]:
    """The fields of :func:`get_connection`'s answer, for :func:`hand_over` in another process."""
    conn = get_connection(conn_id, conn_type=conn_type, where=where)
    return {"conn_type": conn.conn_type, "host": conn.host, "login": conn.login, "password": conn.password,
            "schema": conn.schema, "port": conn.port, "extra_dejson": conn.extra_dejson or {}}


def hand_over(conn_id: str, fields: dict[str, Any]) -> None:
    """Make :func:`get_connection` answer ``conn_id`` with ``fields`` in this process."""
    _HANDED[conn_id] = HandedConnection(conn_id, **fields)


def get_connection(conn_id: str, *, conn_type: str, where: str) -> Any:
    """Airflow's connection ``conn_id`` (login, password, host, port, ``extra_dejson``).

    ``conn_type`` names the type a user should create (in the message of a missing one), ``where`` the
    location that asked."""
    if conn_id in _HANDED:
        return _HANDED[conn_id]
    # BaseHook's lookup, not Connection.get: the same backends (task supervisor, secrets, AIRFLOW_CONN_*),
    # with less imported on the way (see docs/benchmarks.md, issue 12).
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise ConnectionNotDefinedError(
            f"{where}: Airflow connection {conn_id!r} (type {conn_type}) is not defined; create it or set "
            "source_conn_id/destination_conn_id") from None
