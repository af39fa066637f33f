"""Location backends behind one interface; :func:`open_location` picks one from a URI's scheme."""

from __future__ import annotations

import importlib

from airflow_datasync.errors import LocationError, UnsafePathError
from airflow_datasync.locations.base import Capabilities, Location, Metadata, StatResult, Written, safe_relpath

#: URI scheme → the backend class, as ``module:Class`` (imported on first use, so that a local run loads
#: no S3 or SMB client). A new backend is its own package plus one line here.
BACKENDS: dict[str, str] = {
    "file": "airflow_datasync.locations.local:LocalLocation",
    "s3": "airflow_datasync.locations.s3:S3Location",
    "smb": "airflow_datasync.locations.smb:SmbLocation",
    "azure": "airflow_datasync.locations.azure:AzureLocation",
    "az": "airflow_datasync.locations.azure:AzureLocation",
}


def backend_class(scheme: str) -> type[Location]:
    """The backend class for ``scheme``; :class:`LocationError` naming the supported ones otherwise."""
    target = BACKENDS.get(scheme.lower())
    if target is None:
        supported = ", ".join(f"{name}://" for name in BACKENDS)
        raise LocationError(f"unsupported location scheme {scheme!r}. Supported: {supported} (and absolute paths).")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def open_location(uri: str, conn_id: str | None = None) -> Location:
    """Build the backend for ``uri``: ``file:///abs/path`` or ``/abs/path``, ``s3://bucket/prefix``, ``smb://…``.

    Whoever opens a location closes it (``with open_location(...) as loc:``)."""
    if not isinstance(uri, str) or not uri.strip():
        raise LocationError(f"a location URI is required, got {uri!r}")
    uri = uri.strip()
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else "file"
    try:
        cls = backend_class(scheme)
    except LocationError as exc:
        raise LocationError(f"{uri}: {exc}") from None
    return cls(uri, conn_id)


__all__ = ["BACKENDS", "Capabilities", "Location", "LocationError", "Metadata", "StatResult", "UnsafePathError",
           "Written", "backend_class", "open_location", "safe_relpath"]
