"""Asset events for a finished sync: which Airflow asset a destination is, and what its event carries.

URI rules (the asset's name is its URI, so ``destination_asset(uri)`` on both sides names one asset):

- a local path ``/data/out`` or ``file:///data/out`` → ``file:///data/out`` (absolute, no trailing slash);
- ``s3://bucket/prefix/`` → ``s3://bucket/prefix``, as the Amazon provider normalises it;
- ``smb://user@Host:445/share/dir/`` → ``smb://host/share/dir``: user info dropped, host lower-cased,
  the default port 445 dropped (another port is kept). Airflow passes ``smb`` through unchanged.

An asset is a destination *location*, not an execution: every successful sync into it is one more event,
and the event's ``extra`` says what that execution did (:func:`asset_event_extra`).
"""

from __future__ import annotations

import os
import posixpath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import Asset, AssetAlias

#: When the report task emits an event: only for a SUCCESS (default), or for any final status.
EMIT_ON = ("SUCCESS", "ANY")

#: Report fields copied into an event's extra (DataSync's counter names, the status and the execution).
EVENT_FIELDS = ("Status", "FilesTransferred", "BytesWritten", "FilesSkipped", "FilesDeleted", "FilesVerified",
                "FilesFailed", "TaskExecutionId", "ExecutionUri", "ErrorCode")


def asset_uri(location_uri: str) -> str:
    """The Airflow asset URI of a location URI (see the module docstring for the rules)."""
    uri = location_uri.strip()
    if "://" not in uri:
        return "file://" + (os.path.normpath(os.path.abspath(uri)) if uri else "/")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return "file://" + (posixpath.normpath(parts.path) if parts.path else "/")
    host = (parts.hostname or "").lower()
    if parts.port and not (scheme == "smb" and parts.port == 445):
        host = f"{host}:{parts.port}"
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, host, path, "", ""))


def destination_asset(location_uri: str) -> Asset:
    """The asset a sync into ``location_uri`` emits events for; use it in a consumer DAG's ``schedule``."""
    uri = Asset(uri=asset_uri(location_uri)).uri  # as Airflow normalises it (``s3://bucket`` → ``s3://bucket/``)
    return Asset(name=uri, uri=uri)


def default_alias_name(dag_id: str, group_id: str) -> str:
    """The asset alias of a sync group whose destination is only known at run time (templated)."""
    return f"datasync:{dag_id}.{group_id}"


def asset_event_extra(summary: dict[str, Any]) -> dict[str, Any]:
    """The event's extra: DataSync's counters, the status, the execution id and URI. The summary is built
    from execution records, which name connections by id only, so no secret can reach it."""
    extra = {key: summary.get(key) for key in EVENT_FIELDS}
    extra["DestinationLocation"] = asset_uri(summary["DestinationLocation"]) if summary.get("DestinationLocation") else None
    return extra


def should_emit(status: str, emit_on: str | None) -> bool:
    return emit_on == "ANY" or (emit_on == "SUCCESS" and status == "SUCCESS")


def report_outlets(destination: str | None, *, emit_on: str | None, alias_name: str) -> list[Asset | AssetAlias]:
    """What the report task declares: the destination's asset when the DAG names it at parse time (it
    shows in the DAG's lineage), else (templated, or taken from the run's params) an alias the asset is
    added to at run time. ``emit_on=None``: nothing."""
    if emit_on is None:
        return []
    if emit_on not in EMIT_ON:
        raise ValueError(f"emit_asset_on must be one of {', '.join(EMIT_ON)} or None, got {emit_on!r}")
    if destination and "{{" not in destination and "{%" not in destination:
        return [destination_asset(destination)]
    return [AssetAlias(alias_name)]
