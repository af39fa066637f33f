"""Directory listings in as few sends as the directory allows, several directories in flight, parsed with
:mod:`struct`.

A directory is first listed by one related compound: CREATE + QUERY_DIRECTORY (restart) +
QUERY_DIRECTORY + CLOSE, built by :mod:`.messages`. When the second query answers STATUS_NO_MORE_FILES,
the first held every entry: one send for the whole directory. On Windows that failure also fails the related
CLOSE (MS-SMB2 3.3.5.2.7.2), so the handle is then closed by its file id. When the second query still returns
entries, the directory is longer than that: the compound's CLOSE has ended the scan, and it is listed again
as a stream of QUERY_DIRECTORY requests with the largest buffer the server allows (up to
:data:`STREAM_BUFFER`).

A scan lists many directories: :class:`TreeLister` sends the compounds of the next ones it will read
(:data:`LOOKAHEAD` of them) before it waits for the one it reads, so that the server lists them while this
process parses what came back, instead of one round trip and one server turn per directory. Each compound
takes four credits; none is sent ahead unless the connection has them to spare. A DFS share resolves paths
through referrals on open, which only smbclient does: there, each directory goes through smbclient.

Entries are FileIdFullDirectoryInformation (MS-FSCC 2.4.18), times as raw FILETIMEs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any

from airflow_datasync.locations.smb import messages

#: Output buffer of each query in the first compound (one credit each).
FIRST_BUFFER = 64 * 1024
#: Output buffer of each query when a directory is streamed, capped at the negotiated max transact size.
STREAM_BUFFER = 1 << 20
#: Directories whose compounds a scan sends before their turn; at most :data:`MAX_PENDING` wait unread.
LOOKAHEAD = 8
MAX_PENDING = 4 * LOOKAHEAD

FILE_ID_FULL_DIRECTORY_INFORMATION = 0x26
_LIST_DIRECTORY_ACCESS = 0x00000001 | 0x00000008 | 0x00000080  # FILE_LIST_DIRECTORY, READ_EA, READ_ATTRIBUTES
_SHARE_ALL = 0x7  # FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE
_FILE_OPEN, _FILE_DIRECTORY_FILE, _ATTR_DIRECTORY = 1, 0x1, 0x10
_COMPOUND_CREDITS = 4

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


def list_directory(unc: str, kw: dict) -> list[Entry]:
    """Every entry of directory ``unc`` (``.`` and ``..`` included where the server lists them)."""
    lister = TreeLister.open(unc, kw)
    if lister is None:
        return _list_through_smbclient(unc, kw)
    return lister.entries(unc, kw)


class TreeLister:
    """The directory listings of one scan over one session, the next ones sent ahead (see the module's
    docstring). ``entries(unc)`` lists one directory; ``send_ahead(uncs)`` sends the compounds of those the
    scan reads next. Bound to one connection: once that one is gone, the scan makes another."""

    def __init__(self, tree: Any) -> None:
        self.tree = tree
        self.connection = tree.session.connection
        self._ids = (tree.session.session_id, tree.tree_connect_id)
        self._pending: dict[str, list] = {}

    @classmethod
    def open(cls, unc: str, kw: dict) -> TreeLister | None:
        """A lister on the session ``kw`` names for the share of ``unc``; None on a DFS share."""
        from smbclient._pool import get_smb_tree

        tree, _path = get_smb_tree(unc, **kw)
        return None if tree.is_dfs_share else cls(tree)

    def send_ahead(self, uncs: Iterable[str]) -> None:
        """Send the compounds of the directories ``uncs`` (those the scan lists next) not sent yet, while the
        connection has credits to spare (a compound's, beyond one compound's for others)."""
        from airflow_datasync.locations.smb.error_table import ConnectionBusyError

        for unc in uncs:
            if len(self._pending) >= MAX_PENDING or self._free_credits() < 2 * _COMPOUND_CREDITS:
                return
            if unc not in self._pending:
                try:
                    self._pending[unc] = self._send(unc)
                except ConnectionBusyError:  # another thread took the credits since the check: send no more
                    return

    def entries(self, unc: str, kw: dict) -> list[Entry]:
        """Every entry of directory ``unc``: its compound's answer (sent now unless it was sent ahead), or a
        stream of queries for a directory longer than one buffer."""
        from airflow_datasync.locations.smb.compound import CreditWindowTooSmall, _reserve

        requests = self._pending.pop(unc, None)
        if requests is None:
            try:
                _reserve(self.connection, _COMPOUND_CREDITS)  # ConnectionBusyError: the caller waits for credits
            except CreditWindowTooSmall:
                return _list_streamed(unc, kw)
            requests = self._send(unc)
        out: list[Entry] = []
        if self._received(requests, out):
            return out
        return _list_streamed(unc, kw)

    def drain(self) -> None:
        """Read the answers of compounds sent ahead that the scan no longer wants (it ended early), so that no
        handle stays open on the server and no request outstanding here."""
        pending, self._pending = self._pending, {}
        for requests in pending.values():
            try:
                self._received(requests, [])
            except Exception:  # the scan ended on a failure already; this one changes nothing
                pass

    def _free_credits(self) -> int:
        window = self.connection.sequence_window
        return window["high"] - window["low"]

    def _send(self, unc: str) -> list:
        name = "\\".join(unc.split("\\")[4:])  # \\server\share\a\b → a\b, as smbclient names it on a non-DFS share
        compound = [
            messages.create_request(name, _LIST_DIRECTORY_ACCESS, _ATTR_DIRECTORY, _SHARE_ALL, _FILE_OPEN,
                                    _FILE_DIRECTORY_FILE),
            messages.query_directory_request(FILE_ID_FULL_DIRECTORY_INFORMATION, restart=True,
                                             output_size=min(FIRST_BUFFER, self.connection.max_transact_size)),
            messages.query_directory_request(FILE_ID_FULL_DIRECTORY_INFORMATION, restart=False,
                                             output_size=min(FIRST_BUFFER, self.connection.max_transact_size)),
            messages.close_request(),
        ]
        return self.connection.send_compound(compound, *self._ids, related=True)

    def _received(self, requests: list, out: list[Entry]) -> bool:
        """Read one compound's four answers into ``out``; False when the directory holds more than the first
        buffer. Every answer is read, and the handle closed, before a failure (a failed create fails the rest)
        is raised."""
        from smbprotocol.exceptions import SMBResponseException

        create, first, second, close = requests
        try:
            opened = messages.parse_create(self.connection.receive(create)["data"].get_value())
        except SMBResponseException as exc:
            for request in (first, second, close):
                try:
                    self.connection.receive(request)
                except SMBResponseException:  # failed with the create, as related requests do
                    pass
            raise exc from None
        buffers, failure = [], None
        for query in (first, second):
            try:
                buffers.append(_query_buffer(self.connection, query))
            except SMBResponseException as exc:  # raised once the close is read and the handle closed
                failure = failure or exc
                buffers.append(None)
        try:
            self.connection.receive(close)
        except SMBResponseException:  # failed with the query before it: the handle is still open
            self._close_by_id(opened.file_id)
        if failure is not None:
            raise failure
        if buffers[0] is not None:
            parse_entries(buffers[0], out)
        return buffers[1] is None

    def _close_by_id(self, file_id: bytes) -> None:
        from smbprotocol.exceptions import FileClosed

        request = self.connection.send(messages.close_request(file_id), *self._ids)
        try:
            self.connection.receive(request)
        except FileClosed:  # closed on the server already
            pass


def _list_through_smbclient(unc: str, kw: dict) -> list[Entry]:
    """A directory of a DFS share, through smbclient (its transaction resolves referrals on open)."""
    out: list[Entry] = []
    if not _list_in_one_send(unc, kw, out):
        out.clear()
        return _list_streamed(unc, kw)
    return out


def _query(fd: Any, *, restart: bool, size: int):
    from smbprotocol.file_info import FileInformationClass
    from smbprotocol.open import QueryDirectoryFlags

    flags = QueryDirectoryFlags.SMB2_RESTART_SCANS if restart else 0
    message, _ = fd.query_directory("*", FileInformationClass.FILE_ID_FULL_DIRECTORY_INFORMATION, flags=flags,
                                    max_output=size, send=False)
    return message


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


def _list_streamed(unc: str, kw: dict) -> list[Entry]:
    from smbclient._io import SMBDirectoryIO

    out: list[Entry] = []
    with SMBDirectoryIO(unc, share_access="rwd", **kw) as raw:
        fd = raw.fd
        size = min(STREAM_BUFFER, fd.connection.max_transact_size)
        session, tree = fd.tree_connect.session.session_id, fd.tree_connect.tree_connect_id
        for buffer in _buffers(fd, size, session, tree):
            parse_entries(buffer, out)
    return out


def _buffers(fd: Any, size: int, session: int, tree: int) -> Iterator[bytes]:
    restart = True
    while True:
        request = fd.connection.send(_query(fd, restart=restart, size=size), session, tree)
        buffer = _query_buffer(fd.connection, request)
        if buffer is None:
            return
        yield buffer
        restart = False
