"""Ranged writes to S3 (striped files): one multipart upload per file, created once; each range writer
uploads the parts its range owns (numbered from its offset, so writers never collide and a range written
again replaces its own parts); the final step completes the upload with the parts in order and the whole
object's CRC64NVME combined from the ranges' (S3's full-object checksum, checked by the server)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from airflow_datasync import checksum
from airflow_datasync.locations.base import (
    S3_TAGS,
    UPLOAD,
    Hole,
    Leftover,
    LocationError,
    Metadata,
    NotFoundError,
    Written,
)
from airflow_datasync.locations.ranges import (
    MAX_PARTS,
    MIN_PART_BYTES,
    RangedWrite,
    RangeWritten,
    crc_base64,
    missing_ranges,
    whole_crc,
)
from airflow_datasync.locations.s3.headers import meta_to_headers
from airflow_datasync.locations.s3.multipart import Multipart


class S3RangedWrites:
    """The ranged-write methods of :class:`~airflow_datasync.locations.s3.location.S3Location` (a mixin: it
    uses that class's keys, transport, part size and upload log)."""

    def open_range(self, path: str, offset: int, length: int):
        """One ranged GET: a striped file's range without reading what comes before it."""
        _head, body = self.transport.get(self.bucket, self.key(path), byte_range=(offset, offset + length - 1))
        return body

    def begin_ranged(self, path: str, size: int, stripe_bytes: int, meta: Metadata, *, tag: str) -> RangedWrite:
        ranges = -(-size // stripe_bytes)
        if ranges > MAX_PARTS:
            raise LocationError(f"{self.uri}: {path}: {ranges} ranges of {stripe_bytes} bytes exceed S3's "
                                f"{MAX_PARTS} parts; use a larger stripe_bytes")
        # Parts of the location's part size (at least S3's minimum) where the part count allows.
        per_range = max(1, min(stripe_bytes // max(self.part_size, MIN_PART_BYTES), MAX_PARTS // ranges))
        key = self._writable_key(path)
        writer = Leftover(UPLOAD, path, tag)
        self._log_upload("starting", writer)  # a kill before the id is recorded: the object is named
        api = self._multipart_api(key, meta_to_headers(meta), meta.extras.get(S3_TAGS))
        self._log_upload("started", dataclasses.replace(writer, upload_id=api.upload_id))
        return RangedWrite(path, size, stripe_bytes, tag, upload_id=api.upload_id, part_bytes=stripe_bytes // per_range,
                           parts_per_range=per_range)

    def write_range(self, ranged: RangedWrite, offset: int, chunks: Iterator[bytes | Hole], *,
                    durable: bool = False) -> RangeWritten:
        expected = min(ranged.stripe_bytes, ranged.size - offset)
        api = Multipart(self.transport, self.bucket, self.key(ranged.path), ranged.upload_id)
        layout = ranged.part_numbers(offset, expected)
        futures: list[Future] = []
        pending: list[bytes] = []
        held, total, index = 0, 0, 0
        with ThreadPoolExecutor(max_workers=self.part_concurrency, thread_name_prefix="s3range") as pool:
            def send_ready(final: bool) -> None:
                nonlocal pending, held, index
                while index < len(layout) and (held >= layout[index][2] or (final and held)):
                    number, _start, length = layout[index]
                    joined = b"".join(pending)
                    body, rest = joined[:length], joined[length:]
                    pending, held = ([rest] if rest else []), len(rest)
                    while sum(1 for f in futures if not f.done()) >= self.part_concurrency:  # bounded memory
                        next(f for f in futures if not f.done()).result()
                    futures.append(pool.submit(api.send, number, body))
                    index += 1

            for chunk in chunks:
                if isinstance(chunk, Hole):  # declared nowhere for S3; a hole would be zeros
                    chunk = bytes(chunk.size)
                pending.append(chunk)
                held += len(chunk)
                total += len(chunk)
                send_ready(False)
            send_ready(True)
            sent = [f.result() for f in futures]
        if total != expected or held:
            raise LocationError(f"{self.uri}: range at {offset} of {ranged.path}: {total} bytes read, {expected} "
                                "expected")
        crc = 0
        for _part, part_crc, n in sent:
            crc = checksum.combine(crc, part_crc, n)
        return RangeWritten(offset, total, crc, tuple(part for part, _crc, _n in sent))

    def commit_ranged(self, ranged: RangedWrite, ranges: Sequence[RangeWritten], meta: Metadata, *,
                      overwrite: bool = True) -> Written:
        if missing_ranges(ranged, ranges):
            raise LocationError(f"{self.uri}: {ranged.path}: not every range is uploaded")
        parts = sorted((part for r in ranges for part in r.parts), key=lambda p: p[0])
        crc = whole_crc(ranges)
        api = Multipart(self.transport, self.bucket, self.key(ranged.path), ranged.upload_id)
        etag = api.complete(list(parts), crc_base64(crc), not overwrite)
        self._log_upload("ended", Leftover(UPLOAD, ranged.path, ranged.tag, upload_id=ranged.upload_id))
        if etag and not etag.startswith('"'):
            etag = f'"{etag}"'
        return Written(ranged.size, etag, checksum=f"{crc:016x}")

    def abort_ranged(self, ranged: RangedWrite) -> None:
        if ranged.upload_id is None:
            return
        try:
            self.transport.abort_multipart(self.bucket, self.key(ranged.path), ranged.upload_id)
        except NotFoundError:
            pass  # completed or aborted already
        self._log_upload("ended", Leftover(UPLOAD, ranged.path, ranged.tag, upload_id=ranged.upload_id))
