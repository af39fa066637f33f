"""Whether an S3 server keeps a backslash in a key: AWS does (it is an ordinary character there), some
S3-compatible servers store it as ``/`` (SeaweedFS normalises ``\\`` in keys), which would turn
``a\\b.txt`` into ``a/b.txt`` and a later REMOVE run into a deletion of what it just wrote.

Learnt once per process and endpoint, and only when a tree holds such a name: one empty object under a
temporary name (:data:`TEMP_PREFIX`, hidden from listings) is written, looked up under both spellings and
removed.
"""

from __future__ import annotations

import os
import threading
import uuid

from airflow_datasync.locations.base import TEMP_PREFIX
from airflow_datasync.locations.s3.transport import S3Transport

#: (endpoint, bucket) → whether the server keeps backslashes in keys.
_KEEPS: dict[tuple[str | None, str], bool] = {}
_LOCK = threading.Lock()

BACKSLASH_REASON = ("this S3 server stores a backslash in a key as '/' (it would become another name: "
                    "SeaweedFS does so; AWS S3 keeps it)")


def keeps_backslashes(transport: S3Transport, endpoint: str | None, bucket: str, prefix: str) -> bool:
    """True where a key written with ``\\`` is listed and read back with it (probed once, then cached)."""
    with _LOCK:
        known = _KEEPS.get((endpoint, bucket))
        if known is not None:
            return known
        probe = f"{prefix}{TEMP_PREFIX}probe-{os.getpid()}-{uuid.uuid4().hex[:8]}\\b"
        normalised = probe.replace("\\", "/")
        transport.put(bucket, probe, b"", {})
        try:
            kept = transport.head(bucket, normalised) is None
        finally:
            transport.delete(bucket, probe)
            if transport.head(bucket, normalised) is not None:
                transport.delete(bucket, normalised)
        _KEEPS[(endpoint, bucket)] = kept
        return kept
