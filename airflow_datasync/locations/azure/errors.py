"""Azure SDK exceptions → the error vocabulary, in one table, and the one way this backend calls the service.

The table reads the service's own error code (``x-ms-error-code``) first and the HTTP status where a
response has no code (a HEAD has no body); an exception without a response (a refused or dropped
connection) is a lost connection, retried. Messages name the location and path, the code and the
status, never the request URL: a SAS token travels in its query string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum
from typing import TypeVar

from airflow_datasync.errors import (
    AlreadyExistsError,
    ConnectionLostError,
    LocationError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
    UnsafePathError,
)
from airflow_datasync.retry import retrying

T = TypeVar("T")

#: A precondition that failed (412 ConditionNotMet): what it means depends on the call (a conditional
#: create lost to another writer, a read pinned to an ETag found a newer version). Callers name it.
PRECONDITION = "ConditionNotMet"

#: The service's error codes → the vocabulary. Codes not listed fall back to :data:`STATUS_TABLE`.
ERROR_CODES: dict[str, type[LocationError]] = {
    "BlobNotFound": NotFoundError,
    "ContainerNotFound": NotFoundError,
    "ResourceNotFound": NotFoundError,
    "ContainerBeingDeleted": NotFoundError,
    "BlobAlreadyExists": AlreadyExistsError,
    "ContainerAlreadyExists": AlreadyExistsError,
    "TargetConditionNotMet": AlreadyExistsError,
    "AuthenticationFailed": PermissionDeniedError,
    "AuthorizationFailure": PermissionDeniedError,
    "AuthorizationPermissionMismatch": PermissionDeniedError,
    "AuthorizationResourceTypeMismatch": PermissionDeniedError,
    "AuthorizationServiceMismatch": PermissionDeniedError,
    "AuthorizationSourceIPMismatch": PermissionDeniedError,
    "AuthorizationProtocolMismatch": PermissionDeniedError,
    "InsufficientAccountPermissions": PermissionDeniedError,
    "AccountIsDisabled": PermissionDeniedError,
    "BlobArchived": PermissionDeniedError,
    "LeaseIdMissing": PermissionDeniedError,
    "InvalidResourceName": UnsafePathError,
    "InvalidUri": UnsafePathError,
    "OutOfRangeInput": UnsafePathError,
    "InvalidMetadata": LocationError,
    "Md5Mismatch": TransientError,          # bytes damaged on the way: sending them again is the fix
    "Crc64Mismatch": TransientError,
    "ServerBusy": TransientError,
    "OperationTimedOut": TransientError,
    "InternalError": TransientError,
    "InvalidBlockList": TransientError,    # staged blocks gone (collected after a week): stage them again
}

#: HTTP status → the vocabulary, for responses whose code is not in :data:`ERROR_CODES`.
STATUS_TABLE: dict[int, type[LocationError]] = {
    400: LocationError,
    401: PermissionDeniedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: TransientError,
    409: AlreadyExistsError,
    429: TransientError,
    500: TransientError,
    502: TransientError,
    503: TransientError,
    504: TransientError,
}

_SECRETS = re.compile(r"(?i)(sig=|accountkey=|sharedaccesssignature=)[^&;\s'\"]+")


def redact(text: str) -> str:
    """``text`` with SAS signatures and account keys replaced by ``***`` (transport errors quote URLs)."""
    return _SECRETS.sub(lambda m: m.group(1) + "***", text)


def to_location_error(exc: Exception, where: str, *,
                      precondition: type[LocationError] = AlreadyExistsError) -> LocationError:
    """The vocabulary error for an Azure SDK exception; ``precondition`` is what a 412 means to the caller.

    Raise it ``from None``: the SDK's exception quotes the request URL, whose query may hold a SAS."""
    from azure.core.exceptions import HttpResponseError, IncompleteReadError

    if isinstance(exc, IncompleteReadError) or not isinstance(exc, HttpResponseError):
        # No (complete) response: refused, reset or timed out. The pool opens a new connection next time.
        first_line = redact(str(exc)).splitlines()[0] if str(exc) else ""
        endpoint = _endpoint_of(exc)
        error: LocationError = ConnectionLostError(f"{where}: connection to Azure Blob Storage"
                                                   + (f" at {endpoint}" if endpoint else "")
                                                   + f" failed ({type(exc).__name__}: {first_line[:200]})")
    else:
        code = exc.error_code.value if isinstance(exc.error_code, Enum) else str(exc.error_code or "")
        status = exc.status_code or 0
        if code == PRECONDITION or (not code and status == 412):
            kind: type[LocationError] = precondition
        else:
            kind = ERROR_CODES.get(code) or STATUS_TABLE.get(status) or (
                TransientError if status >= 500 else LocationError)
        reason = redact(exc.reason or "")
        error = kind(f"{where}: {code or 'HTTP ' + str(status)}" + (f" ({reason})" if reason else ""))
    return error


def _endpoint_of(exc: BaseException) -> str | None:
    """``host:port`` a transport failure was for (never a path or query, where a SAS travels), read off the
    urllib3/requests exception the SDK wraps; None where there is none."""
    import urllib.parse

    inner = getattr(exc, "inner_exception", None)
    # urllib3 names the connection (refused, reset) or the pool (timeouts); requests the request.
    peer = getattr(inner, "conn", None) or getattr(inner, "pool", None)
    if peer is not None and getattr(peer, "host", None):
        return f"{peer.host}:{peer.port}" if getattr(peer, "port", None) else str(peer.host)
    url = getattr(getattr(inner, "request", None), "url", None)
    if isinstance(url, str) and (parts := urllib.parse.urlsplit(url)).hostname:
        return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    return None


def azure_call(call: Callable[[], T], where: str, *, precondition: type[LocationError] = AlreadyExistsError,
               attempts: int = 4) -> T:
    """``call()`` with its Azure exceptions mapped through the table, retried while they are transient."""
    from azure.core.exceptions import AzureError

    def attempt() -> T:
        try:
            return call()
        except AzureError as exc:
            raise to_location_error(exc, where, precondition=precondition) from None

    return retrying(attempt, attempts=attempts)
