"""A file read that survives a dropped connection: re-open the file and go on at the same offset."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from airflow_datasync.locations.smb.error_table import ConnectionBusyError, is_connection_lost
from airflow_datasync.locations.smb.pipeline import ReadAhead
from airflow_datasync.locations.smb.protocol import open_for_read
from airflow_datasync.locations.smb.sessions import wait_for_credits
from airflow_datasync.retry import retrying

if TYPE_CHECKING:
    from airflow_datasync.locations.smb.location import SmbLocation


class ReconnectingReader(io.RawIOBase):
    """Streams a file with several READs in flight (:class:`.pipeline.ReadAhead`); if the connection drops,
    re-opens the file and goes on at the offset of the first byte not yet handed out. ``offset`` and
    ``length``: only that range of the file (a striped file's range), no READ sent past its end."""

    def __init__(self, location: SmbLocation, path: str, offset: int = 0, length: int | None = None) -> None:
        super().__init__()
        self._loc, self._path, self._offset = location, path, offset
        self._stop = None if length is None else offset + length
        self._raw = self._open()

    def _open(self):
        raw = self._loc._call(lambda: open_for_read(self._loc._unc(self._path), self._loc._kw()), self._path)
        if self._offset:
            raw.seek(self._offset)
        self._ahead = ReadAhead(raw, lambda fn: self._loc._mapped(fn, self._path))
        if self._stop is not None:
            self._ahead.end = min(self._ahead.end, self._stop)
        return raw

    def _reopen(self) -> None:
        self._ahead.inflight.clear()  # their connection is gone, and their responses with it
        self._loc._drop_session()
        self._raw = self._open()

    def readable(self) -> bool:
        return True

    def _read_some(self, b) -> int:
        n = self._ahead.readinto(b)
        if n == 0 and len(b) and self._offset < self._ahead.end:
            # Zero credits gave a zero-length read before the end: not the end of the file.
            raise ConnectionBusyError(f"{self._loc._where(self._path)}: the server returned no bytes before the end")
        return n

    def readinto(self, b) -> int:
        n = retrying(lambda: wait_for_credits(lambda: self._read_some(b)), attempts=3, retryable=is_connection_lost,
                     on_connection_lost=self._reopen)
        self._offset += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._ahead.abandon()
            try:
                self._raw.close()
            except Exception:  # closing a handle on a dropped connection
                pass
        super().close()
