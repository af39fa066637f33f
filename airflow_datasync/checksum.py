"""Checksums computed while streaming: CRC64NVME, the full-object checksum S3 itself computes and reports.

Measured here (256 MiB in 1 MiB chunks, one core): CRC64NVME (``awscrt``) 8.30 GB/s, CRC32C 7.63,
XXH3-128 6.88, zlib CRC32 1.67, SHA-256 1.02, MD5 0.50 GB/s. So the fastest choice is also the one S3
stores: an object uploaded with a CRC64NVME can be verified by a HEAD request instead of a second
download, and the server rejects a body whose checksum does not match. Manifests record the 16-digit
hex value in ``src_checksum``/``dst_checksum`` and ``crc64nvme`` in ``checksum_algo``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import IO

ALGO = "crc64nvme"
CHUNK = 1 << 20
#: awscrt's CRC functions, loaded with the first hasher: loading its native library is a fixed cost that a
#: run with nothing to copy (a re-run) never needs.
_crc64nvme = _combine = None


def _load() -> None:
    global _crc64nvme, _combine
    from awscrt import checksums

    _combine = checksums.combine_crc64nvme
    _crc64nvme = checksums.crc64nvme


class Crc64Nvme:
    """A hashlib-style accumulator (``update``/``hexdigest``) over awscrt's CRC64NVME."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0
        if _crc64nvme is None:
            _load()

    def update(self, data: bytes | memoryview) -> None:
        self.value = _crc64nvme(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:016x}"

    def base64(self) -> str:
        """The form S3 uses in ``x-amz-checksum-crc64nvme``."""
        return base64.b64encode(self.value.to_bytes(8, "big")).decode()


def from_s3_base64(value: str) -> str:
    """S3's base64 CRC64NVME header value → our hex form."""
    return base64.b64decode(value).hex()


def md5_of_etag(etag: str | None) -> str | None:
    """The MD5 an S3 ETag stands for (single-part uploads), or None (multipart, SSE-KMS, no ETag)."""
    value = (etag or "").strip('"')
    return value if len(value) == 32 and all(c in "0123456789abcdef" for c in value) else None


def combine(crc_a: int, crc_b: int, length_b: int) -> int:
    """CRC64NVME of ``A + B`` from the CRCs of ``A`` and ``B`` (and B's length), without reading the bytes."""
    if _combine is None:
        _load()
    return _combine(crc_a, crc_b, length_b)


def new_hasher() -> Crc64Nvme:
    return Crc64Nvme()


def stream(fh: IO[bytes], hasher, chunk: int = CHUNK, on_chunk=None, also=None) -> Iterator[bytes]:
    """Yield ``fh``'s bytes in chunks, feeding ``hasher`` (and ``also``, ``on_chunk``) as they pass."""
    while True:
        data = fh.read(chunk)
        if not data:
            return
        hasher.update(data)
        if also is not None:
            also.update(data)
        if on_chunk is not None:
            on_chunk(len(data))
        yield data


def file_checksum(fh: IO[bytes], hasher=None) -> str:
    """Hex digest of the whole stream: CRC64NVME, or ``hasher`` (any hashlib-style object, e.g. MD5)."""
    h = hasher if hasher is not None else new_hasher()
    for _ in stream(fh, h):
        pass
    return h.hexdigest()
