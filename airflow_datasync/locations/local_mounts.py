"""Which kind of file system holds a local location, and so how many copies to run on it at a time.

A file system on a local block device (ext4, XFS, Btrfs, tmpfs, an overlay of them) answers every call
in microseconds: the copy threads are interpreter-bound, and more of them than the cores only hand the
interpreter lock to and fro (a futex call and often a context switch each time). A network or FUSE mount
(NFS, EFS, FSx, SMB, Lustre) answers in round trips, which more copies in flight hide.
"""

from __future__ import annotations

import os

#: File systems of local block devices and memory: no round trips to hide.
DISK_FILE_SYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "tmpfs", "ramfs", "overlay", "zfs",
                               "vfat", "exfat", "ntfs3", "jfs", "reiserfs", "bcachefs"})
#: Copy threads on a mount that answers in round trips (and where the file system cannot be told).
MOUNT_THREADS = 8


def file_system_type(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the file system mounted where ``path`` lies (``ext4``, ``nfs4``, ``fuse.sshfs`` …), from
    the deepest mount point above it; None where the mount table cannot be read."""
    where = os.path.realpath(path)
    best, best_type = -1, None
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as fh:
            for line in fh:
                fields, _, rest = line.partition(" - ")
                parts = fields.split()
                if len(parts) < 5 or not rest:
                    continue
                mount_point = _unescape(parts[4])
                inside = where == mount_point or where.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= best:  # a later mount over the same point hides the earlier
                    best, best_type = len(mount_point), rest.split()[0]
    except OSError:
        return None
    return best_type


def copy_threads(path: str) -> int:
    """Copies at a time on the file system of ``path``: one per core this process may run on where the
    file system is a local disk's, else :data:`MOUNT_THREADS`."""
    if file_system_type(path) not in DISK_FILE_SYSTEMS:
        return MOUNT_THREADS
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(MOUNT_THREADS, cores))


def small_file_threads(path: str) -> int | None:
    """:attr:`Capabilities.small_file_concurrency` of a location at ``path``: one thread on a local disk's
    file system (each system call returns before a second thread could use the interpreter lock), None
    (as for other files) on a mount, whose round trips threads overlap."""
    return 1 if file_system_type(path) in DISK_FILE_SYSTEMS else None


def _unescape(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash are written as octal escapes (``\\040``)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
