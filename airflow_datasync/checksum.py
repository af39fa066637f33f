"""Checksums computed while streaming.

XXH3-128 (``xxhash``) measured 6.9 GB/s on one core here, against 1.0 GB/s for SHA-256, 0.5 GB/s for
MD5 and 1.7 GB/s for zlib's CRC32 (256 MiB in 1 MiB chunks, see docs/concepts.md): hashing never
limits a copy. Manifests record the hex digest in ``src_checksum``/``dst_checksum`` and the algorithm
in ``checksum_algo``.
"""

from __future__ import annotations

from typing import IO, Iterator

import xxhash

ALGO = "xxh3-128"
CHUNK = 1 << 20


def new_hasher():
    return xxhash.xxh3_128()


def stream(fh: IO[bytes], hasher, chunk: int = CHUNK, on_chunk=None) -> Iterator[bytes]:
    """Yield ``fh``'s bytes in chunks, feeding ``hasher`` (and ``on_chunk``) as they pass."""
    while True:
        data = fh.read(chunk)
        if not data:
            return
        hasher.update(data)
        if on_chunk is not None:
            on_chunk(len(data))
        yield data


def file_checksum(fh: IO[bytes]) -> str:
    h = new_hasher()
    for _ in stream(fh, h):
        pass
    return h.hexdigest()
