"""The SMB backend's one error table: what smbprotocol and smbclient raise → the errors.py vocabulary.

Sorted by exception type and NTSTATUS (MS-ERREF 2.3), never by message text. Every request of the
backend goes through :func:`to_location_error`, so no client exception leaves the package.
"""

from __future__ import annotations

import errno

from airflow_datasync.errors import (
    ERRNO_TABLE,
    AlreadyExistsError,
    ConnectionLostError,
    DirectoryNotEmptyError,
    LocationError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
    UnsafePathError,
)
from airflow_datasync.locations.smb.protocol import refused_for_credits


class AuthenticationError(PermissionDeniedError):
    """The server refused the connection's account (wrong password, locked or expired account)."""


class UnsupportedError(LocationError):
    """The server does not support the request (a symlink on Samba, an SMB feature of a newer dialect)."""


class ConnectionBusyError(TransientError):
    """The connection's credits are all held by concurrent requests: the next attempt waits for some."""


class HandleLost(Exception):
    """The connection under an open handle dropped; the handle is gone with it (the caller goes on by path)."""


#: NTSTATUS → (vocabulary type, what it means). Statuses not listed are transient, as an unknown errno is.
NTSTATUS_TABLE: dict[int, tuple[type[LocationError], str]] = {
    0xC000000F: (NotFoundError, "no such file"),  # STATUS_NO_SUCH_FILE
    0xC0000034: (NotFoundError, "not found"),  # STATUS_OBJECT_NAME_NOT_FOUND
    0xC000003A: (NotFoundError, "a folder on the path does not exist"),  # STATUS_OBJECT_PATH_NOT_FOUND
    0xC0000225: (NotFoundError, "not found"),  # STATUS_NOT_FOUND
    0xC00000CC: (NotFoundError, "the server has no such share"),  # STATUS_BAD_NETWORK_NAME
    0xC0000035: (AlreadyExistsError, "an entry exists at the name"),  # STATUS_OBJECT_NAME_COLLISION
    0xC0000022: (PermissionDeniedError, "access denied"),  # STATUS_ACCESS_DENIED
    0xC0000061: (PermissionDeniedError, "required privilege not held"),  # STATUS_PRIVILEGE_NOT_HELD
    0xC00000A2: (PermissionDeniedError, "the share is write-protected"),  # STATUS_MEDIA_WRITE_PROTECTED
    0xC0000121: (PermissionDeniedError, "the entry cannot be deleted (read-only)"),  # STATUS_CANNOT_DELETE
    0xC0000101: (DirectoryNotEmptyError, "the directory is not empty"),  # STATUS_DIRECTORY_NOT_EMPTY
    0xC0000033: (UnsafePathError, "the name is not valid on the server"),  # STATUS_OBJECT_NAME_INVALID
    0xC000003B: (UnsafePathError, "the path is not valid on the server"),  # STATUS_OBJECT_PATH_SYNTAX_BAD
    0xC00000BA: (LocationError, "is a directory"),  # STATUS_FILE_IS_A_DIRECTORY
    0xC0000103: (LocationError, "is not a directory"),  # STATUS_NOT_A_DIRECTORY
    0xC000007F: (LocationError, "disk full"),  # STATUS_DISK_FULL
    0xC000000D: (LocationError, "the server refused a parameter of the request"),  # STATUS_INVALID_PARAMETER
    0xC00000BB: (UnsupportedError, "not supported by the server"),  # STATUS_NOT_SUPPORTED
    0xC0000010: (UnsupportedError, "not supported by the server"),  # STATUS_INVALID_DEVICE_REQUEST
    0xC0000275: (UnsupportedError, "not a reparse point"),  # STATUS_NOT_A_REPARSE_POINT
    0xC0000043: (TransientError, "sharing violation: the file is open elsewhere"),  # STATUS_SHARING_VIOLATION
    0xC0000056: (TransientError, "a delete is pending on the entry"),  # STATUS_DELETE_PENDING
    0xC00000B5: (TransientError, "the server timed out"),  # STATUS_IO_TIMEOUT
    0xC000009A: (TransientError, "the server is short of resources"),  # STATUS_INSUFFICIENT_RESOURCES
    0xC00000D0: (TransientError, "the server accepts no more requests now"),  # STATUS_REQUEST_NOT_ACCEPTED
    # The session or the connection under it is gone: reconnecting helps.
    0xC0000203: (ConnectionLostError, "the session was deleted"),  # STATUS_USER_SESSION_DELETED
    0xC000035C: (ConnectionLostError, "the session expired"),  # STATUS_NETWORK_SESSION_EXPIRED
    0xC00000C9: (ConnectionLostError, "the share connection was deleted"),  # STATUS_NETWORK_NAME_DELETED
    0xC000020C: (ConnectionLostError, "the connection was disconnected"),  # STATUS_CONNECTION_DISCONNECTED
    0xC0000128: (ConnectionLostError, "the handle was closed"),  # STATUS_FILE_CLOSED
    # The account is refused: never retried, the message names the account and the connection.
    0xC000006D: (AuthenticationError, "wrong user name or password"),  # STATUS_LOGON_FAILURE
    0xC000006E: (AuthenticationError, "the account is restricted"),  # STATUS_ACCOUNT_RESTRICTION
    0xC0000070: (AuthenticationError, "the account may not log on from here"),  # STATUS_INVALID_WORKSTATION
    0xC0000071: (AuthenticationError, "the password expired"),  # STATUS_PASSWORD_EXPIRED
    0xC0000072: (AuthenticationError, "the account is disabled"),  # STATUS_ACCOUNT_DISABLED
    0xC0000193: (AuthenticationError, "the account expired"),  # STATUS_ACCOUNT_EXPIRED
    0xC0000224: (AuthenticationError, "the password must be changed"),  # STATUS_PASSWORD_MUST_CHANGE
    0xC0000234: (AuthenticationError, "the account is locked out"),  # STATUS_ACCOUNT_LOCKED_OUT
}

