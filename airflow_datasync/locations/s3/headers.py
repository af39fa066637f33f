"""Our POSIX metadata in S3 user metadata (``x-amz-meta-ds-*``) and back: what a PUT sends, what a HEAD
or GET answer means."""

from __future__ import annotations

from typing import Any

from airflow_datasync import checksum
from airflow_datasync.locations import posix_metadata
from airflow_datasync.locations.base import FILE, S3_USER_METADATA, Metadata

META_PREFIX = posix_metadata.PREFIX + "-"


def meta_to_headers(meta: Metadata, kind: str = FILE, link_target: str | None = None) -> dict[str, str]:
    out: dict[str, str] = dict(meta.extras.get(S3_USER_METADATA) or {})
    out.update(posix_metadata.to_pairs(meta, kind, link_target, sep="-"))
    if meta.mtime_ns is not None:
        out["mtime"] = f"{meta.mtime_ns / 1e9:.9f}"  # as rclone writes it, for other tools
    return out


def meta_from_head(head: dict[str, Any], is_dir: bool) -> dict[str, Any]:
    m = head.get("Metadata") or {}
    out: dict[str, Any] = {}
    theirs = {k: v for k, v in m.items() if not k.startswith(META_PREFIX) and k != "mtime"}
    if theirs:
        out["user_metadata"] = theirs
    found = posix_metadata.from_pairs(m, sep="-")
    if is_dir:  # a marker is a directory whatever its metadata says
        for field in ("type", "size", "link_target"):
            found.pop(field, None)
    out.update(found)
    return out


def full_object_crc(head: dict[str, Any]) -> str | None:
    value = head.get("ChecksumCRC64NVME")
    if not value or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return None
    return checksum.from_s3_base64(value)
