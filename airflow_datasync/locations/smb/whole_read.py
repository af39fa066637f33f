"""A small file read in one round trip: CREATE + READ + CLOSE as one related compound (MS-SMB2 3.2.4.1.4).

The create response tells the file as it was opened (times, size, attributes), the READ brings up to
:data:`SMALL_FILE_BYTES` from offset 0, and the CLOSE asks for the attributes after the read
(SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB): a copy learns from this one send what a stat before and a stat after
the read would tell. The READ and CLOSE responses are parsed with :mod:`struct` (smbprotocol's Structure
unpacking costs more CPU than the rest of the read).

A failed READ (an empty file answers STATUS_END_OF_FILE) fails the related CLOSE on Windows with the same
status (MS-SMB2 3.3.5.2.7.2), which leaves the handle open: it is then closed by its file id.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from airflow_datasync.locations.smb.messages import SMALL_FILE_BYTES, take_handle

_READ_RESPONSE = struct.Struct("<HBxI")  # structure size, data offset (from the header's start), data length
_CLOSE_RESPONSE = struct.Struct("<HH4xqqqqqqI")  # size, flags, 4 times, allocation, end of file, attributes
_POSTQUERY_ATTRIB = 0x1
_HEADER_SIZE = 64


@dataclass(frozen=True)
class FileState:
    """A file as a create or close response tells it: FILETIMEs, size and FILE_ATTRIBUTE_* bits."""

    creation: int
    atime: int
    mtime: int
    size: int
    attributes: int


@dataclass(frozen=True)
class WholeRead:
    """What the compound brought: the file at open, its bytes (None when it holds more than one READ
    returned, or the read failed) and the file at close (None when the server did not say)."""

    opened: FileState
    data: bytes | None
    closed: FileState | None


def small_file_limit(connection: Any) -> int:
    """The largest file read whole: :data:`SMALL_FILE_BYTES`, or less if the server negotiated less."""
    return min(SMALL_FILE_BYTES, connection.max_read_size)


def read_whole(unc: str, kw: dict) -> WholeRead | None:
    """Open ``unc`` (sharing read and write, as a streaming read does; a reparse point itself, not what it
    points to), read it from offset 0 and close it, in one send. ``None`` when the compound could not tell
    the file (a DFS referral re-sent the create through smbclient's own receiver). A failed CREATE raises
    its client exception (smbclient's SMBOSError with the NtStatus)."""
    from smbclient._io import SMBFileTransaction, SMBRawIO
    from smbprotocol.exceptions import SMBResponseException
    from smbprotocol.open import CreateOptions
    from smbprotocol.open import FilePipePrinterAccessMask as Access

    raw = SMBRawIO(unc, mode="r", share_access="rw", desired_access=Access.FILE_READ_DATA | Access.FILE_READ_ATTRIBUTES,
                   create_options=CreateOptions.FILE_NON_DIRECTORY_FILE | CreateOptions.FILE_OPEN_REPARSE_POINT, **kw)
    transaction = SMBFileTransaction(raw)
    raw.open(transaction=transaction)
    create_msg, _ = transaction._actions[0]
    got: dict[str, Any] = {}

    def on_create(request):  # what smbprotocol's own receiver keeps of a create, without its Structure parse
        created = take_handle(raw.fd, raw.fd.connection.receive(request)["data"].get_value())
        got["opened"] = FileState(created.creation, created.atime, created.mtime, created.end_of_file,
                                  created.attributes)
        return None

    def on_read(request):
        try:
            body = raw.fd.connection.receive(request)["data"].get_value()
        except SMBResponseException:  # the end of an empty file, or a read refused: no bytes from the compound
            return None
        _size, offset, length = _READ_RESPONSE.unpack_from(body)
        start = offset - _HEADER_SIZE
        got["data"] = body[start:start + length]
        return None

    def on_close(request):
        try:
            got["closed"] = _received_close(raw.fd, request)
        except SMBResponseException:  # failed with the READ before it: the handle is still open
            got["close_failed"] = True
        return None

    read_msg, _ = raw.fd.read(0, small_file_limit(raw.fd.connection), send=False)
    close_msg, _ = raw.fd.close(get_attributes=True, send=False)
    transaction._actions[0] = (create_msg, on_create)
    transaction += (read_msg, on_read)
    transaction += (close_msg, on_close)
    transaction.commit()
    if "opened" not in got:
        return None
    if got.get("close_failed"):
        got["closed"] = close_by_id(raw.fd)
    return WholeRead(got["opened"], got.get("data"), got.get("closed"))


def close_by_id(fd: Any) -> FileState | None:
    """Close the open ``fd`` (an smbprotocol ``Open``) on its own, asking for the attributes at close."""
    from smbprotocol.exceptions import FileClosed

    close_msg, _ = fd.close(get_attributes=True, send=False)
    request = fd.connection.send(close_msg, fd.tree_connect.session.session_id, fd.tree_connect.tree_connect_id)
    try:
        return _received_close(fd, request)
    except FileClosed:  # closed on the server already
        return None


def _received_close(fd: Any, request: Any) -> FileState | None:
    """The CLOSE response to ``request`` (raising its failure); a closed handle leaves ``fd``'s open table."""
    body = fd.connection.receive(request)["data"].get_value()
    fd._connected = False
    fd.tree_connect.session.open_table.pop(fd.file_id, None)
    return _closed_state(body)


def _closed_state(body: bytes) -> FileState | None:
    _size, flags, creation, atime, mtime, _change, _alloc, eof, attrs = _CLOSE_RESPONSE.unpack_from(body)
    if not flags & _POSTQUERY_ATTRIB:  # the server left the attributes out (they are all zero)
        return None
    return FileState(creation, atime, mtime, eof, attrs)
