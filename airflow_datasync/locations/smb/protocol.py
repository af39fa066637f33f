"""Everything below smbclient's public API: the one module that calls smbclient's private ``_io``/``_pool``/``_os``
or builds raw smbprotocol requests.

smbclient's public functions cost several round trips each and drop what the wire carries (its datetimes
keep microseconds only), so the hot paths go one level down: a directory query with raw FILETIMEs,
SET_INFO compounds on an open handle (times, attributes, security descriptor, rename, delete on close), and
an ``lstat`` of one create + close. Imports of smbclient/smbprotocol stay inside the functions, so that
importing the package loads neither.
"""

from __future__ import annotations

import stat as st
from types import SimpleNamespace
from typing import Any

from airflow_datasync.locations.smb.messages import parse_create

EPOCH_FILETIME = 116444736000000000  # 1970-01-01 as a FILETIME (100 ns ticks since 1601)

# FILE_ATTRIBUTE_* (MS-FSCC 2.6)
ATTR_READONLY, ATTR_HIDDEN, ATTR_SYSTEM, ATTR_DIRECTORY, ATTR_ARCHIVE = 0x1, 0x2, 0x4, 0x10, 0x20
ATTR_NORMAL, ATTR_TEMPORARY, ATTR_REPARSE_POINT = 0x80, 0x100, 0x400
ATTR_OFFLINE, ATTR_NOT_CONTENT_INDEXED = 0x1000, 0x2000
#: Attributes copied between SMB locations (DataSync's "standard file attributes" that a client may set).
COPIED_ATTRIBUTES = ATTR_READONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_ARCHIVE | ATTR_TEMPORARY | ATTR_OFFLINE | ATTR_NOT_CONTENT_INDEXED
IO_REPARSE_TAG_SYMLINK = 0xA000000C

# SECURITY_INFORMATION flags (MS-DTYP 2.4.7) for SecurityDescriptorCopyFlags.
OWNER_SECURITY_INFORMATION = 0x1
DACL_SECURITY_INFORMATION, SACL_SECURITY_INFORMATION = 0x4, 0x8
SECURITY_FLAGS = {
    "OWNER_DACL": OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
    "OWNER_DACL_SACL": OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION | SACL_SECURITY_INFORMATION,
}
# Access mask bits (MS-DTYP 2.4.3) a handle needs for what is done through it.
READ_CONTROL, WRITE_DAC, WRITE_OWNER, ACCESS_SYSTEM_SECURITY = 0x00020000, 0x00040000, 0x00080000, 0x01000000
DELETE = 0x00010000
#: What a handle writing a file needs: FILE_WRITE_DATA, FILE_WRITE_EA, FILE_WRITE_ATTRIBUTES.
WRITE_ACCESS = 0x00000002 | 0x00000010 | 0x00000100
#: Marks a security descriptor among the SET_INFO requests given to :func:`set_info_on`.
SECURITY = "security"


def ns_from_filetime(filetime: int) -> int | None:
    return (filetime - EPOCH_FILETIME) * 100 if filetime else None


def filetime_from_ns(ns: int | None) -> int:
    return 0 if ns is None else ns // 100 + EPOCH_FILETIME


def connection_alive(connection: Any) -> bool:
    """Whether a pooled ``Connection``'s socket is open and its receiver thread has not failed."""
    return connection.transport.connected and connection._t_exc is None


# -- directory listing -------------------------------------------------------------------------------
# One compound per directory where it fits, parsed with struct: see .dir_query.
from airflow_datasync.locations.smb.dir_query import list_directory  # noqa: E402,F401 - re-exported


# -- handles -----------------------------------------------------------------------------------------
def _opened(raw):
    raw.open()
    return raw


def open_for_read(unc: str, kw: dict):
    """An open ``SMBFileIO`` reading ``unc`` (others may still read and write it)."""
    from smbclient._io import SMBFileIO

    return _opened(SMBFileIO(unc, mode="rb", share_access="rw", **kw))


def end_of_file(raw) -> int:
    """The size of the file open in ``raw`` as the server reported it at open."""
    return raw.fd.end_of_file


