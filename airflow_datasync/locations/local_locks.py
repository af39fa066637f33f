"""The ``flock`` every writer of a local temporary holds while it writes, so a cleaner (which removes only
temporaries it can lock) never takes one in use; on a mount without locks (NFS "nolock") it is skipped and
the file is written unlocked (docs/reliability.md)."""

from __future__ import annotations

import errno
import fcntl


def lock_if_supported(fd: int, operation: int) -> bool:
    """``flock(fd, operation)``; False where the file system has no locks, any other error raised."""
    try:
        fcntl.flock(fd, operation)
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
            raise
        return False
    return True
