"""The one place where a location reads an Airflow connection.

Locations do not import Airflow: this module does, inside :func:`get_connection`, and only when a location
was given a connection id. So the CLI and the engine run without Airflow's import cost, and a backend's
modules can be imported (and their URIs parsed) where Airflow is not configured at all.
"""

from __future__ import annotations

import configparser
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
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
    found = from_environment(conn_id)
    if found is not None:
        return found
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


#: The keys of Airflow's JSON form of a connection (``Connection.from_json``); any other key is Airflow's to refuse.
_JSON_KEYS = frozenset({"conn_type", "description", "host", "login", "password", "schema", "port", "extra"})


def from_environment(conn_id: str) -> HandedConnection | None:
    """``AIRFLOW_CONN_<ID>`` in Airflow's JSON form, read as Airflow reads it but without importing Airflow
    (about 1.5 s of CPU: most of a CLI run with nothing to copy). ``None`` leaves the lookup to Airflow:
    where Airflow is loaded already (a task process, whose lookup also registers the secrets with its log
    masker), where a secrets backend is configured (Airflow asks it before the environment), for the URI
    form, and for a value Airflow would refuse (its own error says what is wrong)."""
    value = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not value or not value.lstrip().startswith("{") or "airflow" in sys.modules or _secrets_backend_configured():
        return None
    return parse_json_connection(conn_id, value)


def parse_json_connection(conn_id: str, value: str) -> HandedConnection | None:
    """What Airflow's ``Connection.from_json`` makes of ``value``; ``None`` where it would refuse it or
    read an unparsable extra as empty (it logs that: left to Airflow)."""
    try:
        data = json.loads(value)
        if not isinstance(data, dict) or set(data) - _JSON_KEYS:
            return None
        extra = data.get("extra")
        if isinstance(extra, str):
            extra = json.loads(extra) if extra else None
        port = int(data["port"]) if data.get("port") else None
    except (ValueError, TypeError):
        return None
    if extra is not None and not isinstance(extra, dict):
        return None
    conn_type = data.get("conn_type") or None
    if conn_type == "postgresql":  # Airflow's normalisation of a type
        conn_type = "postgres"
    elif conn_type:
        conn_type = conn_type.replace("-", "_")
    return HandedConnection(conn_id, conn_type=conn_type, host=data.get("host"), login=data.get("login"),
                            password=data.get("password"), schema=data.get("schema"), port=port,
                            extra_dejson=extra or {})


def _secrets_backend_configured() -> bool:
    """Whether Airflow would ask a secrets backend before the environment: ``[secrets] backend`` set in the
    environment (also as ``_CMD``/``_SECRET``) or in the ``airflow.cfg`` Airflow would read."""
    if any(os.environ.get(f"AIRFLOW__SECRETS__BACKEND{suffix}") for suffix in ("", "_CMD", "_SECRET")):
        return True
    home = os.environ.get("AIRFLOW_HOME") or str(Path("~/airflow").expanduser())
    config = Path(os.environ.get("AIRFLOW_CONFIG") or Path(home, "airflow.cfg"))
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(config, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return True  # unreadable: Airflow decides
    return any(parser.get("secrets", key, fallback="").strip() for key in ("backend", "backend_cmd", "backend_secret"))
