"""Uid/Gid NAME and BOTH: owners mapped by user and group name between two locations, as DataSync maps them.

- ``INT_VALUE`` keeps the numeric ids (no mapping here).
- ``NAME`` gives an entry the destination's id of the source owner's name; an owner without a name at the
  source, or a name the destination does not know, is not applied (the entry keeps the owner it is
  created with).
- ``BOTH`` uses the name where both sides know it and falls back to the numeric id otherwise.

How a location names ids (:attr:`Capabilities.owner_names`): a file system through this machine's user
database (``pwd``/``grp``); S3 through names stored with each object beside its ids (``ds-user``/
``ds-group`` user metadata: an object store has no user database, so the names travel with the data);
SMB has no POSIX owners (``posix_metadata`` False: Uid/Gid are neither applied nor compared there).
"""

from __future__ import annotations

import dataclasses
import functools
import grp
import pwd
from typing import Any

import pyarrow as pa

from airflow_datasync.locations.base import Location, Metadata, StatResult

MAPPED = ("NAME", "BOTH")
#: (option, id field, name field, lookups) per owner kind.
_KINDS = (("Uid", "uid", "user_name"), ("Gid", "gid", "group_name"))


@functools.lru_cache(maxsize=4096)
def posix_name(field: str, owner_id: int) -> str | None:
    """The user (``field`` "uid") or group name of an id in this machine's database, or None."""
    try:
        return pwd.getpwuid(owner_id).pw_name if field == "uid" else grp.getgrgid(owner_id).gr_name
    except (KeyError, OverflowError):
        return None


@functools.lru_cache(maxsize=4096)
def posix_id(field: str, name: str) -> int | None:
    """The uid (``field`` "uid") or gid of a name in this machine's database, or None."""
    try:
        return pwd.getpwnam(name).pw_uid if field == "uid" else grp.getgrnam(name).gr_gid
    except KeyError:
        return None


class OwnerMap:
    """Maps the owners of source entries to destination owners for Uid/Gid NAME and BOTH."""

    def __init__(self, src: Location, dst: Location, options: Any) -> None:
        self.src_names, self.dst_names = src.capabilities.owner_names, dst.capabilities.owner_names
        self.modes = {field: getattr(options, option) for option, field, _ in _KINDS}
        self.active = any(mode in MAPPED for mode in self.modes.values()) and None not in (self.src_names,
                                                                                             self.dst_names)

    def _source_name(self, field: str, name_field: str, entry: dict[str, Any] | StatResult) -> str | None:
        get = entry.get if isinstance(entry, dict) else (lambda k: getattr(entry, k, None))
        owner_id = get(field)
        if self.src_names == "posix":
            return posix_name(field, owner_id) if owner_id is not None else None
        return get(name_field)  # stored with the entry (S3); a manifest row (dict) carries none

    def apply(self, meta: Metadata, entry: dict[str, Any] | StatResult) -> Metadata:
        """``meta`` (ids as read at the source) with the destination's ids, and for an S3 destination the names."""
        if not self.active:
            return meta
        changes: dict[str, Any] = {}
        for _option, field, name_field in _KINDS:
            mode = self.modes[field]
            owner_id = getattr(meta, field)
            if mode not in MAPPED or owner_id is None:
                continue
            name = self._source_name(field, name_field, entry)
            if self.dst_names == "posix":
                mapped = posix_id(field, name) if name is not None else None
                changes[field] = mapped if mapped is not None else (owner_id if mode == "BOTH" else None)
            else:  # names stored beside the ids: the id as read, and the name when the source knows it
                changes[field] = owner_id if (mode == "BOTH" or name is not None) else None
                changes[name_field] = name
        return dataclasses.replace(meta, **changes)

    def comparable(self, source: pa.Table, destination: pa.Table) -> tuple[pa.Table, pa.Table]:
        """Listings whose uid/gid PREPARING can compare: the destination's ids in the source's terms.

        File system → file system: each destination id goes back through its name to the source's id.
        To S3, the ids are stored as read, so they compare as they are. From S3, a listing carries ids only
        (the names come with each object's read), so the owners are not compared, only applied by the copy."""
        if not self.active:
            return source, destination
        for _option, field, _name in _KINDS:
            mode = self.modes[field]
            if mode not in MAPPED:
                continue
            if self.src_names == "metadata":
                source = source.set_column(source.schema.get_field_index(field), field,
                                           pa.nulls(source.num_rows, source.schema.field(field).type))
                continue
            if mode == "NAME":  # an owner without a name at the source is neither applied nor compared
                ids = source[field].to_pylist()
                named = {i: i if posix_name(field, i) is not None else None for i in set(ids) if i is not None}
                source = source.set_column(source.schema.get_field_index(field), field,
                                           pa.array([named.get(i) for i in ids], pa.int64()))
            if self.dst_names == "posix":
                ids = destination[field].to_pylist()
                back = {i: _back(field, i, mode) for i in set(ids) if i is not None}
                destination = destination.set_column(destination.schema.get_field_index(field), field,
                                                     pa.array([back.get(i) for i in ids], pa.int64()))
        return source, destination


def _back(field: str, owner_id: int, mode: str) -> int | None:
    """A destination id in the source's terms (both in this machine's database here, still a lookup)."""
    name = posix_name(field, owner_id)
    source_id = posix_id(field, name) if name is not None else None
    return source_id if source_id is not None else (owner_id if mode == "BOTH" else None)


__all__ = ["OwnerMap", "posix_id", "posix_name"]
