"""A read-only source that generates its tree instead of storing it: ``synthetic://<files>?dirs=<n>&size=<bytes>``.

For the scale benchmarks and tests only (issue 15: PREPARING of 10,000,000 entries without 10 million
files on a disk). It is not a location users get: importing this module registers the ``synthetic``
scheme in the process that imports it (the bench's child process, a test), and nothing in the package
imports it.

The tree is a pure function of the URI: ``dirs`` directories ``d00000`` … each holding an equal share of
the ``files`` files ``d00000/f000000000`` …, listed directory by directory, each directory before its
files. A file's size, mtime and bytes come from its index, so a stat or a read agrees with the listing,
and two listings of one URI are identical. Listing costs no I/O: each batch is built from ranges of
integers, so memory is one batch whatever the count.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import IO
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyarrow as pa

from airflow_datasync.errors import LocationError
from airflow_datasync.locations import BACKENDS
from airflow_datasync.locations.base import (
    DIR,
    FILE,
    Capabilities,
    Location,
    ScanHints,
    StatResult,
    Written,
    listing_batch,
    safe_relpath,
)

SCHEME = "synthetic"
#: Every entry's mtime is this plus a millisecond per file index (directories: the base itself).
BASE_MTIME_NS = 1_700_000_000 * 10**9
FILE_MODE, DIR_MODE = 0o100644, 0o040755
_FILE_PATH = re.compile(r"^d(\d{5})/f(\d{9})$")
_DIR_PATH = re.compile(r"^d(\d{5})$")


def register() -> None:
    """Make ``synthetic://`` URIs open this backend in this process (idempotent)."""
    BACKENDS.setdefault(SCHEME, f"{__name__}:SyntheticLocation")


class SyntheticLocation(Location):
    """A generated, read-only tree (see the module's docstring)."""

    scheme = SCHEME
    # No POSIX owners: nothing per entry to map or compare but size and mtime.
    capabilities = Capabilities(posix_metadata=False, keeps_ownership=False, concurrency=4)

    def __init__(self, uri: str, conn_id: str | None = None) -> None:
        super().__init__(uri, conn_id)
        parts = urlsplit(uri)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"dirs", "size"}
        try:
            if unknown or parts.path not in ("", "/"):
                raise ValueError(f"unknown parts {sorted(unknown) or parts.path!r}")
            self.files = int(parts.netloc)
            self.dirs = int(query.get("dirs", 1000))
            #: Mean file size; sizes spread evenly over 0 … 2 × size.
            self.size = int(query.get("size", 4096))
        except ValueError as exc:
            raise LocationError(f"{uri}: expected synthetic://<files>?dirs=<n>&size=<bytes> ({exc})") from None
        if self.files < 0 or not 1 <= self.dirs <= 99_999 or self.size < 0 or self.files > 999_999_999:
            raise LocationError(f"{uri}: files 0…999,999,999, dirs 1…99,999 and size ≥ 0")
        self.per_dir = -(-self.files // self.dirs) if self.files else 0

    # -- the tree as functions of a file's index ----------------------------------------------------
    def _sizes(self, index: np.ndarray) -> np.ndarray:
        return (index * 2_654_435_761) % (2 * self.size + 1)

    def _mtimes(self, index: np.ndarray) -> np.ndarray:
        return BASE_MTIME_NS + index * 1_000_000

    def _dir_of(self, index: int) -> int:
        return index // self.per_dir

    # -- the location contract ----------------------------------------------------------------------
    def check(self, *, writable: bool, dry_run: bool = False) -> bool:
        if writable:
            raise LocationError(f"{self.uri}: a synthetic tree is a read-only source")
        return True

    def scan(self, batch_size: int = 10_000, hints: ScanHints | None = None,
             needs_metadata: Callable[[str, int], bool] | None = None) -> Iterator[pa.RecordBatch]:
        for d in range(self.dirs):
            first, end = d * self.per_dir, min((d + 1) * self.per_dir, self.files)
            if first >= end:
                break
            yield listing_batch({"path": [f"d{d:05d}"], "type": [DIR], "size": [0], "mtime_ns": [BASE_MTIME_NS],
                                 "mode": [DIR_MODE]})
            for start in range(first, end, batch_size):
                index = np.arange(start, min(start + batch_size, end), dtype=np.int64)
                n = len(index)
                yield listing_batch({
                    "path": [f"d{d:05d}/f{i:09d}" for i in range(start, start + n)],
                    "type": [FILE] * n,
                    "size": self._sizes(index), "mtime_ns": self._mtimes(index),
                    "mode": np.full(n, FILE_MODE, dtype=np.int32),
                })

    def _parse(self, path: str) -> tuple[str, int] | None:
        """``(type, index)`` of an entry of the tree (a directory's index is its number), None otherwise."""
        safe_relpath(path)
        found = _FILE_PATH.match(path)
        if found:
            d, i = int(found.group(1)), int(found.group(2))
            return (FILE, i) if i < self.files and self._dir_of(i) == d else None
        found = _DIR_PATH.match(path)
        if found:
            d = int(found.group(1))
            return (DIR, d) if d * self.per_dir < self.files else None
        return None

    def stat(self, path: str) -> StatResult | None:
        entry = self._parse(path)
        if entry is None:
            return None
        kind, index = entry
        if kind == DIR:
            return StatResult(DIR, 0, BASE_MTIME_NS, mode=DIR_MODE)
        i = np.array([index], dtype=np.int64)
        return StatResult(FILE, int(self._sizes(i)[0]), int(self._mtimes(i)[0]), mode=FILE_MODE)

    def open_read(self, path: str) -> IO[bytes]:
        entry = self._parse(path)
        if entry is None or entry[0] != FILE:
            raise LocationError(f"{self.uri}: no file {path!r} in this synthetic tree")
        size = int(self._sizes(np.array([entry[1]], dtype=np.int64))[0])
        pattern = (path + "\n").encode()
        return io.BytesIO((pattern * (size // len(pattern) + 1))[:size])

    def _read_only(self, *_args, **_kwargs) -> Written:
        raise LocationError(f"{self.uri}: a synthetic tree is a read-only source")

    write = symlink = mkdir = set_metadata = delete = _read_only  # type: ignore[assignment]


register()
