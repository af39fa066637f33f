"""Counts in messages: ``1 entry``, ``3 entries`` (never "1 entries"), in one place so every message agrees."""

from __future__ import annotations


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``counted(1, "entry", "entries")`` → ``"1 entry"``; ``counted(1200, "file")`` → ``"1,200 files"``."""
    return f"{count:,} {singular if count == 1 else (plural or singular + 's')}"


def entries(count: int) -> str:
    """Entries are what a manifest lists: files, directories and symlinks."""
    return counted(count, "entry", "entries")
