"""Location backends behind one interface; :func:`open_location` picks one from a URI."""

from __future__ import annotations

from airflow_datasync.locations.base import Location, LocationError, Metadata, StatResult, UnsafePathError, safe_relpath


def open_location(uri: str, conn_id: str | None = None) -> Location:
    """Build the backend for ``uri`` (``file:///abs/path`` or ``/abs/path``)."""
    if not isinstance(uri, str) or not uri.strip():
        raise LocationError(f"a location URI is required, got {uri!r}")
    uri = uri.strip()
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else "file"
    if scheme == "file":
        from airflow_datasync.locations.local import LocalLocation

        return LocalLocation(uri, conn_id)
    raise LocationError(
        f"{uri}: unsupported location scheme {scheme!r}. Supported now: file:// and absolute paths "
        "(s3:// and smb:// are on the roadmap)."
    )


__all__ = ["Location", "LocationError", "Metadata", "StatResult", "UnsafePathError", "open_location", "safe_relpath"]
