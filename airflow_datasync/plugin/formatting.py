"""What the pages add to :mod:`airflow_datasync.units` (which the report text uses too, so a page and a log
line agree): "–" for a value not known yet, the share of a progress bar, and the Jinja filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_datasync import units

MISSING = "–"


def _unknown_as_missing(write: Callable[[Any], str]) -> Callable[[Any], str]:
    """A filter that answers "–" for None (a counter not known yet): a page never shows "None"."""
    def filter_(value: Any) -> str:
        return MISSING if value is None or value == "" else write(value)
    filter_.__doc__ = write.__doc__
    return filter_


human_bytes = _unknown_as_missing(units.byte_size)
human_rate = _unknown_as_missing(units.byte_rate)
human_duration_ms = _unknown_as_missing(units.duration_ms)
human_seconds = _unknown_as_missing(units.duration_seconds)
count = _unknown_as_missing(units.number)
timestamp = _unknown_as_missing(units.timestamp)


def percent(done: Any, total: Any) -> float:
    """Share done in 0..100 (100 when there is nothing to do)."""
    if not total:
        return 100.0
    return max(0.0, min(100.0, 100.0 * float(done or 0) / float(total)))


FILTERS = {
    "bytes": human_bytes,
    "rate": human_rate,
    "duration_ms": human_duration_ms,
    "seconds": human_seconds,
    "count": count,
    "timestamp": timestamp,
}
