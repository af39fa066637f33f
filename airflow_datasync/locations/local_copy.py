"""The local backend's copy of one file from an open local file: the fewest system calls and no Python
object per chunk, because on a local disk those, not the bytes, are most of a small file's cost.

A source file is opened first and ``fstat``'ed (one call where a stat, an open and an fstat were three), and
that stat is kept with it (:class:`SourceFile`) so that the sparse check needs no other. Its bytes go to the
temporary through one buffer per thread (``readinto``: no allocation, no page faults of a fresh buffer per
chunk); a file whose size the copy knows is read to that size, without the empty read that finds its end
(a file that grew meanwhile fails the after-stat check). Between two files of one file system the bytes move
inside the kernel (``copy_file_range``: reflinks on XFS and Btrfs, a server-side copy on NFS 4.2) and the
checksum is taken from the source's pages as they are copied.
"""

from __future__ import annotations

import errno
import io
import os
import stat as st
from collections.abc import Callable

from airflow_datasync import checksum

#: Files from this size up move with ``copy_file_range`` when both sides share a file system; below it
#: the in-kernel copy saves nothing (one chunk either way).
KERNEL_COPY_MIN = 4 << 20
#: Errors that say ``copy_file_range`` cannot serve this pair of files (another file system, an old kernel,
#: a file system without it): the copy falls back to reads and writes.
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF, errno.ETXTBSY}


class SourceFile(io.FileIO):
    """A source file opened for a copy, with the ``fstat`` taken when it was opened."""

    stat: os.stat_result


def open_source(full: str) -> SourceFile | os.stat_result | None:
    """Open ``full`` to copy it: the open file when it is a regular file; else its ``lstat`` (a symlink,
    directory, FIFO or device in its place since it was listed: the caller reports the changed type), or
    None if it is gone. Non-blocking and not following a symlink, so that a FIFO does not wait for a
    writer and a link is never read through."""
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EOPNOTSUPP):  # a symlink, a socket: not a file
            raise
        try:
            return os.lstat(full)
        except FileNotFoundError:
            return None
    try:
        s = os.fstat(fd)
        if not st.S_ISREG(s.st_mode):
            os.close(fd)
            return s
        os.set_blocking(fd, True)  # a regular file's reads ignore O_NONBLOCK, but a FUSE daemon sees the flag
        fh = SourceFile(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise
    fh.stat = s
    return fh


def copy_into(src: io.FileIO, fd: int, size: int | None, hasher, *, also=None,
              on_chunk: Callable[[int], None] | None = None,
              on_progress: Callable[[int, int], None] | None = None) -> int:
    """Copy ``src`` from its current offset into the open file ``fd``, feeding every byte to ``hasher`` (and
    ``also``); ``size`` bytes if known (else to the end). ``on_chunk(n)`` counts each chunk (progress and
    rate limit), ``on_progress(done, fd)`` lets the caller start writeback. Returns the bytes copied."""
    if size is not None and size >= KERNEL_COPY_MIN and _same_file_system(src, fd):
        copied = _kernel_copy(src, fd, size, hasher, also, on_chunk, on_progress)
        if copied is not None:
            return copied
    view = checksum.thread_buffer()
    chunk = len(view)
    src_fd = src.fileno()
    done = 0
    while size is None or done < size:
        n = os.readv(src_fd, [view if size is None or size - done >= chunk else view[:size - done]])
        if not n:
            break
        data = view[:n] if n < chunk else view
        hasher.update(data)
        if also is not None:
            also.update(data)
        while data:
            w = os.write(fd, data)
            data = data[w:]
        done += n
        if on_chunk is not None:
            on_chunk(n)
        if on_progress is not None:
            on_progress(done, fd)
    return done


def _same_file_system(src: io.FileIO, fd: int) -> bool:
    dev = src.stat.st_dev if isinstance(src, SourceFile) else os.fstat(src.fileno()).st_dev
    return dev == os.fstat(fd).st_dev


def _kernel_copy(src: io.FileIO, fd: int, size: int, hasher, also, on_chunk, on_progress) -> int | None:
    """``size`` bytes by ``copy_file_range``, a chunk at a time, each chunk then read back from the source's
    page cache into the checksums; None where the kernel refuses this pair before any byte moved."""
    view = checksum.thread_buffer()
    chunk = len(view)
    src_fd = src.fileno()
    start = os.lseek(src_fd, 0, os.SEEK_CUR)
    done = 0
    while done < size:
        want = min(chunk, size - done)
        try:
            n = os.copy_file_range(src_fd, fd, want, start + done, done)
        except OSError as exc:
            if done == 0 and exc.errno in _NO_KERNEL_COPY:
                return None
            raise
        if not n:  # the source ended early: the size check after the copy reports it
            break
        # The checksum covers the bytes just copied, read from the source's cache (the after-stat check
        # refuses a source that changed meanwhile, VERIFYING a destination that differs from it).
        got = os.preadv(src_fd, [view[:n]], start + done)
        hasher.update(view[:got])
        if also is not None:
            also.update(view[:got])
        if got != n:  # the source shrank under the copy: the size check after it reports the change
            done += got
            break
        done += n
        if on_chunk is not None:
            on_chunk(n)
        if on_progress is not None:
            on_progress(done, fd)
    os.lseek(fd, done, os.SEEK_SET)  # the offsets copy_file_range was given did not move the file's own
    return done
