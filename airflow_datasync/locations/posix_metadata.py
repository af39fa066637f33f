"""POSIX metadata as string pairs, for object stores that keep it in user metadata (S3's
``x-amz-meta-ds-*``, Azure's ``ds_*`` blob metadata), so that a round trip through them restores it.

One encoding, two spellings: S3 separates words with ``-`` (``ds-mtime-ns``), Azure with ``_`` (its metadata
names must be identifiers). Modes are octal; owner names and symlink targets are percent-encoded, because
the values travel in ASCII HTTP headers.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from airflow_datasync.locations.base import SYMLINK, Metadata

PREFIX = "ds"
_INTS = (("mtime_ns", "mtime-ns", 10), ("atime_ns", "atime-ns", 10), ("mode", "mode", 8), ("uid", "uid", 10),
         ("gid", "gid", 10))
_NAMES = (("user_name", "user"), ("group_name", "group"))


def key(name: str, sep: str) -> str:
    """``ds-mtime-ns`` (sep ``-``) or ``ds_mtime_ns`` (sep ``_``)."""
    return f"{PREFIX}{sep}{name.replace('-', sep)}"


def to_pairs(meta: Metadata | None, kind: str, link_target: str | None, *, sep: str) -> dict[str, str]:
    """The pairs that carry ``meta`` (fields left None are left out) and mark a symlink."""
    out: dict[str, str] = {}
    if meta is not None:
        for field, name, base in _INTS:
            value = getattr(meta, field)
            if value is not None:
                out[key(name, sep)] = f"{value:o}" if base == 8 else str(value)
        for field, name in _NAMES:
            value = getattr(meta, field)
            if value is not None:
                out[key(name, sep)] = urllib.parse.quote(value, safe="")
    if kind == SYMLINK:
        out[key("type", sep)] = "symlink"
        out[key("link-target", sep)] = urllib.parse.quote(link_target or "", safe="/")
    return out


def _int(value: str | None, base: int) -> int | None:
    try:
        return int(value, base) if value is not None else None
    except ValueError:
        return None


def from_pairs(pairs: Mapping[str, str], *, sep: str) -> dict[str, Any]:
    """The StatResult fields the pairs give (a field absent or malformed is left out); a symlink's
    ``type``, ``size`` 0 and ``link_target``."""
    out: dict[str, Any] = {}
    for field, name, base in _INTS:
        value = _int(pairs.get(key(name, sep)), base)
        if value is not None:
            out[field] = value
    for field, name in _NAMES:
        if pairs.get(key(name, sep)):
            out[field] = urllib.parse.unquote(pairs[key(name, sep)])
    if pairs.get(key("type", sep)) == "symlink":
        out.update(type=SYMLINK, size=0, link_target=urllib.parse.unquote(pairs.get(key("link-target", sep), "")))
    return out
