"""Directory listings in as few sends as the directory allows, parsed with :mod:`struct`.

A directory is first listed by one related compound: CREATE + QUERY_DIRECTORY (restart) +
QUERY_DIRECTORY + CLOSE. When the second query answers STATUS_NO_MORE_FILES, the first held every entry:
one send for the whole directory. On Windows that failure also fails the related CLOSE (MS-SMB2
3.3.5.2.7.2), so the handle is then closed by its file id. When the second query still returns entries,
the directory is longer than that: the compound's CLOSE has ended the scan, and it is listed again as a
stream of QUERY_DIRECTORY requests with the largest buffer the server allows (up to :data:`STREAM_BUFFER`),
each asking back the credits it spends.

Entries are FileIdFullDirectoryInformation (MS-FSCC 2.4.18), times as raw FILETIMEs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

#: Output buffer of each query in the first compound (one credit each).
FIRST_BUFFER = 64 * 1024
#: Output buffer of each query when a directory is streamed, capped at the negotiated max transact size.
STREAM_BUFFER = 1 << 20

_HEADER_SIZE = 64
_QUERY_RESPONSE = struct.Struct("<HHI")  # structure size, output buffer offset (from the header), length
# next entry offset, (file index), creation, last access, last write, change, end of file, allocation,
# attributes, name length, EA size (the reparse tag of a reparse point)
_ENTRY = struct.Struct("<I4xqqqqqqIII")
_NAME_OFFSET = 80

#: (UTF-16-LE name, attributes, size, last write FILETIME, last access FILETIME, EA size)
Entry = tuple[bytes, int, int, int, int, int]


def parse_entries(buffer: bytes, out: list[Entry]) -> None:
    """Append the FileIdFullDirectoryInformation entries of one QUERY_DIRECTORY output buffer to ``out``."""
    unpack = _ENTRY.unpack_from
    offset = 0
    end = len(buffer)
    while offset < end:
        step, _creation, atime, mtime, _change, size, _alloc, attrs, name_len, ea = unpack(buffer, offset)
        name_at = offset + _NAME_OFFSET
        out.append((buffer[name_at:name_at + name_len], attrs, size, mtime, atime, ea))
        if not step:
            return
        offset += step


def _query_buffer(connection: Any, request: Any) -> bytes | None:
    """The output buffer of a QUERY_DIRECTORY response, or None at the end of the directory."""
    from smbprotocol.exceptions import NoMoreFiles, NoSuchFile

    try:
        body = connection.receive(request)["data"].get_value()
    except (NoMoreFiles, NoSuchFile):  # NoSuchFile: nothing matched (a share root holds no "." or "..")
        return None
    _size, offset, length = _QUERY_RESPONSE.unpack_from(body)
    start = offset - _HEADER_SIZE
    return body[start:start + length]


def _query(fd: Any, *, restart: bool, size: int):
    from smbprotocol.file_info import FileInformationClass
    from smbprotocol.open import QueryDirectoryFlags

    flags = QueryDirectoryFlags.SMB2_RESTART_SCANS if restart else 0
    message, _ = fd.query_directory("*", FileInformationClass.FILE_ID_FULL_DIRECTORY_INFORMATION, flags=flags,
                                    max_output=size, send=False)
    return message


def list_directory(unc: str, kw: dict) -> list[Entry]:
    """Every entry of directory ``unc`` (``.`` and ``..`` included where the server lists them)."""
    out: list[Entry] = []
    if not _list_in_one_send(unc, kw, out):
        out.clear()
        _list_streamed(unc, kw, out)
    return out


def _list_in_one_send(unc: str, kw: dict, out: list[Entry]) -> bool:
    """List ``unc`` in one compound into ``out``; False if the directory holds more than one buffer."""
    from smbclient._io import SMBDirectoryIO, SMBFileTransaction
    from smbprotocol.exceptions import SMBResponseException

    from airflow_datasync.locations.smb.whole_read import close_by_id

    raw = SMBDirectoryIO(unc, share_access="rwd", **kw)
    transaction = SMBFileTransaction(raw)
    raw.open(transaction=transaction)
    got: dict[str, Any] = {}

    def on_query(key: str):
        def receive(request):
            try:
                got[key] = _query_buffer(raw.fd.connection, request)
            except SMBResponseException:  # failed with the create before it (raised from there)
                pass
        return receive

    def on_close(request):
        try:
            raw.fd.connection.receive(request)
        except SMBResponseException:  # failed with the query before it: the handle is still open
            got["close_failed"] = True
        else:
            raw.fd._connected = False
            raw.fd.tree_connect.session.open_table.pop(raw.fd.file_id, None)

    size = min(FIRST_BUFFER, raw.fd.connection.max_transact_size)
    transaction += (_query(raw.fd, restart=True, size=size), on_query("first"))
    transaction += (_query(raw.fd, restart=False, size=size), on_query("second"))
    close_msg, _ = raw.fd.close(send=False)
    transaction += (close_msg, on_close)
    transaction.commit()  # a failed create raises here
    if got.get("close_failed"):
        close_by_id(raw.fd)
    if got.get("first") is not None:
        parse_entries(got["first"], out)
    return "second" in got and got["second"] is None


def _list_streamed(unc: str, kw: dict, out: list[Entry]) -> None:
    from smbclient._io import SMBDirectoryIO

    with SMBDirectoryIO(unc, share_access="rwd", **kw) as raw:
        fd = raw.fd
        size = min(STREAM_BUFFER, fd.connection.max_transact_size)
        session, tree = fd.tree_connect.session.session_id, fd.tree_connect.tree_connect_id
        for buffer in _buffers(fd, size, session, tree):
            parse_entries(buffer, out)


def _buffers(fd: Any, size: int, session: int, tree: int) -> Iterator[bytes]:
    restart = True
    while True:
        request = fd.connection.send(_query(fd, restart=restart, size=size), session, tree)
        buffer = _query_buffer(fd.connection, request)
        if buffer is None:
            return
        yield buffer
        restart = False
