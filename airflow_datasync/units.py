"""Numbers a person reads, in one way everywhere: bytes, rates, durations, counts and times.

The report text (report_text.py, the CLI, task logs) and the plugin's pages both write through these, so
a page and a log line say the same thing: decimal units (1 kB = 1,000 B) as the AWS DataSync console
shows bytes, one decimal above a kilobyte or a second, thousands grouped with commas. Every function takes
a known number; what an unknown value reads as ("—" in text, "–" on a page) is each caller's choice.
"""

from __future__ import annotations

import datetime as dt

_BYTE_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]


def byte_size(count: float) -> str:
    """``512 B``, ``1.5 kB``, ``104.2 MB``."""
    value, unit = float(count), 0
    # Compare the rounded value, so 999,960 B reads 1.0 MB, not 1,000.0 kB.
    while unit < len(_BYTE_UNITS) - 1 and abs(round(value, 1 if unit else 0)) >= 1000:
        value, unit = value / 1000, unit + 1
    return f"{int(value):,} B" if unit == 0 else f"{value:,.1f} {_BYTE_UNITS[unit]}"


def byte_rate(bytes_per_second: float) -> str:
    """``12.5 MB/s``."""
    return f"{byte_size(bytes_per_second)}/s"


def duration_ms(ms: float) -> str:
    """``850 ms``, ``1.2 s``, ``2 min 5 s``, ``1 h 2 min``, ``3 d 4 h`` (an ETA can be long)."""
    if round(ms) < 1000:
        return f"{round(ms):,} ms"
    return duration_seconds(ms / 1000)


def duration_seconds(seconds: float) -> str:
    """Like :func:`duration_ms`, from seconds (an ETA, a run's wall time); under a second as ``0.4 s``."""
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def number(count: float) -> str:
    """``1,234,567``."""
    return f"{int(count):,}"


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``counted(1, "entry", "entries")`` → ``"1 entry"``; ``counted(1200, "file")`` → ``"1,200 files"``."""
    return f"{number(count)} {singular if count == 1 else (plural or singular + 's')}"


def entries(count: int) -> str:
    """Entries are what a manifest lists: files, directories and symlinks."""
    return counted(count, "entry", "entries")


def timestamp(iso: str) -> str:
    """An ISO-8601 timestamp as ``2026-12-01 09:50:29 UTC``; a string that is not one comes back as it is."""
    try:
        when = dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")
