"""The one place where a location reads an Airflow connection.

Locations do not import Airflow: this module does, inside :func:`get_connection`, and only when a location
was given a connection id. So the CLI and the engine run without Airflow's import cost, and a backend's
modules can be imported (and their URIs parsed) where Airflow is not configured at all.
"""

from __future__ import annotations

from typing import Any

from airflow_datasync.errors import LocationError


class ConnectionNotDefinedError(LocationError):
    """No Airflow connection of that id: neither in the metadata database, nor a secrets backend, nor an
    ``AIRFLOW_CONN_*`` environment variable."""


def get_connection(conn_id: str, *, conn_type: str, where: str) -> Any:
    """Airflow's connection ``conn_id`` (login, password, host, port, ``extra_dejson``).

    ``conn_type`` names the type a user should create (in the message of a missing one), ``where`` the
    location that asked."""
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
