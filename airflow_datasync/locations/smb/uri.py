"""``smb://server[:port]/share[/path]`` URIs: what an SMB location names, and nothing of how it connects."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from airflow_datasync.locations.base import LocationError

DEFAULT_PORT = 445


@dataclass(frozen=True)
class SmbTarget:
    server: str
    port: int | None
    share: str
    base: tuple[str, ...]


def parse_smb_uri(uri: str) -> SmbTarget:
    parts = urlsplit(uri)
    if parts.scheme.lower() != "smb":
        raise LocationError(f"{uri}: not an smb:// URI")
    if parts.query or parts.fragment:
        raise LocationError(f"{uri}: an SMB location takes no ?query or #fragment")
    if parts.username or parts.password:
        raise LocationError(f"{uri}: put the user and password in a datasync_smb connection (conn_id), not in the URI")
    server = parts.hostname
    try:
        port = parts.port
    except ValueError:
        raise LocationError(f"{uri}: the port is not a number") from None
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not server or not segments:
        raise LocationError(f"{uri}: an SMB location is smb://server[:port]/share[/path]")
    share, base = segments[0], tuple(segments[1:])
    for seg in base:
        if seg in (".", "..") or "\\" in seg or "\x00" in seg:
            raise LocationError(f"{uri}: path component {seg!r} is not allowed")
    return SmbTarget(server, port, share, base)
