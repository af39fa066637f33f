"""Sparse files between file systems: holes stay holes, every byte is still hashed and verified."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from airflow_datasync import checksum
from airflow_datasync.engine import run_execution
from airflow_datasync.locations.base import Hole, SparseLayout
from airflow_datasync.locations.local import LocalLocation, sparse_layout

MiB = 1 << 20


def make_sparse(path, size: int, data_at: list[int], length: int = MiB) -> None:
    """A file of ``size`` bytes whose only data is ``length`` non-zero bytes at each offset of ``data_at``."""
    with open(path, "wb") as fh:
        for i, offset in enumerate(data_at):
            fh.seek(offset)
            fh.write(bytes([i + 1]) * (length // 2) + os.urandom(length - length // 2))
        fh.truncate(size)


def allocated(path) -> int:
    return os.stat(path).st_blocks * 512


def digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


@pytest.fixture
def sparse_tree(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_sparse(src / "sparse.img", 32 * MiB, [0, 31 * MiB])          # data, a 30 MiB hole, data
    make_sparse(src / "tail-hole.img", 16 * MiB, [0])                  # the hole runs to the end
    make_sparse(src / "all-hole.img", 8 * MiB, [])                     # no data at all
    (src / "dense-zeros.bin").write_bytes(bytes(4 * MiB))              # written zeros are data, not holes
    (src / "dense.bin").write_bytes(os.urandom(3 * MiB + 17))
    if sparse_layout(os.open(src / "sparse.img", os.O_RDONLY)) is None:
        pytest.skip("this file system keeps no holes")
    return src


def test_sparse_files_stay_sparse_and_verify(tmp_path, sparse_tree, store):
    dst = tmp_path / "dst"
    summary = run_execution(str(sparse_tree), str(dst), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary["ErrorDetail"]
    names = sorted(os.listdir(sparse_tree))
    assert sorted(os.listdir(dst)) == names and summary["FilesVerified"] == len(names)
    for name in names:
        assert os.path.getsize(dst / name) == os.path.getsize(sparse_tree / name)
        assert digest(dst / name) == digest(sparse_tree / name), name
    # Holes stay holes: as many blocks as the source, give or take a block per extent (file systems may
    # round an extent up); a 32 MiB file with 2 MiB of data must not take 32 MiB.
    for name in ("sparse.img", "tail-hole.img", "all-hole.img"):
        assert allocated(dst / name) <= allocated(sparse_tree / name) + 2 * 64 * 1024, name
    assert allocated(dst / "all-hole.img") == 0
    # Written zeros and ordinary data stay allocated (no zero detection on a file without holes).
    assert allocated(dst / "dense-zeros.bin") >= 4 * MiB
    # Counters count logical bytes: a hole is bytes written (DataSync's BytesWritten), though none moved.
    logical = sum(os.path.getsize(sparse_tree / n) for n in names)
    assert summary["BytesWritten"] == logical
    progress = [json.loads(p.read_text()) for p in (store / "datasync").rglob("progress/shard-*.json")]
    assert progress and sum(p["bytes_done"] for p in progress) == logical == sum(p["bytes_total"] for p in progress)
    # A re-run finds everything in place.
    again = run_execution(str(sparse_tree), str(dst), store=str(store))
    assert again["Status"] == "SUCCESS" and again["FilesTransferred"] == 0


def test_rate_limit_counts_data_not_holes(tmp_path, store, monkeypatch):
    """BytesPerSecond throttles bytes that move: the limiter is charged for a sparse file's data only (a
    limiter charged for its hole would hold a 64 MiB file with 256 KiB of data for a minute at 1 MiB/s)."""
    from airflow_datasync.phases import transfer
    from airflow_datasync.progress import RateLimiter

    charged: list[int] = []

    class Recording(RateLimiter):
        def acquire(self, nbytes: int) -> None:
            charged.append(nbytes)
            super().acquire(nbytes)

    monkeypatch.setattr(transfer, "RateLimiter", Recording)
    src = tmp_path / "src"
    src.mkdir()
    make_sparse(src / "big-hole.img", 64 * MiB, [0], length=256 * 1024)
    summary = run_execution(str(src), str(tmp_path / "dst"), {"BytesPerSecond": MiB}, store=str(store))
    assert summary["Status"] == "SUCCESS" and summary["BytesWritten"] == 64 * MiB
    assert sum(charged) == 256 * 1024


def test_layout_of_sparse_and_dense_files(tmp_path):
    make_sparse(tmp_path / "s", 8 * MiB, [2 * MiB])
    (tmp_path / "d").write_bytes(b"x" * MiB)
    fd = os.open(tmp_path / "s", os.O_RDONLY)
    try:
        layout = sparse_layout(fd)
        if layout is None:
            pytest.skip("this file system keeps no holes")
        assert layout.size == 8 * MiB and layout.data[0][0] <= 2 * MiB and layout.data[-1][1] >= 3 * MiB
        assert layout.allocated < 8 * MiB and os.lseek(fd, 0, os.SEEK_CUR) == 0
    finally:
        os.close(fd)
    fd = os.open(tmp_path / "d", os.O_RDONLY)
    try:
        assert sparse_layout(fd) is None
    finally:
        os.close(fd)


@pytest.mark.parametrize("n", [0, 1, checksum.CHUNK - 1, checksum.CHUNK, 3 * checksum.CHUNK + 5])
def test_zeros_hash_as_zeros(n):
    """A hole hashes as the zeros it reads as, by combination (CRC64NVME) or from the shared zero block."""
    h = checksum.new_hasher()
    h.update(b"head")
    h.update_zeros(n)
    h.update(b"tail")
    ref = checksum.new_hasher()
    ref.update(b"head" + bytes(n) + b"tail")
    assert h.hexdigest() == ref.hexdigest()
    md5 = hashlib.md5(usedforsecurity=False)
    checksum.feed_zeros(md5, n)
    assert md5.hexdigest() == hashlib.md5(bytes(n), usedforsecurity=False).hexdigest()


def test_sparse_stream_yields_holes_and_hashes_every_byte(tmp_path):
    data = os.urandom(1000)
    path = tmp_path / "f"
    with open(path, "wb") as fh:
        fh.seek(5000)
        fh.write(data)
        fh.truncate(9000)
    layout = SparseLayout(9000, ((5000, 6000),))
    h, moved, skipped = checksum.new_hasher(), [], []
    with open(path, "rb", buffering=0) as fh:
        chunks = list(checksum.sparse_stream(fh, layout, h, chunk=2048, on_chunk=moved.append, on_hole=skipped.append))
    assert [c.size for c in chunks if isinstance(c, Hole)] == [2048, 2048, 904, 2048, 952]
    assert b"".join(c for c in chunks if isinstance(c, bytes)) == data
    assert sum(moved) == 1000 and sum(skipped) == 8000
    with open(path, "rb") as fh:
        assert h.hexdigest() == checksum.file_checksum(fh)


def test_local_write_seeks_over_holes(tmp_path):
    loc = LocalLocation(str(tmp_path))
    from airflow_datasync.locations.base import Metadata

    written = loc.write("x", iter([Hole(3 * MiB), b"abc", Hole(MiB)]), Metadata(), tag="t")
    assert written.size == 4 * MiB + 3 and os.path.getsize(tmp_path / "x") == 4 * MiB + 3
    with open(tmp_path / "x", "rb") as fh:
        fh.seek(3 * MiB)
        assert fh.read(4) == b"abc\0"
    assert allocated(tmp_path / "x") < MiB
