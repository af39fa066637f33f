"""Temporaries of killed copies on an SMB share: found in the directories a retried shard writes to, and
removed only when no live writer holds them.

A writer keeps its temporary open, from creation to rename, with no sharing at all (``share_access=""``
in :func:`.protocol.create_exclusive`), so while it lives every other open of the file fails with
STATUS_SHARING_VIOLATION: a cleaner's delete then fails and the temporary is kept. When the writer's
process dies its connection closes and the server closes the handle, so the delete succeeds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from airflow_datasync.errors import TransientError
from airflow_datasync.locations.base import (
    FILE,
    SYMLINK,
    TEMP_PREFIX,
    TEMPORARY,
    Cleanup,
    Leftover,
    LocationError,
    safe_relpath,
)
from airflow_datasync.locations.smb.protocol import ATTR_DIRECTORY, list_directory

if TYPE_CHECKING:
    from airflow_datasync.locations.smb.location import SmbLocation


def own_temporaries(loc: SmbLocation, dirs: Iterable[str], tag: str) -> list[Leftover]:
    """The temporaries named for writer ``tag`` in ``dirs``: one directory listing each."""
    prefix = f"{TEMP_PREFIX}{tag}-"
    found = []
    for rel_dir in sorted(set(dirs)):
        if rel_dir:
            safe_relpath(rel_dir)
        try:
            entries = loc._call(lambda d=rel_dir: list_directory(loc._unc(d), loc._kw()), rel_dir)
        except LocationError:
            continue  # not there (nothing was written into it), or unreadable: nothing of ours to find
        for raw_name, attrs, size, *_times in entries:
            name = raw_name.decode("utf-16-le", "surrogatepass")
            if name.startswith(prefix) and not attrs & ATTR_DIRECTORY:
                found.append(Leftover(TEMPORARY, f"{rel_dir}/{name}" if rel_dir else name, tag, size))
    return found


def remove_temporaries(loc: SmbLocation, leftovers: Iterable[Leftover], *, writers_gone: bool) -> Cleanup:
    """Delete each temporary that no writer holds open; a sharing violation means a live one: kept."""
    done = Cleanup()
    for leftover in leftovers:
        name = leftover.path.rsplit("/", 1)[-1]
        if leftover.kind != TEMPORARY or not name.startswith(TEMP_PREFIX):
            continue
        try:
            found = loc.stat(leftover.path)
            if found is None or not (found.type == FILE or (found.type == SYMLINK and writers_gone)):
                continue  # gone, or a directory: never removed
            loc._remove(leftover.path, is_dir=False)  # a reparse point is removed itself, never its target
        except TransientError:
            done.in_use += 1  # STATUS_SHARING_VIOLATION: its writer still has it open
            continue
        except LocationError:
            continue  # not ours to remove (permissions): the next execution looks again
        done.removed += 1
        done.bytes += found.size
    return done
