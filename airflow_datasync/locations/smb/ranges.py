"""Ranged writes on an SMB share (striped files): one temporary created at the full size, each range written
at its offset through a handle of its own (several WRITEs in flight, :mod:`.pipeline`), renamed to the
final name when every range is there.

Range writers open the temporary sharing reads and writes but not deletion, so a cleaner's delete fails
(a sharing violation: "in use") while any of them writes; between range tasks nothing holds it, and a
later execution's PREPARING removes it as any dead temporary.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from airflow_datasync import checksum
from airflow_datasync.locations.base import Hole, LocationError, Metadata, NotFoundError, Written
from airflow_datasync.locations.ranges import RangedWrite, RangeWritten, missing_ranges
from airflow_datasync.locations.smb.pipeline import PipelinedWriter
from airflow_datasync.locations.smb.protocol import _opened, close_quietly


def _open_shared(unc: str, kw: dict):
    """An open ``SMBFileIO`` writing the existing ``unc``; others may read and write it too, not delete it."""
    from smbclient._io import SMBFileIO
    from smbprotocol.open import FilePipePrinterAccessMask as Access

    access = Access.FILE_READ_DATA | Access.FILE_WRITE_DATA | Access.FILE_READ_ATTRIBUTES
    return _opened(SMBFileIO(unc, mode="r+b", share_access="rw", desired_access=access, **kw))


class SmbRangedWrites:
    """The ranged-write methods of :class:`~airflow_datasync.locations.smb.location.SmbLocation` (a mixin: it
    uses that class's sessions, temporaries and metadata writer)."""

    def begin_ranged(self, path: str, size: int, stripe_bytes: int, meta: Metadata, *, tag: str) -> RangedWrite:
        self._check_dest_path(path)
        self._ensure_dir(os.path.dirname(path))
        tmp = self._temp_for(path, tag)
        raw = self._create_temp(tmp)
        try:
            self._on_handle(raw, lambda: raw.truncate(size), tmp)  # the full size: the ranges fill it
        finally:
            close_quietly(raw)
        return RangedWrite(path, size, stripe_bytes, tag, temp=tmp)

    def write_range(self, ranged: RangedWrite, offset: int, chunks: Iterator[bytes | Hole], *,
                    durable: bool = False) -> RangeWritten:
        expected = min(ranged.stripe_bytes, ranged.size - offset)
        hasher = checksum.new_hasher()

        def hashed() -> Iterator[bytes]:
            for chunk in chunks:
                data = bytes(chunk.size) if isinstance(chunk, Hole) else chunk  # SMB declares no holes
                hasher.update(data)
                yield data

        raw = self._call(lambda: _open_shared(self._unc(ranged.temp), self._kw()), ranged.temp)
        try:
            raw._offset = offset  # where the pipelined writer starts
            # Durable when acknowledged (SMB declares no needs_sync): nothing more for ``durable``.
            written = PipelinedWriter(raw, lambda fn: self._mapped(fn, ranged.temp)).write(hashed())
        finally:
            close_quietly(raw)
        if written != expected:
            raise LocationError(f"{self.uri}: range at {offset} of {ranged.path}: {written} bytes written, "
                                f"{expected} expected")
        return RangeWritten(offset, written, hasher.value)

    def commit_ranged(self, ranged: RangedWrite, ranges: Sequence[RangeWritten], meta: Metadata, *,
                      overwrite: bool = True) -> Written:
        if missing_ranges(ranged, ranges):
            raise LocationError(f"{self.uri}: {ranged.path}: not every range is written")
        found = self.stat(ranged.temp)
        if found is None:
            raise NotFoundError(f"{self.uri}: the temporary of {ranged.path} is gone")
        if found.size != ranged.size:
            raise LocationError(f"{self.uri}: the temporary of {ranged.path} is not {ranged.size} bytes")
        self._apply(ranged.temp, meta, is_dir=False)
        self._replace(ranged.temp, ranged.path, overwrite=overwrite)
        return Written(size=ranged.size)

    def abort_ranged(self, ranged: RangedWrite) -> None:
        if ranged.temp is not None:
            self._remove(ranged.temp, is_dir=False)
