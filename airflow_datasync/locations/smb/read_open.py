"""How the SMB location opens a file to read: a small file whole in one compound (:mod:`.whole_read`),
a bigger one through the streaming :class:`~.reader.ReconnectingReader`.

For a copy, the compound's create and close responses stand in for the stats before and after the read
(:meth:`Location.open_for_copy`), so a small file costs one send in all. What the compound cannot tell
(a directory, a reparse point, a create refused for a reason other than a missing file) goes the general
way: stat, open, stat.
"""

from __future__ import annotations

import io
from typing import IO, TYPE_CHECKING

from airflow_datasync.locations.base import (
    FILE,
    SMB_ATTRIBUTES,
    SMB_CREATION_NS,
    Location,
    LocationError,
    NotFoundError,
    OpenedForCopy,
    StatResult,
)
from airflow_datasync.locations.smb.compound import CreditWindowTooSmall
from airflow_datasync.locations.smb.protocol import ATTR_REPARSE_POINT, COPIED_ATTRIBUTES, EPOCH_FILETIME
from airflow_datasync.locations.smb.reader import ReconnectingReader
from airflow_datasync.locations.smb.whole_read import FileState, WholeRead, read_whole

if TYPE_CHECKING:
    from airflow_datasync.locations.smb.location import SmbLocation

#: Buffer of the streaming reader: chunks the checksum and the destination take at a time.
STREAM_BUFFER = 1 << 20


def streaming(location: SmbLocation, path: str) -> IO[bytes]:
    return io.BufferedReader(ReconnectingReader(location, path), buffer_size=STREAM_BUFFER)


def open_range(location: SmbLocation, path: str, offset: int, length: int) -> IO[bytes]:
    """A stream of ``length`` bytes of ``path`` from ``offset``: READs of that range only (the streaming
    reader cannot seek, so the base class's open-and-seek does not apply)."""
    return io.BufferedReader(ReconnectingReader(location, path, offset, length), buffer_size=STREAM_BUFFER)


def _whole(location: SmbLocation, path: str) -> WholeRead | None:
    """The one compound's read of ``path``; None where it cannot tell (a DFS referral, a credit window
    narrower than the compound: the general way then)."""
    try:
        return location._call(lambda: read_whole(*location._tree(path), location._unc(path)), path)
    except CreditWindowTooSmall:
        return None


def whole_bytes(read: WholeRead | None) -> bytes | None:
    """The file's bytes if the compound brought all of them (an empty file's READ fails at its end)."""
    if read is None or read.opened.attributes & ATTR_REPARSE_POINT:
        return None
    if read.data is None:
        return b"" if read.opened.size == 0 else None
    return read.data if read.opened.size <= len(read.data) else None


def open_read(location: SmbLocation, path: str) -> IO[bytes]:
    """The file's bytes from the one compound when it is small, else a streaming reader (failures map as
    any open's do: NotFoundError for a missing file)."""
    data = whole_bytes(_whole(location, path))
    return io.BytesIO(data) if data is not None else streaming(location, path)


def open_for_copy(location: SmbLocation, path: str) -> OpenedForCopy:
    try:
        read = _whole(location, path)
    except NotFoundError:
        return OpenedForCopy(None, None, lambda: None)
    except LocationError as exc:
        if exc.retryable:
            raise
        read = None  # a directory, or refused: the general way tells which, as a stat and an open would
    if read is None or read.opened.attributes & ATTR_REPARSE_POINT:
        return Location.open_for_copy(location, path)
    before = stat_of(read.opened)
    data = whole_bytes(read)
    if data is None:  # bigger than one READ: streamed, and stat'ed again once closed
        fh = streaming(location, path)
        return OpenedForCopy(before, fh, lambda: _closed_then_stat(location, path, fh))
    after = stat_of(read.closed) if read.closed is not None else None
    return OpenedForCopy(before, io.BytesIO(data), (lambda: after) if after is not None else lambda: location.stat(path))


def _closed_then_stat(location: SmbLocation, path: str, fh: IO[bytes]) -> StatResult | None:
    """The entry once its stream was read to the end: closed first, because Samba answers a stat of a file
    its connection holds open with what it cached at the open (a change by another writer would not show)."""
    fh.close()
    return location.stat(path)


def stat_of(state: FileState) -> StatResult:
    """A file's :class:`StatResult` from a create or close response, as :meth:`SmbLocation.stat` gives it."""
    return StatResult(FILE, state.size, (state.mtime - EPOCH_FILETIME) * 100, (state.atime - EPOCH_FILETIME) * 100,
                      extras={SMB_CREATION_NS: (state.creation - EPOCH_FILETIME) * 100,
                              SMB_ATTRIBUTES: state.attributes & COPIED_ATTRIBUTES})
