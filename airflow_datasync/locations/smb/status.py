"""What smbprotocol's failures mean: NTSTATUS codes, dropped connections, exhausted credits."""

from __future__ import annotations

import errno

# NTSTATUS values we translate to errno (smbprotocol leaves some at errno 0).
STATUS_ERRNO = {
    0xC0000022: (errno.EACCES, "access denied"),
    0xC00000A2: (errno.EROFS, "the share is write-protected"),
    0xC000007F: (errno.ENOSPC, "disk full"),
    0xC0000033: (errno.EINVAL, "name is not valid on the server"),
    0xC0000043: (errno.EBUSY, "sharing violation: the file is open elsewhere"),
    0xC0000061: (errno.EACCES, "required privilege not held"),
    0xC00000BB: (errno.EOPNOTSUPP, "not supported by the server"),
    0xC0000275: (errno.EOPNOTSUPP, "not a reparse point"),
}
LOGON_STATUSES = {0xC000006D, 0xC000006E, 0xC0000070, 0xC0000071, 0xC0000072, 0xC0000193, 0xC0000224, 0xC0000234}
DISCONNECT_STATUSES = {0xC0000203, 0xC000035C, 0xC00000C9, 0xC000020C, 0xC0000128}  # session deleted/expired, name deleted…


class HandleLost(Exception):
    """The connection under an open handle dropped; the handle is gone with it."""


def is_disconnect(exc: BaseException) -> bool:
    from smbprotocol.exceptions import SMBConnectionClosed, SMBException, SMBOSError, SMBResponseException

    if isinstance(exc, (SMBConnectionClosed, ConnectionError, BrokenPipeError, TimeoutError)):
        return True
    if isinstance(exc, SMBOSError):
        return exc.ntstatus in DISCONNECT_STATUSES
    if isinstance(exc, OSError):  # the socket under a pooled connection was closed by the peer
        return exc.errno in (errno.EBADF, errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ECONNABORTED)
    if isinstance(exc, SMBResponseException):
        return exc.status in DISCONNECT_STATUSES
    if isinstance(exc, SMBException):
        return "closed" in str(exc).lower()
    return False


def out_of_credits(exc: BaseException) -> bool:
    """smbprotocol refuses to send (rather than wait) when concurrent requests used up the server's credits."""
    return "credits are available" in str(exc)
