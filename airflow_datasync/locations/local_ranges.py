"""Ranged writes on a POSIX destination (striped files): one temporary created at the full size, each range
written at its offset by whichever process copies it, renamed to the final name when every range is there.

Each range writer holds a shared ``flock`` on the temporary while it writes, so a cleaner (which removes
only temporaries it can lock exclusively) never removes it under a writer; between range tasks nothing
holds it, and a later execution's PREPARING removes it as any dead temporary (see docs/reliability.md).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence

from airflow_datasync import checksum
from airflow_datasync.errors import from_oserror
from airflow_datasync.locations.base import AlreadyExistsError, Hole, LocationError, Metadata, NotFoundError, Written
from airflow_datasync.locations.local_locks import lock_if_supported
from airflow_datasync.locations.ranges import RangedWrite, RangeWritten, missing_ranges


class LocalRangedWrites:
    """The ranged-write methods of :class:`~airflow_datasync.locations.local.LocalLocation` (a mixin: it
    uses that class's path helpers, temporaries and metadata writer)."""

    def begin_ranged(self, path: str, size: int, stripe_bytes: int, meta: Metadata, *, tag: str) -> RangedWrite:
        self._ensure_dir(os.path.dirname(path))
        tmp = self._temp_for(path, tag)
        try:
            fd = self._open_temp(tmp, 0o600)  # the kept mode is applied at the commit
            try:
                os.ftruncate(fd, size)  # the full size, as holes: the ranges fill it
            finally:
                os.close(fd)
        except OSError as exc:
            raise from_oserror(exc, f"{self.uri}: {path}") from None
        return RangedWrite(path, size, stripe_bytes, tag, temp=os.path.relpath(tmp, self.root))

    def _open_range_temp(self, ranged: RangedWrite, flags: int) -> int:
        """The temporary, open and share-locked (a cleaner then keeps it); NotFoundError if it is gone."""
        try:
            fd = os.open(self._abs(ranged.temp), flags | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise NotFoundError(f"{self.uri}: the temporary of {ranged.path} is gone (removed by a clean-up?); "
                                "the striped file is copied again by the next execution") from None
        try:
            lock_if_supported(fd, fcntl.LOCK_SH)
        except OSError:
            os.close(fd)
            raise
        return fd

    def write_range(self, ranged: RangedWrite, offset: int, chunks: Iterator[bytes | Hole], *,
                    durable: bool = False) -> RangeWritten:
        expected = min(ranged.stripe_bytes, ranged.size - offset)
        hasher = checksum.new_hasher()
        written = 0
        try:
            fd = self._open_range_temp(ranged, os.O_WRONLY)
            try:
                pos = offset
                for chunk in chunks:
                    if isinstance(chunk, Hole):  # the temporary was made of holes: skipping leaves one
                        checksum.feed_zeros(hasher, chunk.size)
                        pos += chunk.size
                        written += chunk.size
                        continue
                    hasher.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        n = os.pwrite(fd, view, pos)
                        view, pos, written = view[n:], pos + n, written + n
                if written != expected:
                    raise LocationError(f"{self.uri}: range at {offset} of {ranged.path}: {written} bytes written, "
                                        f"{expected} expected")
                if durable:
                    os.fdatasync(fd)
            finally:
                os.close(fd)
        except LocationError:
            raise
        except OSError as exc:
            raise from_oserror(exc, f"{self.uri}: {ranged.path}") from None
        return RangeWritten(offset, written, hasher.value)

    def commit_ranged(self, ranged: RangedWrite, ranges: Sequence[RangeWritten], meta: Metadata, *,
                      overwrite: bool = True) -> Written:
        if missing_ranges(ranged, ranges):
            raise LocationError(f"{self.uri}: {ranged.path}: not every range is written")
        tmp, final = self._abs(ranged.temp), self._abs(ranged.path)
        try:
            fd = self._open_range_temp(ranged, os.O_RDONLY)
            try:
                if os.fstat(fd).st_size != ranged.size:
                    raise LocationError(f"{self.uri}: the temporary of {ranged.path} is not {ranged.size} bytes")
                self._apply(fd, meta)
                # Renamed while still share-locked: no cleaner removes it between the check and the rename.
                if overwrite:
                    os.replace(tmp, final)
                else:  # link(2) never replaces an entry that appeared meanwhile
                    os.link(tmp, final)
                    os.unlink(tmp)
            finally:
                os.close(fd)
        except LocationError:
            raise
        except FileExistsError:
            raise AlreadyExistsError(f"{self.uri}: {ranged.path!r} exists at the destination; OverwriteMode=NEVER "
                                     "keeps it") from None
        except IsADirectoryError:
            raise LocationError(f"{self.uri}: {ranged.path!r} is a directory at the destination and a file at the "
                                "source.") from None
        except OSError as exc:
            raise from_oserror(exc, f"{self.uri}: {ranged.path}") from None
        return Written(size=ranged.size)

    def abort_ranged(self, ranged: RangedWrite) -> None:
        if ranged.temp is None:
            return
        try:
            os.unlink(self._abs(ranged.temp))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise from_oserror(exc, f"{self.uri}: {ranged.path}") from None