#: errnos of a socket closed under a pooled connection.
_SOCKET_GONE = {errno.EBADF, errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ECONNABORTED}


def _error(kind: type[LocationError], where: str, reason: str, account: str) -> LocationError:
    if issubclass(kind, AuthenticationError):
        reason = f"authentication failed for {account}: {reason}"
    error = kind(f"{where}: {reason}")
    error.reason = reason  # the message without the location, for callers that phrase their own
    return error


def _by_status(status: int, where: str, fallback: str, account: str, errno_hint: int | None = None) -> LocationError:
    kind, reason = NTSTATUS_TABLE.get(status, (None, fallback))
    if kind is None:
        kind = ERRNO_TABLE.get(errno_hint, TransientError) if errno_hint else TransientError
    return _error(kind, where, f"{reason} (NTSTATUS 0x{status:08x})", account)


def to_location_error(exc: BaseException, where: str, *, account: str = "", setting_up: bool = False) -> LocationError | None:
    """The vocabulary error for ``exc`` raised by smbclient/smbprotocol, its message prefixed with ``where``
    (the location and path); ``None`` for an exception that is not the client's (a bug: raised as is).

    ``account`` names the user and the connection in an authentication failure. ``setting_up`` says the
    failure came while opening the session: a bare SMBException there is a configuration the server
    refuses (encryption, signing, a guest account), not a connection to re-open.
    """
    from smbprotocol.exceptions import (
        SMBAuthenticationError,
        SMBConnectionClosed,
        SMBException,
        SMBOSError,
        SMBResponseException,
        SMBUnsupportedFeature,
    )

    if isinstance(exc, LocationError):
        return exc
    if isinstance(exc, SMBOSError):
        return _by_status(exc.ntstatus, where, exc.strerror or "SMB error", account, exc.errno)
    if isinstance(exc, SMBResponseException):
        return _by_status(exc.status, where, exc.message, account)
    if isinstance(exc, SMBAuthenticationError):
        return _error(AuthenticationError, where, str(exc), account)
    if isinstance(exc, SMBConnectionClosed):
        return _error(ConnectionLostError, where, "the connection closed", account)
    from airflow_datasync.locations.smb.receive import SignatureMismatch

    if isinstance(exc, SignatureMismatch):  # the receiver closed the connection: a new one is to be trusted
        return _error(ConnectionLostError, where, str(exc), account)
    if isinstance(exc, SMBUnsupportedFeature):
        return _error(UnsupportedError, where, str(exc), account)
    if type(exc) is SMBException:
        if refused_for_credits(exc):
            return _error(ConnectionBusyError, where, "no credits left on the connection", account)
        kind = LocationError if setting_up else ConnectionLostError  # a session or tree the connection lost
        return _error(kind, where, f"SMB session problem: {exc}", account)
    if isinstance(exc, SMBException):
        return _error(LocationError, where, str(exc), account)
    if isinstance(exc, (ConnectionError, TimeoutError)) or (isinstance(exc, OSError) and exc.errno in _SOCKET_GONE):
        return _error(ConnectionLostError, where, f"connection problem: {exc}", account)
    if isinstance(exc, OSError):
        kind = ERRNO_TABLE.get(exc.errno, TransientError) if exc.errno is not None else LocationError
        return _error(kind, where, exc.strerror or str(exc), account)
    return None


def reason(exc: LocationError) -> str:
    """What went wrong without the location (for a message that names the location itself)."""
    return getattr(exc, "reason", None) or str(exc)


def is_connection_lost(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionLostError)


def is_connection_busy(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionBusyError)
