"""Whole small-file writes and directory creation as ONE related compound each (MS-SMB2 3.2.4.1.4).

A small file: CREATE the temporary (no sharing) + WRITE + SET_INFO security descriptor (when asked) +
SET_INFO times/attributes + SET_INFO rename + CLOSE, one send; every response is parsed and its status kept,
so the caller can go on from exactly where the server stopped (:class:`CompoundWrite`). A directory:
CREATE (FILE_OPEN_IF, directory) + CLOSE, whose create response tells what is there.

Requests are built by :mod:`.messages` (directories': smbprotocol's) on the tree connect the location's
lane resolved, with no smbclient ``SMBRawIO`` or smbprotocol ``Open`` unless a failure needs a handle to go
on with, and sent through smbprotocol's ``Connection.send_compound``, so its message ids,
credit accounting, signing and encryption stay in charge. Like :mod:`.protocol`, it reaches below
smbclient's public API; smbclient/smbprotocol are imported inside the functions.
"""

from __future__ import annotations

import ntpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_datasync.locations.smb import messages
from airflow_datasync.locations.smb.error_table import ConnectionBusyError
from airflow_datasync.locations.smb.messages import SMALL_FILE_BYTES
from airflow_datasync.locations.smb.protocol import ATTR_DIRECTORY, ATTR_NORMAL

#: Files up to this size (and the negotiated max write size) are written in one compound; bigger ones stream.

STATUS_SUCCESS = 0
STATUS_DISK_FULL = 0xC000007F
FILE_OVERWRITE_IF = 5  # CreateDisposition: create, or truncate what is there
FILE_NON_DIRECTORY_FILE = 0x40  # CreateOptions


def small_file_limit(connection: Any) -> int:
    """The largest file written in one compound on ``connection`` (one WRITE, within the negotiated size)."""
    return min(SMALL_FILE_BYTES, connection.max_write_size)


@dataclass
class CompoundWrite:
    """What the server said to each request of a compound write, by role (``create``, ``write``,
    ``security``, ``basic``, ``rename``, ``close``): an NTSTATUS, in the order sent."""

    #: Builds the SMBRawIO of the temporary (no request): only a follow-up after a failure needs one.
    opener: Callable[[], Any] | None
    statuses: dict[str, int] = field(default_factory=dict)
    written: int = 0
    file_id: bytes | None = None  # the temporary's, once its create succeeded
    _raw: Any = None

    def failed(self) -> tuple[str, int] | None:
        """The first request that failed, as (role, status); None when all succeeded."""
        for role, status in self.statuses.items():
            if status != STATUS_SUCCESS:
                return role, status
        return None

    @property
    def handle_open(self) -> bool:
        return self.statuses.get("create") == STATUS_SUCCESS and self.statuses.get("close") != STATUS_SUCCESS

    @property
    def raw(self) -> Any:
        """The temporary's SMBRawIO: open on the real file id while the create succeeded and no close did."""
        if self._raw is None:
            raw = self.opener()
            if self.handle_open:
                fd = raw.fd
                fd.file_id, fd._connected = self.file_id, True
                fd.tree_connect.session.open_table[fd.file_id] = fd
            self._raw = raw
        return self._raw

    @classmethod
    def of_handle(cls, raw: Any) -> CompoundWrite:
        """A write whose temporary is open in ``raw`` (an SMBRawIO opened by other means)."""
        return cls(None, {"create": STATUS_SUCCESS}, _raw=raw)


def share_relative_target(tree: Any, temp_name: str, final_name: str) -> str:
    """The name a rename of the open temporary ``temp_name`` (share-relative, on ``tree``) to ``final_name``
    in its own directory gives the server: its last component replaced (no tree lookup)."""
    head = ntpath.dirname(temp_name)
    dst_name = f"{head}\\{final_name}" if head else final_name
    if tree.is_dfs_share and dst_name.startswith(tree.share_name[2:]):
        dst_name = dst_name[len(tree.share_name) - 1:]
    return dst_name


class CreditWindowTooSmall(Exception):
    """The server's credit window is smaller than a compound, with nothing outstanding to widen it."""


def credits_for(connection: Any, requests: list) -> int:
    """The credits ``requests`` take (MS-SMB2 3.1.5.2: a READ or WRITE one per 64 KiB; at least one each)."""
    return sum(max(1, connection._calculate_credit_charge(r)) for r in requests)


def _reserve(connection: Any, needed: int) -> None:
    """Refuse (as :class:`ConnectionBusyError`, which the caller waits on) unless ``needed`` credits are free:
    smbprotocol checks each request of a compound only as it numbers it, so a shortfall midway would burn
    the message ids of the requests before it. A window that no outstanding request will widen raises
    :class:`CreditWindowTooSmall` (the caller streams instead, one request at a time)."""
    with connection.sequence_lock:
        free = connection.sequence_window["high"] - connection.sequence_window["low"]
        # A request's credits are taken before it is outstanding (smbprotocol packs it in between, under
        # another thread's GIL turn): "nothing outstanding" alone does not prove a narrow window.
        widest = max(free, getattr(connection, "_datasync_widest_window", 0))
        connection._datasync_widest_window = widest
    if free < needed:
        if widest < needed and not connection.outstanding_requests:
            raise CreditWindowTooSmall(f"{needed} credits needed for a compound, {free} granted")
        raise ConnectionBusyError(f"{needed} credits needed for a compound write, {free} free")


