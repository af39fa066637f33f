"""Our POSIX metadata in S3 user metadata (``x-amz-meta-ds-*``) and back: what a PUT sends, what a HEAD
or GET answer means."""

from __future__ import annotations

import urllib.parse
from typing import Any

from airflow_datasync import checksum
from airflow_datasync.locations.base import FILE, S3_USER_METADATA, SYMLINK, Metadata

META_PREFIX = "ds-"


def meta_to_headers(meta: Metadata, kind: str = FILE, link_target: str | None = None) -> dict[str, str]:
    out: dict[str, str] = dict(meta.extras.get(S3_USER_METADATA) or {})
    if meta.mtime_ns is not None:
        out[META_PREFIX + "mtime-ns"] = str(meta.mtime_ns)
        out["mtime"] = f"{meta.mtime_ns / 1e9:.9f}"
    if meta.atime_ns is not None:
        out[META_PREFIX + "atime-ns"] = str(meta.atime_ns)
    if meta.mode is not None:
        out[META_PREFIX + "mode"] = f"{meta.mode:o}"
    if meta.uid is not None:
        out[META_PREFIX + "uid"] = str(meta.uid)
    if meta.gid is not None:
        out[META_PREFIX + "gid"] = str(meta.gid)
    # Owner names (Uid/Gid NAME or BOTH), quoted: S3 user metadata travels in ASCII HTTP headers.
    if meta.user_name is not None:
        out[META_PREFIX + "user"] = urllib.parse.quote(meta.user_name, safe="")
    if meta.group_name is not None:
        out[META_PREFIX + "group"] = urllib.parse.quote(meta.group_name, safe="")
    if kind == SYMLINK:
        out[META_PREFIX + "type"] = "symlink"
        out[META_PREFIX + "link-target"] = urllib.parse.quote(link_target or "", safe="/")
    return out


def parse_int(value: str | None, base: int = 10) -> int | None:
    try:
        return int(value, base) if value is not None else None
    except ValueError:
        return None


def meta_from_head(head: dict[str, Any], is_dir: bool) -> dict[str, Any]:
    m = head.get("Metadata") or {}
    out: dict[str, Any] = {}
    theirs = {k: v for k, v in m.items() if not k.startswith(META_PREFIX) and k != "mtime"}
    if theirs:
        out["user_metadata"] = theirs
    mtime = parse_int(m.get(META_PREFIX + "mtime-ns"))
    if mtime is not None:
        out["mtime_ns"] = mtime
    for field, name, base in (("atime_ns", "atime-ns", 10), ("mode", "mode", 8), ("uid", "uid", 10), ("gid", "gid", 10)):
        value = parse_int(m.get(META_PREFIX + name), base)
        if value is not None:
            out[field] = value
    for field, name in (("user_name", "user"), ("group_name", "group")):
        if m.get(META_PREFIX + name):
            out[field] = urllib.parse.unquote(m[META_PREFIX + name])
    if not is_dir and m.get(META_PREFIX + "type") == "symlink":
        out.update(type=SYMLINK, size=0, link_target=urllib.parse.unquote(m.get(META_PREFIX + "link-target", "")))
    return out


def full_object_crc(head: dict[str, Any]) -> str | None:
    value = head.get("ChecksumCRC64NVME")
    if not value or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return None
    return checksum.from_s3_base64(value)
