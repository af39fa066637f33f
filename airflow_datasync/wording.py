"""Counts in messages (``1 entry``, ``3 entries``): they live in :mod:`airflow_datasync.units` with the other
numbers; importable from here for the modules written against this place."""

from __future__ import annotations

from airflow_datasync.units import counted, entries

__all__ = ["counted", "entries"]
