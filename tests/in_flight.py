"""How far a copy into a local folder has got, seen from outside the engine: what fault tests wait for
before they strike."""

from __future__ import annotations

import os
from pathlib import Path

from airflow_datasync.locations.base import TEMP_PREFIX


def unnamed_in_flight(disk: Path, pids: str = "[0-9]*") -> int:
    """Bytes of the largest file without a name (O_TMPFILE) open in a folder of ``disk``, in the processes
    ``pids`` names (a glob over /proc: every process by default, ``str(os.getpid())`` for this one): what a
    local copy is writing before it links the file at its name."""
    sizes = []
    for fd_dir in Path("/proc").glob(f"{pids}/fd"):
        try:
            links = list(fd_dir.iterdir())
        except OSError:
            continue
        for link in links:
            try:
                target = os.readlink(link)
                if target.startswith(f"{disk}/") and target.endswith(" (deleted)") and "/#" in target:
                    sizes.append(os.stat(link).st_size)
            except OSError:
                continue
    return max(sizes, default=0)


def being_written(disk: Path, pids: str = "[0-9]*") -> int:
    """Bytes of the largest file being written in ``disk`` (its top folder): a named temporary, or a file
    without a name that one of ``pids`` holds open."""
    sizes = []
    for tmp in disk.glob(f"{TEMP_PREFIX}*"):
        try:
            sizes.append(tmp.stat().st_size)
        except FileNotFoundError:
            pass
    return max([*sizes, unnamed_in_flight(disk, pids)])
