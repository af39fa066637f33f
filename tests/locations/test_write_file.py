"""``Location.write_file``: the copy of an open local file, on every backend (the default streams chunks
through :meth:`Location.write`; the local backend copies with ``readinto`` or inside the kernel), and what
the local backend's own open for a copy sees when the entry changed since it was listed."""

from __future__ import annotations

import io
import os

import pytest

from airflow_datasync import checksum
from airflow_datasync.locations import local_copy
from airflow_datasync.locations.base import DIR, FILE, SYMLINK, TEMP_PREFIX, Location, Metadata
from airflow_datasync.locations.local import LocalLocation


class Veto(Exception):
    pass


def _source(tmp_path, size: int, name: str = "src.bin") -> tuple[str, bytes]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return str(path), data


def _read(loc: Location, path: str) -> bytes:
    with loc.open_read(path) as fh:
        return fh.read()


def _temporaries(loc: Location) -> list[str]:
    return [e.path for e in loc._seen_leftovers or []]


@pytest.mark.parametrize("size", [0, 4096, 3 * checksum.CHUNK + 17])
def test_write_file_copies_the_bytes_and_feeds_the_checksum(location, tmp_path, size):
    src, data = _source(tmp_path, size)
    hasher, counted = checksum.new_hasher(), []
    with io.FileIO(src) as fh:
        written = location.write_file("dir/copy.bin", fh, Metadata(), tag="wf", hasher=hasher, on_chunk=counted.append,
                                      size=size)
    assert written.size == size and sum(counted) == size
    assert _read(location, "dir/copy.bin") == data
    with io.FileIO(src) as fh:
        assert hasher.hexdigest() == checksum.file_checksum(fh)
    list(location.scan())
    assert _temporaries(location) == []


def test_a_vetoed_write_file_leaves_nothing(location, tmp_path):
    src, _ = _source(tmp_path, 10_000)

    def veto(written: int) -> None:
        raise Veto(written)

    with io.FileIO(src) as fh, pytest.raises(Veto):
        location.write_file("vetoed.bin", fh, Metadata(), tag="wf", hasher=checksum.new_hasher(), before_commit=veto)
    assert location.stat("vetoed.bin") is None
    list(location.scan())
    assert _temporaries(location) == []


def test_a_known_size_is_read_to_that_size_and_the_check_sees_it(tmp_path):
    """A local source grown since its stat is copied only up to the size the copy knows: the count handed to
    ``before_commit`` is that size, and the engine's after-stat (a different size) refuses to publish."""
    src, data = _source(tmp_path, 9000)
    dst = LocalLocation(str(tmp_path / "out"))
    dst.check(writable=True)
    seen = []
    with io.FileIO(src) as fh:
        dst.write_file("f", fh, Metadata(), tag="wf", hasher=checksum.new_hasher(), size=4096, before_commit=seen.append)
    assert seen == [4096] and _read(dst, "f") == data[:4096]


def test_big_files_move_inside_the_kernel_on_one_file_system(tmp_path, monkeypatch):
    calls = []
    real = os.copy_file_range
    monkeypatch.setattr(os, "copy_file_range", lambda *a: calls.append(a[2]) or real(*a))  # counts, then copies
    size = local_copy.KERNEL_COPY_MIN + 12_345
    src, data = _source(tmp_path, size)
    dst = LocalLocation(str(tmp_path / "out"))
    dst.check(writable=True)
    hasher = checksum.new_hasher()
    with LocalLocation(str(tmp_path)).open_for_copy("src.bin").fh as fh:
        dst.write_file("big", fh, Metadata(mtime_ns=1_600_000_000_000_000_000), tag="wf", hasher=hasher, size=size)
    assert sum(calls) == size and len(calls) == -(-size // checksum.CHUNK)
    assert _read(dst, "big") == data and os.stat(tmp_path / "out" / "big").st_mtime_ns == 1_600_000_000_000_000_000
    assert hasher.hexdigest() == checksum.file_checksum(io.BytesIO(data))


def test_another_file_system_falls_back_to_reads_and_writes(tmp_path):
    """/dev/shm (tmpfs) to the test's disk: copy_file_range refuses the pair (EXDEV), the copy still succeeds."""
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system at /dev/shm")
    size = local_copy.KERNEL_COPY_MIN + 1
    data = os.urandom(size)
    src = os.path.join(os.path.realpath("/dev/shm"), f"wf-{os.getpid()}.bin")
    with open(src, "wb") as out:
        out.write(data)
    try:
        dst = LocalLocation(str(tmp_path / "out"))
        dst.check(writable=True)
        hasher = checksum.new_hasher()
        with io.FileIO(src) as fh:
            assert dst.write_file("x", fh, Metadata(), tag="wf", hasher=hasher, size=size).size == size
        assert _read(dst, "x") == data and hasher.hexdigest() == checksum.file_checksum(io.BytesIO(data))
    finally:
        os.unlink(src)


def test_open_for_copy_reports_an_entry_that_is_no_file_any_more_without_reading_it(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (root / "f").write_bytes(b"x" * 10)
    os.mkfifo(root / "fifo")  # a FIFO opened for reading would wait for a writer
    os.symlink("f", root / "link")
    (root / "dir").mkdir()
    loc = LocalLocation(str(root))
    opened = loc.open_for_copy("f")
    with opened.fh as fh:
        assert opened.before.type == FILE and opened.before.size == 10 and fh.read() == b"x" * 10
    assert opened.after().size == 10
    for name, kind in (("fifo", "other"), ("link", SYMLINK), ("dir", DIR)):
        opened = loc.open_for_copy(name)
        assert opened.fh is None and opened.before.type == kind, name
    gone = loc.open_for_copy("missing")
    assert gone.before is None and gone.fh is None
    assert not any(n.startswith(TEMP_PREFIX) for n in os.listdir(root))