def _status(receive, request) -> int:
    from smbprotocol.exceptions import SMBResponseException

    try:
        receive(request)
    except SMBResponseException as exc:
        return exc.status
    return STATUS_SUCCESS


def write_small(tree: Any, name: str, opener: Callable[[], Any], data: bytes, access: int,
                times: tuple[int, int, int, int] | None, security: tuple[int, bytes] | None, final_name: str,
                overwrite: bool) -> CompoundWrite:
    """Create the temporary ``name`` (share-relative, on ``tree``) exclusively, write ``data``, set the
    ``security`` descriptor (info flags, descriptor) and the ``times`` (creation, access, write FILETIMEs,
    attributes; 0 leaves one as is), rename it to ``final_name`` (same directory) and close it: one compound,
    or two with a security descriptor (the rename and close go only once the rest succeeded). ``opener``
    builds the temporary's SMBRawIO for what follows a failure. A dropped connection raises as smbprotocol
    raises it, with whatever the server did unknown."""
    out = CompoundWrite(opener)
    connection = tree.session.connection
    first = [("create", messages.create_request(name, access, ATTR_NORMAL, 0, FILE_OVERWRITE_IF,
                                                FILE_NON_DIRECTORY_FILE), lambda r: _opened(out, connection, r)),
             ("write", messages.write_request(data), lambda r: _count(out, connection, r))]
    if security is not None:
        first.append(("security", messages.set_info_request(messages.INFO_SECURITY, 0, security[1], security[0]),
                      connection.receive))
    if times is not None:
        first.append(("basic", messages.set_info_request(messages.INFO_FILE, messages.FILE_BASIC_INFORMATION,
                                                         messages.basic_info(*times)), connection.receive))
    target = messages.rename_info(share_relative_target(tree, name, final_name), overwrite)
    rest = [("rename", messages.set_info_request(messages.INFO_FILE, messages.FILE_RENAME_INFORMATION, target),
             connection.receive),
            ("close", messages.close_request(), connection.receive)]
    split = security is not None
    _send_related(out, tree, first if split else first + rest)
    if out.statuses.get("write") == STATUS_SUCCESS and out.written != len(data):
        out.statuses["write"] = STATUS_DISK_FULL  # a short write: what a full disk gives
    if split and out.failed() is None:
        rest = [("rename", messages.set_info_request(messages.INFO_FILE, messages.FILE_RENAME_INFORMATION, target,
                                                     file_id=out.file_id), connection.receive),
                ("close", messages.close_request(), connection.receive)]
        _send_related(out, tree, rest)  # the first of a new chain names the open file
    return out


def _opened(out: CompoundWrite, connection: Any, request: Any) -> None:
    """The temporary's file id from its CREATE response, read with one unpack."""
    out.file_id = messages.parse_create(connection.receive(request)["data"].get_value()).file_id


def _count(out: CompoundWrite, connection: Any, request: Any) -> None:
    out.written = messages.parse_write(connection.receive(request)["data"].get_value())


def _send_related(out: CompoundWrite, tree: Any, roles: list) -> None:
    connection = tree.session.connection
    compound = [r[1] for r in roles]
    _reserve(connection, credits_for(connection, compound))
    requests = connection.send_compound(compound, tree.session.session_id, tree.tree_connect_id, related=True)
    for (role, _msg, receive), request in zip(roles, requests, strict=True):
        out.statuses[role] = _status(receive, request)


def ensure_directory(unc: str, kw: dict) -> tuple[int, bool]:
    """Open or create the directory ``unc`` (FILE_OPEN_IF) and close it, one compound: (status of the create,
    whether a directory is there). A file in the way fails the create with STATUS_NOT_A_DIRECTORY."""
    from smbclient._io import SMBRawIO
    from smbprotocol.open import CreateDisposition, CreateOptions, ImpersonationLevel, ShareAccess
    from smbprotocol.open import FilePipePrinterAccessMask as Access

    raw = SMBRawIO(unc, mode="r", share_access="rwd", desired_access=Access.FILE_READ_ATTRIBUTES,
                   create_options=CreateOptions.FILE_DIRECTORY_FILE, **kw)
    fd = raw.fd
    connection = fd.connection
    create, on_create = fd.create(ImpersonationLevel.Impersonation, Access.FILE_READ_ATTRIBUTES, ATTR_DIRECTORY,
                                  ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE,
                                  CreateDisposition.FILE_OPEN_IF, CreateOptions.FILE_DIRECTORY_FILE, send=False)
    close, on_close = fd.close(send=False)
    try:
        _reserve(connection, 2)
    except CreditWindowTooSmall:  # one request at a time
        created = _status(on_create, connection.send(create, fd.tree_connect.session.session_id,
                                                     fd.tree_connect.tree_connect_id))
        if created == STATUS_SUCCESS:
            is_dir = bool(fd.file_attributes & ATTR_DIRECTORY)
            fd.close()
            return created, is_dir
        return created, False
    requests = connection.send_compound([create, close], fd.tree_connect.session.session_id,
                                        fd.tree_connect.tree_connect_id, related=True)
    created = _status(on_create, requests[0])
    _status(on_close, requests[1])
    return created, created == STATUS_SUCCESS and bool(fd.file_attributes & ATTR_DIRECTORY)
