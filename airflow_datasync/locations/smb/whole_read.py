"""A small file read in one round trip: CREATE + READ + CLOSE as one related compound (MS-SMB2 3.2.4.1.4).

The create response tells the file as it was opened (times, size, attributes), the READ brings up to
:data:`SMALL_FILE_BYTES` from offset 0, and the CLOSE asks for the attributes after the read
(SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB): a copy learns from this one send what a stat before and a stat after
the read would tell. The three requests are packed by :mod:`.messages` and their responses read with
:mod:`struct`, with no smbclient ``SMBRawIO`` or smbprotocol ``Open`` in between (their Structures cost
more CPU than the rest of the read); the tree comes from smbclient's ``get_smb_tree`` (through the
location's :class:`~.sessions.ThreadLanes`), so paths resolve through its DFS referral cache as any open's
do, and the send goes through the connection's
``send_compound`` (message ids, credits, signing, encryption stay smbprotocol's and :mod:`.send`'s).

A failed READ (an empty file answers STATUS_END_OF_FILE) fails the related CLOSE on Windows with the same
status (MS-SMB2 3.3.5.2.7.2), which leaves the handle open: it is then closed by its file id. A CREATE
that a DFS share refuses as not found or not covered gives None: the caller goes the general way, whose
opens follow referrals.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from airflow_datasync.locations.smb import messages
from airflow_datasync.locations.smb.messages import SMALL_FILE_BYTES

_CLOSE_RESPONSE = struct.Struct("<HH4xqqqqqqI")  # size, flags, 4 times, allocation, end of file, attributes
_POSTQUERY_ATTRIB = 0x1
_HEADER_SIZE = 64
STATUS_SUCCESS = 0
#: FILE_READ_DATA | FILE_READ_ATTRIBUTES; sharing read and write, as a streaming read does.
_ACCESS = 0x00000001 | 0x00000080
_SHARE = 0x00000001 | 0x00000002
_FILE_OPEN = 1
#: FILE_NON_DIRECTORY_FILE | FILE_OPEN_REPARSE_POINT: a reparse point itself, not what it points to.
_OPTIONS = 0x00000040 | 0x00200000
_ATTR_NORMAL = 0x80
#: What a CREATE of a path behind a DFS link answers (STATUS_PATH_NOT_COVERED; Samba: not found).
_DFS_REFUSALS = frozenset({0xC0000257, 0xC0000034, 0xC000003A})


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


def _received(connection: Any, request: Any) -> tuple[int, bytes | None]:
    """(status, body) of the response to ``request``; the body only when it succeeded."""
    from smbprotocol.exceptions import SMBResponseException

    try:
        return STATUS_SUCCESS, connection.receive(request)["data"].get_value()
    except SMBResponseException as exc:
        return exc.status, None


def read_whole(tree: Any, name: str, unc: str) -> WholeRead | None:
    """Open ``name`` on the tree connect ``tree`` (``unc``, for errors), read it from offset 0 and close it,
    in one send. ``None`` when a DFS share refers the path elsewhere. A failed CREATE raises smbclient's
    SMBOSError with its NtStatus, as an open would. Short of the compound's credits (its READ's, one per
    64 KiB), it raises as :func:`.compound._reserve` does: ConnectionBusyError to wait, CreditWindowTooSmall
    for a window that never holds them."""
    from smbprotocol.exceptions import SMBOSError

    from airflow_datasync.locations.smb.compound import _reserve, credits_for

    connection, session_id, tree_id = tree.session.connection, tree.session.session_id, tree.tree_connect_id
    compound = [messages.create_request(name, _ACCESS, _ATTR_NORMAL, _SHARE, _FILE_OPEN, _OPTIONS),
                messages.read_request(small_file_limit(connection)),
                messages.close_request(attributes=True)]
    _reserve(connection, credits_for(connection, compound))  # smbprotocol, short midway, would burn message ids
    requests = connection.send_compound(compound, session_id, tree_id, related=True)
    # Every response is taken, whatever the first says: each leaves the connection's table only when received.
    (created, create_body), (read, read_body), (closed, close_body) = (_received(connection, r) for r in requests)
    if created != STATUS_SUCCESS:
        if tree.is_dfs_share and created in _DFS_REFUSALS:
            return None
        raise SMBOSError(created, unc)
    opened = messages.parse_create(create_body)
    data = None
    if read == STATUS_SUCCESS:
        _size, offset, length = messages.READ_RESPONSE.unpack_from(read_body)
        start = offset - _HEADER_SIZE
        data = read_body[start:start + length]
    if closed == STATUS_SUCCESS:
        after = _closed_state(close_body)
    else:  # failed with the READ before it: the handle is still open
        after = close_file_id(connection, session_id, tree_id, opened.file_id)
    return WholeRead(FileState(opened.creation, opened.atime, opened.mtime, opened.end_of_file, opened.attributes),
                     data, after)


def close_file_id(connection: Any, session_id: int, tree_id: int, file_id: bytes) -> FileState | None:
    """Close the open ``file_id`` on its own, asking for the attributes at close; None when the server
    closed it already (or refused) or did not say."""
    request = connection.send(messages.close_request(file_id, attributes=True), session_id, tree_id)
    status, body = _received(connection, request)
    return _closed_state(body) if status == STATUS_SUCCESS else None


def close_by_id(fd: Any) -> FileState | None:
    """:func:`close_file_id` for an smbprotocol ``Open``, which then leaves its session's open table."""
    tree = fd.tree_connect
    state = close_file_id(fd.connection, tree.session.session_id, tree.tree_connect_id, fd.file_id)
    fd._connected = False
    tree.session.open_table.pop(fd.file_id, None)
    return state


def _closed_state(body: bytes) -> FileState | None:
    _size, flags, creation, atime, mtime, _change, _alloc, eof, attrs = _CLOSE_RESPONSE.unpack_from(body)
    if not flags & _POSTQUERY_ATTRIB:  # the server left the attributes out (they are all zero)
        return None
    return FileState(creation, atime, mtime, eof, attrs)
