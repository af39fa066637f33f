"""S3's answers in the error vocabulary of :mod:`airflow_datasync.errors`: one table by S3 error code, then
by HTTP status, used by both transports (the SigV4 client's answers and botocore's exceptions)."""

from __future__ import annotations

from airflow_datasync.errors import (
    AlreadyExistsError,
    ChangedSinceListingError,
    ConnectionLostError,
    LocationError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
    UnsafePathError,
)

#: S3 error code → (vocabulary type, what it means for the user; None: the code says it).
CODE_TABLE: dict[str, tuple[type[LocationError], str | None]] = {
    "NoSuchBucket": (NotFoundError, "the bucket does not exist"),
    "NoSuchKey": (NotFoundError, None),
    "NotFound": (NotFoundError, None),
    "NoSuchUpload": (NotFoundError, "the multipart upload is gone"),
    "AccessDenied": (PermissionDeniedError, "the credentials lack permission"),
    "AllAccessDisabled": (PermissionDeniedError, "all access to this bucket is disabled"),
    "AccountProblem": (PermissionDeniedError, None),
    "InvalidAccessKeyId": (PermissionDeniedError, "the access key is unknown"),
    "SignatureDoesNotMatch": (PermissionDeniedError, "the secret key is wrong"),
    "ExpiredToken": (PermissionDeniedError, "the session token has expired"),
    "InvalidToken": (PermissionDeniedError, "the session token is invalid"),
    "TokenRefreshRequired": (PermissionDeniedError, None),
    "RequestTimeTooSkewed": (LocationError, "this machine's clock is too far from S3's"),
    "PreconditionFailed": (AlreadyExistsError, None),
    "ConditionalRequestConflict": (TransientError, None),
    "KeyTooLongError": (UnsafePathError, "the key is longer than S3's 1,024 bytes"),
    "InvalidObjectState": (LocationError, "the object is archived (restore it first)"),
    "BadDigest": (TransientError, "the bytes changed on the way (checksum mismatch)"),
    "XAmzContentSHA256Mismatch": (TransientError, "the bytes changed on the way (checksum mismatch)"),
    "SlowDown": (TransientError, None),
    "Throttling": (TransientError, None),
    "ThrottlingException": (TransientError, None),
    "RequestTimeout": (TransientError, None),
    "InternalError": (TransientError, None),
    "ServiceUnavailable": (TransientError, None),
    "OperationAborted": (TransientError, None),
}

#: HTTP status → vocabulary type, for answers without a known code (a HEAD has no body).
STATUS_TABLE: dict[int, type[LocationError]] = {
    403: PermissionDeniedError, 404: NotFoundError, 409: TransientError, 412: AlreadyExistsError,
    429: TransientError, 500: TransientError, 502: TransientError, 503: TransientError, 504: TransientError,
}


def s3_error(where: str, status: int, code: str | None, *, pinned: bool = False) -> LocationError:
    """The vocabulary error for an S3 answer. ``pinned``: the request carried an If-Match on a version
    PREPARING listed, so a failed precondition means the entry changed since the listing."""
    kind, hint = CODE_TABLE.get(code or "", (None, None))
    if kind is None:
        kind = STATUS_TABLE.get(status, TransientError if status >= 500 else LocationError)
    if pinned and kind is AlreadyExistsError:
        kind, hint = ChangedSinceListingError, "changed since PREPARING listed it"
    detail = hint or code or f"HTTP {status}"
    if hint and code:
        detail = f"{hint} ({code})"
    return kind(f"{where}: {detail}")


def botocore_error(where: str, exc: Exception, *, pinned: bool = False) -> LocationError:
    """The vocabulary error for an exception of botocore (the fallback transport), by its type and code."""
    from botocore import exceptions as bc

    if isinstance(exc, bc.ClientError):
        error = exc.response.get("Error") or {}
        status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
        code = str(error.get("Code") or "")
        return s3_error(where, int(code) if code.isdigit() else status, None if code.isdigit() else code,
                        pinned=pinned)
    if isinstance(exc, bc.SSLError):
        return LocationError(f"{where}: cannot reach S3 ({exc})")
    if isinstance(exc, (bc.ConnectionError, bc.HTTPClientError)):
        return ConnectionLostError(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, (bc.NoCredentialsError, bc.PartialCredentialsError)):
        return PermissionDeniedError(f"{where}: no usable AWS credentials ({exc})")
    return LocationError(f"{where}: {type(exc).__name__}: {exc}")
