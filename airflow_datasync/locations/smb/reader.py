"""A file read that survives a dropped connection: re-open the file and go on at the same offset."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from airflow_datasync.locations.smb.protocol import open_for_read
from airflow_datasync.locations.smb.sessions import CREDIT_WAITS, pause_for_credits
from airflow_datasync.locations.smb.status import is_disconnect, out_of_credits

if TYPE_CHECKING:
    from airflow_datasync.locations.smb.location import SmbLocation


class ReconnectingReader(io.RawIOBase):
    """Streams a file in chunks; if the connection drops, re-opens the file and goes on at the same offset."""

    def __init__(self, location: SmbLocation, path: str) -> None:
        super().__init__()
        self._loc, self._path, self._offset = location, path, 0
        self._raw = self._open()

    def _open(self):
        raw = self._loc._call(lambda: open_for_read(self._loc._unc(self._path), self._loc._kw()), self._path)
        if self._offset:
            raw.seek(self._offset)
        return raw

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        drops = waits = 0
        while True:
            try:
                n = self._raw.readinto(b)  # at most the max read size and the credits at hand
            except Exception as exc:  # noqa: BLE001 - sorted below
                if out_of_credits(exc) and waits < CREDIT_WAITS:
                    n = 0
                elif is_disconnect(exc) and drops < 2:
                    drops += 1
                    self._loc._session(fresh=True)
                    self._raw = self._open()
                    continue
                else:
                    raise self._loc._translate(exc, self._path) from None
            if n == 0 and len(b) and self._offset < self._raw.fd.end_of_file and waits < CREDIT_WAITS:
                pause_for_credits(waits)  # zero credits gave a zero-length read before the end: not EOF, wait
                waits += 1
                continue
            self._offset += n
            return n

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            except Exception:  # noqa: BLE001 - closing a handle on a dropped connection
                pass
        super().close()

