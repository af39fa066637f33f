"""A FUSE file system that passes every operation through to a backing directory after a fixed delay: a
stand-in for a network file system (NFS, SMB mounted by the kernel, EFS) with a round trip per operation,
since this machine has no kernel NFS or CIFS client.

    python bench/delayed_fs.py BACKING MOUNTPOINT --delay-ms 1 [--counts FILE]

Runs in the foreground, multithreaded (operations from concurrent callers overlap, as a network file
system's do), until unmounted (``fusermount3 -u MOUNTPOINT``). Metadata caching is the
kernel's FUSE default (attributes and names for 1 s), like an NFS client's attribute cache. With
``--counts`` it keeps ``{operation: count}`` as JSON in FILE (rewritten every quarter second while
operations arrive, and on exit), so a harness can count the operations a run cost. Needs libfuse 3 (Debian ``fuse3``)
and ``mfusepy`` from PyPI, which the Makefile's bench target installs into a venv of its own; it imports
nothing from the project.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import threading
import time

import mfusepy

#: stat fields the kernel is given, in nanoseconds for the times.
_STAT_FIELDS = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks", "st_ino", "st_dev",
                "st_atime_ns", "st_mtime_ns", "st_ctime_ns")


class DelayedPassthrough(mfusepy.Operations):
    """Each call sleeps ``delay`` seconds, then does the same call on the backing directory."""

    use_ns = True  # times as integer nanoseconds: a copy keeps mtimes exactly

    def __init__(self, backing: str, delay: float) -> None:
        self.backing = os.path.realpath(backing)
        self.delay = delay
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def _real(self, op: str | None, path: str) -> str:
        """The backing path of ``path``; with ``op``, one round trip of that operation first."""
        if op is not None:
            with self._lock:
                self.counts[op] += 1
            if self.delay:
                time.sleep(self.delay)
        return os.path.join(self.backing, path.lstrip("/"))

    # -- metadata ----------------------------------------------------------------------------------
    def getattr(self, path, fh=None):
        real = self._real("getattr", path)
        st = os.fstat(fh) if fh is not None else os.lstat(real)
        attrs = {name: getattr(st, name) for name in _STAT_FIELDS}
        return {name.removesuffix("_ns"): value for name, value in attrs.items()}

    def access(self, path, amode):
        if not os.access(self._real("access", path), amode):
            raise OSError(13, "Permission denied")

    def readdir(self, path, fh):
        return [".", "..", *os.listdir(self._real("readdir", path))]

    def readlink(self, path):
        return os.readlink(self._real("readlink", path))

    def statfs(self, path):
        st = os.statvfs(self._real("statfs", path))
        return {name: getattr(st, name) for name in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                                                     "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    def chmod(self, path, mode):
        os.chmod(self._real("chmod", path), mode)

    def chown(self, path, uid, gid):
        os.lchown(self._real("chown", path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self._real("utimens", path), ns=times, follow_symlinks=False)

    # -- namespace ---------------------------------------------------------------------------------
    def mkdir(self, path, mode):
        os.mkdir(self._real("mkdir", path), mode)

    def rmdir(self, path):
        os.rmdir(self._real("rmdir", path))

    def unlink(self, path):
        os.unlink(self._real("unlink", path))

    def symlink(self, target, source):
        os.symlink(source, self._real("symlink", target))

    def link(self, target, source):
        os.link(self._real("link", source), self._real(None, target))

    def rename(self, old, new):
        os.rename(self._real("rename", old), self._real(None, new))

    # -- data --------------------------------------------------------------------------------------
    def open(self, path, flags):
        return os.open(self._real("open", path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._real("create", path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path, size, offset, fh):
        self._real("read", path)
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        self._real("write", path)
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._real("truncate", path), length)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        self._real("fsync", path)
        (os.fdatasync if datasync else os.fsync)(fh)

    def release(self, path, fh):
        os.close(fh)


def _dump_counts(ops: DelayedPassthrough, path: str) -> None:
    """Rewrite ``path`` with the counts whenever they changed (atomically: a reader never sees half)."""
    last = None
    while True:
        time.sleep(0.25)
        with ops._lock:
            now = dict(ops.counts)
        if now != last:
            with open(path + ".tmp", "w") as fh:
                json.dump(now, fh)
            os.replace(path + ".tmp", path)
            last = now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backing")
    parser.add_argument("mountpoint")
    parser.add_argument("--delay-ms", type=float, default=1.0, help="added before every operation")
    parser.add_argument("--counts", help="keep the operation counts here (JSON)")
    parser.add_argument("--threads", type=int, default=64,
                        help="libfuse's max_threads: operations served at once")
    args = parser.parse_args(argv)
    ops = DelayedPassthrough(args.backing, args.delay_ms / 1000)
    if args.counts:
        threading.Thread(target=_dump_counts, args=(ops, args.counts), daemon=True).start()
    try:
        mfusepy.FUSE(ops, args.mountpoint, foreground=True, nothreads=False, fsname="delayedfs",
                     max_threads=args.threads)
    finally:
        if args.counts:
            with open(args.counts + ".tmp", "w") as fh:
                json.dump(dict(ops.counts), fh)
            os.replace(args.counts + ".tmp", args.counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
