"""POSIX metadata in blob metadata, so that an Azure → file system round trip restores it.

The names are the S3 backend's ``ds-*`` names with ``_`` for ``-``: Azure metadata names must be C#
identifiers (the service refuses ``ds-mtime-ns`` with InvalidMetadata). ``ds_mtime_ns``, ``ds_atime_ns``,
``ds_mode`` (octal), ``ds_uid``, ``ds_gid``, ``ds_user``/``ds_group`` (percent-encoded owner names for
Uid/Gid NAME and BOTH); ``ds_type=symlink`` with ``ds_link_target`` (percent-encoded) marks a symlink;
``mtime`` (RFC 3339 with nanoseconds, as rclone writes it on Azure) is added for other tools. A
directory is an empty ``dir/`` blob with its own metadata. Other metadata of a blob travels as the
``azure.metadata`` extra between Azure locations.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from airflow_datasync.locations import posix_metadata
from airflow_datasync.locations.base import DIR, FILE, SYMLINK, Metadata, StatResult

PREFIX = posix_metadata.PREFIX + "_"
#: Extras key: a blob's metadata other than ours (dict[str, str]), kept between Azure locations.
AZURE_METADATA = "azure.metadata"
#: The rclone name of the modification time; ours (ds_mtime_ns) wins where both are present.
RCLONE_MTIME = "mtime"


def _rfc3339(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:09d}Z"


def to_blob_metadata(meta: Metadata | None, kind: str = FILE, link_target: str | None = None) -> dict[str, str]:
    """The blob metadata that carries ``meta`` (and marks a symlink)."""
    out: dict[str, str] = {}
    if meta is not None:
        theirs = meta.extras.get(AZURE_METADATA)
        if isinstance(theirs, Mapping):
            out.update({k: v for k, v in theirs.items() if not is_ours(k)})
        if meta.mtime_ns is not None:
            out[RCLONE_MTIME] = _rfc3339(meta.mtime_ns)
    out.update(posix_metadata.to_pairs(meta, kind, link_target, sep="_"))
    return out


def is_ours(name: str) -> bool:
    """Whether a metadata name is one this backend writes (ds_*, and rclone's mtime)."""
    lowered = name.lower()
    return lowered.startswith(PREFIX) or lowered == RCLONE_MTIME


def _rclone_mtime(value: str | None) -> int | None:
    """rclone's ``mtime`` (RFC 3339, up to nanoseconds) in ns, for blobs another tool wrote."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    fraction, zone = "", ""
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
    try:
        when = datetime.datetime.fromisoformat(head + zone if dot else text)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return int(when.timestamp()) * 1_000_000_000 + int((fraction + "000000000")[:9] or 0)


def stat_from_properties(props: Any, is_dir: bool) -> StatResult:
    """A ``BlobProperties`` (from a listing, a HEAD or a GET) as a StatResult: our metadata where present,
    else the service's own Last-Modified."""
    raw: Mapping[str, str] = props.metadata or {}
    mine = {k.lower(): v for k, v in raw.items() if is_ours(k)}
    theirs = {k: v for k, v in raw.items() if not is_ours(k)}
    found = posix_metadata.from_pairs(mine, sep="_")
    mtime = found.get("mtime_ns")
    if mtime is None:
        mtime = _rclone_mtime(mine.get(RCLONE_MTIME))
    if mtime is None:
        mtime = int(props.last_modified.timestamp()) * 1_000_000_000
    kind, size, link_target = (DIR, 0, None) if is_dir else (FILE, props.size, None)
    if not is_dir and found.get("type") == SYMLINK:
        kind, size, link_target = SYMLINK, 0, found["link_target"]
    return StatResult(kind, size, mtime, found.get("atime_ns"), found.get("mode"), found.get("uid"), found.get("gid"),
                      link_target, etag=quoted_etag(props.etag), extras={AZURE_METADATA: theirs} if theirs else {},
                      user_name=found.get("user_name"), group_name=found.get("group_name"))


def quoted_etag(etag: str | None) -> str | None:
    """ETags as HTTP quotes them: listings give them bare, HEAD and GET quoted; If-Match takes either."""
    if not etag:
        return None
    return etag if etag.startswith('"') else f'"{etag}"'