def create_exclusive(unc: str, extra_access: int, kw: dict):
    """Create (or truncate) ``unc`` with no sharing and return the open ``SMBFileIO``."""
    from smbclient._io import SMBFileIO
    from smbprotocol.file_info import FileAttributes
    from smbprotocol.open import FilePipePrinterAccessMask as Access

    access = Access.FILE_WRITE_DATA | Access.FILE_WRITE_ATTRIBUTES | Access.FILE_WRITE_EA | extra_access
    return _opened(SMBFileIO(unc, mode="wb", share_access="", desired_access=access,
                             file_attributes=FileAttributes.FILE_ATTRIBUTE_NORMAL, **kw))


def close_quietly(raw) -> None:
    """Close ``raw``, waiting while concurrent requests hold every credit (a handle left open keeps the file
    locked until the connection closes); any other failure is ignored."""
    from airflow_datasync.retry import retrying

    try:
        retrying(raw.close, attempts=300, first_pause=0.001, max_pause=0.1, retryable=refused_for_credits)
    except Exception:  # the connection may be gone; the caller removes the temp file
        pass


def basic_info_request(creation: int, atime: int, mtime: int, attributes: int):
    """A FileBasicInformation for :func:`set_info_on` (0 leaves a field as it is; the change time always is)."""
    from smbprotocol.file_info import FileBasicInformation

    basic = FileBasicInformation()
    basic["creation_time"] = creation
    basic["last_access_time"] = atime
    basic["last_write_time"] = mtime
    basic["change_time"] = 0
    basic["file_attributes"] = attributes
    return basic


def rename_request(target_unc: str, overwrite: bool, kw: dict):
    """A FileRenameInformation that renames an open handle to ``target_unc`` (same share)."""
    from smbclient._io import SMBRawIO
    from smbprotocol.file_info import FileRenameInformation

    target = SMBRawIO(target_unc, **kw).fd  # resolves the tree (no request)
    dst_name = target.file_name
    tree = target.tree_connect
    if tree.is_dfs_share and dst_name.startswith(tree.share_name[2:]):
        dst_name = dst_name[len(tree.share_name) - 1:]
    info = FileRenameInformation()
    info["replace_if_exists"] = overwrite
    info["file_name"] = dst_name
    return info


def set_info_on(raw, *infos) -> None:
    """SET_INFO requests on an open handle, compounded into one round trip; the first failure is raised
    (the server runs them in order). A ``(SECURITY, info_flags, descriptor)`` tuple sets a security descriptor."""
    from smbclient._io import SMBFileTransaction, set_info
    from smbprotocol.file_info import InfoType
    from smbprotocol.open import SMB2SetInfoRequest, SMB2SetInfoResponse

    if not infos:
        return
    transaction = SMBFileTransaction(raw)
    for info in infos:
        if isinstance(info, tuple) and info and info[0] is SECURITY:
            req = SMB2SetInfoRequest()
            req["info_type"] = InfoType.SMB2_0_INFO_SECURITY
            req["additional_information"] = info[1]
            req["file_id"] = raw.fd.file_id
            req["buffer"] = info[2]

            def receive(request):
                resp = SMB2SetInfoResponse()
                resp.unpack(raw.fd.connection.receive(request)["data"].get_value())
                return resp

            transaction += (req, receive)
        else:
            set_info(transaction, info)
    transaction.commit()


def delete_on_close(raw) -> bool:
    """Mark the open handle delete-on-close and close it (the temp file goes with it); False if that failed."""
    from smbprotocol.file_info import FileDispositionInformation

    try:
        info = FileDispositionInformation()
        info["delete_pending"] = True
        set_info_on(raw, info)
    except Exception:  # the caller falls back to closing and removing by path
        return False
    try:
        raw.close()
    except Exception:  # delete is pending; a dropped connection closes the handle anyway
        pass
    return True


# -- by path -----------------------------------------------------------------------------------------
def set_basic(unc: str, *, creation: int, atime: int, mtime: int, attributes: int, kw: dict) -> None:
    """Times (FILETIMEs) and attributes of the entry at ``unc``, not following a symlink; 0 leaves one as is."""
    from smbclient._os import _set_basic_information

    _set_basic_information(unc, creation_time=creation, last_access_time=atime, last_write_time=mtime,
                           file_attributes=attributes, follow_symlinks=False, **kw)


