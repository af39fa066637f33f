"""Writing a block blob whole: nothing is visible at its name until the last step succeeds.

A blob up to the location's block size goes in one Put Blob, sent only after ``before_commit`` has
passed (the service then computes and keeps its Content-MD5). A larger one is staged as blocks, which
the service keeps uncommitted and invisible, and becomes visible in one Put Block List after
``before_commit`` has passed; if anything fails before that, the staged blocks are left to the service,
which discards uncommitted blocks, and nothing is visible. ``overwrite=False`` sends If-None-Match: *
on that last step, so a blob that appeared meanwhile is never replaced.

Block ids start with ``ds-<writer tag>`` and an id of the upload (:func:`block_prefix`), and the upload is
reported started before its first block and ended once committed, so that the blocks a killed writer
staged can be recognised and dropped (see :func:`discard_uncommitted`).
"""

from __future__ import annotations

import base64
import itertools
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from airflow_datasync.locations.azure.errors import azure_call
from airflow_datasync.locations.azure.metadata import quoted_etag
from airflow_datasync.locations.base import NotFoundError, Written

#: Every block id is this many characters before base64, as before ids carried a writer tag: the service
#: requires one length for all of a blob's uncommitted blocks, whoever staged them.
BLOCK_ID_CHARS = 40


def block_prefix(tag: str | None) -> str:
    """The first 32 characters of every block id of one upload: ``ds-<tag>`` padded to 20, then 12 random
    hex digits; the rest is the block's number."""
    return f"ds-{tag or ''}".ljust(20, "_")[:20] + uuid.uuid4().hex[:12]


def _block_ids(prefix: str) -> Iterator[str]:
    """Block ids of one upload, all :data:`BLOCK_ID_CHARS` long before base64."""
    for number in itertools.count():
        yield base64.b64encode(f"{prefix}{number:08d}".encode()).decode()


def _decoded(block_id: str) -> str:
    try:
        return base64.b64decode(block_id).decode("ascii", "replace")
    except ValueError:
        return ""


def discard_uncommitted(blob: Any, prefix: str, where: str) -> int | None:
    """Drop the uncommitted blocks of the upload ``prefix`` where the blob has nothing committed and no other
    writer's blocks: Delete Blob then drops them (checked on Azurite). Returns their bytes (0: none left),
    or None where they are left alone: on a committed blob, deleting would delete data, and its next commit
    (or the service, after 7 days) drops them."""
    try:
        azure_call(blob.get_blob_properties, where)
        return None
    except NotFoundError:
        pass
    try:
        committed, uncommitted = azure_call(lambda: blob.get_block_list("all"), where)
    except NotFoundError:
        return 0
    if committed or not all(_decoded(b["id"]).startswith(prefix) for b in uncommitted):
        return None
    if uncommitted:
        azure_call(blob.delete_blob, where)
    return sum(b["size"] or 0 for b in uncommitted)


def _written(response: dict[str, Any], size: int) -> Written:
    return Written(size=size, etag=quoted_etag(response.get("etag")), version=response.get("version_id"))


def upload_blob(blob: Any, chunks: Iterator[bytes], *, metadata: dict[str, str], block_size: int,
                concurrency: int, before_commit: Callable[[int], None] | None, overwrite: bool,
                access_tier: str | None, where: str, tag: str | None = None,
                track: Callable[[str, str], None] | None = None) -> Written:
    """Write ``chunks`` to the block blob behind the SDK's ``BlobClient`` ``blob``; see the module doc."""
    from azure.storage.blob import StandardBlobTier

    tier = StandardBlobTier(access_tier) if access_tier else None
    pending: list[bytes] = []
    held = 0
    iterator = iter(chunks)
    for chunk in iterator:
        if not chunk:
            continue
        pending.append(bytes(chunk))
        held += len(chunk)
        if held > block_size:
            return _staged(blob, pending, held, iterator, metadata=metadata, block_size=block_size,
                           concurrency=concurrency, before_commit=before_commit, overwrite=overwrite,
                           tier=tier, where=where, tag=tag, track=track)
    body = b"".join(pending)
    if before_commit is not None:
        before_commit(len(body))
    response = azure_call(lambda: blob.upload_blob(body, length=len(body), overwrite=overwrite, metadata=metadata,
                                                   standard_blob_tier=tier), where)
    return _written(response, len(body))


def _staged(blob: Any, pending: list[bytes], held: int, rest: Iterator[bytes], *, metadata: dict[str, str],
            block_size: int, concurrency: int, before_commit: Callable[[int], None] | None, overwrite: bool,
            tier: Any, where: str, tag: str | None, track: Callable[[str, str], None] | None) -> Written:
    from azure.core import MatchConditions
    from azure.storage.blob import BlobBlock

    prefix = block_prefix(tag)
    ids = _block_ids(prefix)
    if track is not None:
        track("started", prefix)
    staged: list[str] = []
    total = 0
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="azblock") as pool:
        in_flight: list[Future] = []

        def stage(body: bytes) -> None:
            block_id = next(ids)
            staged.append(block_id)
            # At most ``concurrency`` blocks in memory and on the wire.
            while len(in_flight) >= concurrency:
                in_flight.pop(0).result()
            in_flight.append(pool.submit(azure_call, lambda: blob.stage_block(block_id, body, length=len(body)),
                                         where))

        for chunk in itertools.chain(rest, (None,)):
            if chunk is not None:
                pending.append(bytes(chunk))
                held += len(chunk)
            while held >= block_size or (chunk is None and held):
                joined = b"".join(pending)
                body, tail = joined[:block_size], joined[block_size:]
                pending, held = ([tail] if tail else []), len(tail)
                total += len(body)
                stage(body)
        for future in in_flight:
            future.result()
    if before_commit is not None:
        before_commit(total)
    condition = {} if overwrite else {"match_condition": MatchConditions.IfMissing}
    response = azure_call(lambda: blob.commit_block_list([BlobBlock(block_id) for block_id in staged],
                                                         metadata=metadata, standard_blob_tier=tier,
                                                         **condition), where)
    if track is not None:
        track("ended", prefix)
    return _written(response, total)
