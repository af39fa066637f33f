"""The one error vocabulary of every location backend.

Each backend maps its client's exceptions to these types in one table, by exception type and by the
protocol's own codes (errno, an NTSTATUS, an S3 or Azure error code), never by message text. The engine
reads only these types and their :attr:`LocationError.retryable` flag: a backend never leaks a botocore,
smbprotocol or Azure exception past its own package.

The classes that have a natural built-in twin also derive from it (``NotFoundError`` is a
``FileNotFoundError``), so that code written against the standard library keeps working.
"""

from __future__ import annotations

import errno as _errno


class LocationError(Exception):
    """A location cannot be used as asked. The message names the location, the path and the fix."""

    #: Whether trying the same call again may succeed (a dropped connection, throttling, a 5xx).
    retryable: bool = False


class NotFoundError(LocationError, FileNotFoundError):
    """The entry (or the container, bucket, share) does not exist."""


class PermissionDeniedError(LocationError, PermissionError):
    """The credentials in use may not do this (access denied, a read-only share, a refused chown)."""


class AlreadyExistsError(LocationError, FileExistsError):
    """An entry is in the way: OverwriteMode=NEVER found one at the name, or a conditional write's
    precondition failed because another writer got there first."""


class ChangedSinceListingError(LocationError):
    """The entry is no longer the version PREPARING listed; the next execution copies the new one."""


class UnsafePathError(LocationError):
    """A relative path would escape the location root (``..``, absolute, NUL, empty component), or a
    name the destination cannot hold."""


class DirectoryNotEmptyError(LocationError):
    """A directory to delete still holds entries (excluded by filters, or new): it is kept, not an error."""


class TransientError(LocationError):
    """A failure that a later attempt may not meet: a timeout, throttling, a server error (5xx)."""

    retryable = True


class ConnectionLostError(TransientError):
    """The connection dropped mid-call; the backend reconnects before the next attempt."""


#: errno → vocabulary, for backends whose client raises OSError (local paths, and SMB through smbclient).
#: errnos not listed here are transient: EIO, ESTALE, ETIMEDOUT on a mount may pass on the next try.
ERRNO_TABLE: dict[int, type[LocationError]] = {
    _errno.ENOENT: NotFoundError,
    _errno.EACCES: PermissionDeniedError,
    _errno.EPERM: PermissionDeniedError,
    _errno.EROFS: PermissionDeniedError,
    _errno.EEXIST: AlreadyExistsError,
    _errno.ENOTEMPTY: DirectoryNotEmptyError,
    _errno.EISDIR: LocationError,
    _errno.ENOTDIR: LocationError,
    _errno.ENAMETOOLONG: UnsafePathError,
    _errno.ELOOP: LocationError,
    _errno.EINVAL: LocationError,
    _errno.ENOSPC: LocationError,
    _errno.EDQUOT: LocationError,
}



class ShardFailedError(Exception):
    """Some entries of a shard failed; the per-file results are written. Retrying the task retries only those."""


class PermanentShardError(ShardFailedError):
    """Every failure of the shard is one a retry cannot fix (permission denied, a directory in the way,
    a file gone from the source): the task fails at once instead of burning its retries. Defined here, not
    in phases/transfer.py, so that the retry rule naming it imports no engine when a DAG file is parsed."""


def from_oserror(exc: OSError, where: str) -> LocationError:
    """The vocabulary error for an OSError, its message prefixed with ``where`` (location and path)."""
    kind = ERRNO_TABLE.get(exc.errno, TransientError) if exc.errno is not None else LocationError
    error = kind(f"{where}: {exc.strerror or exc}")
    error.__cause__ = exc
    return error


def is_retryable(exc: BaseException) -> bool:
    """True where trying again may help: a retryable vocabulary error, or an OSError whose errno is not in
    :data:`ERRNO_TABLE` (a backend that passes OSError through unmapped)."""
    if isinstance(exc, LocationError):
        return exc.retryable
    if isinstance(exc, OSError):
        return exc.errno not in ERRNO_TABLE
    return False