def quick_lstat(unc: str, kw: dict):
    """``lstat`` in one compound of two requests (create + close): the create response already carries the times,
    size and attributes (smbclient's lstat adds five queries). ``None`` for a reparse point (the caller asks
    for its tag)."""
    from smbclient._io import SMBFileTransaction, SMBRawIO
    from smbprotocol.open import CreateOptions
    from smbprotocol.open import FilePipePrinterAccessMask as Access

    raw = SMBRawIO(unc, mode="r", share_access="rwd", desired_access=Access.FILE_READ_ATTRIBUTES,
                   create_options=CreateOptions.FILE_OPEN_REPARSE_POINT, **kw)
    transaction = SMBFileTransaction(raw)
    raw.open(transaction=transaction)
    create_msg, create_recv = transaction._actions[0]
    fields = {}

    def receive(request):
        out = create_recv(request)
        body = request.response["data"].get_value()
        fields["v"] = parse_create(body)
        return out

    transaction._actions[0] = (create_msg, receive)
    raw.close(transaction=transaction)
    transaction.commit()
    if "v" not in fields:  # a DFS referral re-sent the create with smbclient's own receiver
        return None
    _file_id, creation, atime, mtime, size, attrs = fields["v"]
    if attrs & ATTR_REPARSE_POINT:
        return None
    if attrs & ATTR_DIRECTORY:
        mode = st.S_IFDIR | 0o111
    else:
        mode = st.S_IFREG
    mode |= 0o444 if attrs & ATTR_READONLY else 0o666
    return SimpleNamespace(st_mode=mode, st_size=size, st_mtime_ns=(mtime - EPOCH_FILETIME) * 100,
                           st_atime_ns=(atime - EPOCH_FILETIME) * 100, st_ctime_ns=(creation - EPOCH_FILETIME) * 100,
                           st_file_attributes=attrs)


def query_security(unc: str, info: int, access: int, kw: dict) -> bytes:
    from smbclient._io import SMBFileTransaction, SMBRawIO
    from smbprotocol.file_info import InfoType
    from smbprotocol.open import CreateOptions, SMB2QueryInfoRequest, SMB2QueryInfoResponse

    raw = SMBRawIO(unc, mode="r", share_access="rwd", desired_access=access,
                   create_options=CreateOptions.FILE_OPEN_REPARSE_POINT, **kw)
    with SMBFileTransaction(raw) as transaction:
        req = SMB2QueryInfoRequest()
        req["info_type"] = InfoType.SMB2_0_INFO_SECURITY
        req["output_buffer_length"] = 65536
        req["additional_information"] = info
        req["file_id"] = raw.fd.file_id

        def receive(request):
            resp = SMB2QueryInfoResponse()
            resp.unpack(raw.fd.connection.receive(request)["data"].get_value())
            return resp["buffer"].get_value()

        transaction += (req, receive)
    return transaction.results[0]


def set_security(unc: str, info: int, access: int, descriptor: bytes, kw: dict) -> None:
    from smbclient._io import SMBFileTransaction, SMBRawIO
    from smbprotocol.file_info import InfoType
    from smbprotocol.open import CreateOptions, SMB2SetInfoRequest, SMB2SetInfoResponse

    raw = SMBRawIO(unc, mode="r", share_access="rwd", desired_access=access,
                   create_options=CreateOptions.FILE_OPEN_REPARSE_POINT, **kw)
    with SMBFileTransaction(raw) as transaction:
        req = SMB2SetInfoRequest()
        req["info_type"] = InfoType.SMB2_0_INFO_SECURITY
        req["additional_information"] = info
        req["file_id"] = raw.fd.file_id
        req["buffer"] = descriptor

        def receive(request):
            resp = SMB2SetInfoResponse()
            resp.unpack(raw.fd.connection.receive(request)["data"].get_value())
            return resp

        transaction += (req, receive)


def refused_for_credits(exc: BaseException) -> bool:
    """Whether smbprotocol refused to send because concurrent requests hold every credit the server granted.

    It says so only in a bare SMBException raised by ``Connection._send`` before anything is sent; the
    raising function, not the message, tells it from the other bare SMBExceptions."""
    from smbprotocol.connection import Connection
    from smbprotocol.exceptions import SMBException

    if type(exc) is not SMBException or exc.__traceback__ is None:
        return False
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code is Connection._send.__code__


def open_temp_again(unc: str, kw: dict):
    """Open the existing temporary ``unc`` again with no sharing, to rename or delete it through a handle."""
    from smbclient._io import SMBFileIO
    from smbprotocol.open import FilePipePrinterAccessMask as Access

    access = Access.FILE_READ_ATTRIBUTES | Access.FILE_WRITE_ATTRIBUTES | DELETE
    return _opened(SMBFileIO(unc, mode="r", share_access="", desired_access=access, **kw))
