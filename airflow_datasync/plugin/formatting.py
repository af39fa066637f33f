"""How the pages write numbers a person reads: bytes and rates in units, durations, counts and times.

Bytes use decimal units (1 MB = 1,000,000 bytes), as the AWS DataSync console and most file browsers do.
Every function accepts None (a counter not known yet) and answers "–" for it: a page never shows "None".
"""

from __future__ import annotations

import datetime as dt
from typing import Any

MISSING = "–"
_BYTE_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]


def human_bytes(value: Any) -> str:
    """``104.2 MB``; plain ``512 B`` under a kilobyte."""
    if value is None:
        return MISSING
    size = float(value)
    if abs(size) < 1000:
        return f"{int(size)} B"
    for unit in _BYTE_UNITS[1:]:
        size /= 1000
        if abs(size) < 1000 or unit == _BYTE_UNITS[-1]:
            return f"{size:.1f} {unit}"
    return MISSING  # not reached


def human_rate(bytes_per_second: Any) -> str:
    if bytes_per_second is None:
        return MISSING
    return f"{human_bytes(bytes_per_second)}/s"


def human_duration_ms(value: Any) -> str:
    """``12 ms``, ``1.2 s``, ``3 min 04 s``, ``2 h 05 min``."""
    if value is None:
        return MISSING
    ms = float(value)
    if ms < 1000:
        return f"{int(round(ms))} ms"
    return human_seconds(ms / 1000)


def human_seconds(value: Any) -> str:
    if value is None:
        return MISSING
    seconds = float(value)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def count(value: Any) -> str:
    """``1,234,567``."""
    if value is None:
        return MISSING
    return f"{int(value):,}"


def percent(done: Any, total: Any) -> float:
    """Share done in 0..100 (100 when there is nothing to do)."""
    if not total:
        return 100.0
    return max(0.0, min(100.0, 100.0 * float(done or 0) / float(total)))


def timestamp(value: Any) -> str:
    """``2026-12-01 09:54:41 UTC`` from an ISO 8601 string."""
    if not value:
        return MISSING
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


FILTERS = {
    "bytes": human_bytes,
    "rate": human_rate,
    "duration_ms": human_duration_ms,
    "seconds": human_seconds,
    "count": count,
    "timestamp": timestamp,
}
