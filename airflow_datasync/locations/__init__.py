"""Location backends behind one interface; :func:`open_location` picks one from a URI."""

from __future__ import annotations

from airflow_datasync.locations.base import Location, LocationError, Metadata, StatResult, UnsafePathError, safe_relpath


def open_location(uri: str, conn_id: str | None = None) -> Location:
    """Build the backend for ``uri``: ``file:///abs/path`` or ``/abs/path``, ``s3://bucket/prefix``."""
    if not isinstance(uri, str) or not uri.strip():
        raise LocationError(f"a location URI is required, got {uri!r}")
    uri = uri.strip()
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else "file"
    if scheme == "file":
        from airflow_datasync.locations.local import LocalLocation

        return LocalLocation(uri, conn_id)
    if scheme == "s3":
        from airflow_datasync.locations.s3 import S3Location

        return S3Location(uri, conn_id)
    if scheme == "smb":
        from airflow_datasync.locations.smb import SmbLocation

        return SmbLocation(uri, conn_id)
    raise LocationError(
        f"{uri}: unsupported location scheme {scheme!r}. Supported: file:// (and absolute paths), "
        "s3://, smb://."
    )


__all__ = ["Location", "LocationError", "Metadata", "StatResult", "UnsafePathError", "open_location", "safe_relpath"]
