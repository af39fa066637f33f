"""DataSync filter patterns (Includes/Excludes), evaluated on whole Arrow columns.

DataSync syntax: several patterns joined by ``|``; ``*`` is a wildcard. A pattern that starts with ``/``
is anchored at the location root and matches that entry *and everything below it* (``/logs`` matches
``logs``, ``logs/a.txt``, ``logs/2026/b.txt``). A pattern without ``/`` (``*.tmp``) matches an entry whose
name matches, at any depth, and everything below it. Patterns are translated once into one RE2 regular
expression so that a million paths are filtered in C by ``pyarrow.compute`` rather than in a Python loop.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


class FilterError(ValueError):
    pass


def split_patterns(value: str | None) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str):
        raise FilterError(f"a filter must be a string of '|'-separated patterns, got {value!r}")
    patterns = [p.strip() for p in value.split("|")]
    if any(not p for p in patterns):
        raise FilterError(f"filter {value!r} has an empty pattern (check for '||' or a trailing '|')")
    for p in patterns:
        if "\x00" in p:
            raise FilterError(f"filter pattern {p!r} contains NUL")
    return patterns


def _glob_to_re(glob: str) -> str:
    return "".join("[^/]*" if ch == "*" else re.escape(ch) for ch in glob)


def pattern_to_regex(pattern: str) -> str:
    """One DataSync pattern → an RE2 regex over root-relative paths (no leading slash)."""
    if pattern.startswith("/"):
        body = pattern.strip("/")
        if not body:
            return r"^.*$"  # "/" matches everything
        return "^" + _glob_to_re(body) + r"(/.*)?$"
    # Unanchored (``*.tmp``, ``cache/tmp``): the name, or the trailing path components, at any depth.
    return "(^|/)" + _glob_to_re(pattern.rstrip("/")) + r"(/.*)?$"


def compile_filter(value: str | None) -> str | None:
    patterns = split_patterns(value)
    if not patterns:
        return None
    return "|".join(f"(?:{pattern_to_regex(p)})" for p in patterns)


def keep_mask(paths: pa.Array | pa.ChunkedArray, types: pa.Array | pa.ChunkedArray,
              includes: str | None, excludes: str | None) -> pa.Array:
    """Boolean mask of entries that pass the filters.

    Excludes win over includes. With includes, a directory is also kept when it is an ancestor of an
    included path pattern (``/a/b`` keeps directory ``a`` so the tree can be created), so dir entries
    are kept if some include could match below them.
    """
    import pyarrow.compute as pc  # here, not at import: options (and so DAG files) load no pyarrow

    inc = compile_filter(includes)
    exc = compile_filter(excludes)
    result = pc.equal(pc.binary_length(paths), pc.binary_length(paths))  # all true, right length
    if inc is not None:
        matched = pc.match_substring_regex(paths, inc)
        ancestors = _include_ancestor_regex(includes)
        if ancestors is not None:
            is_dir = pc.equal(types, "dir")
            matched = pc.or_(matched, pc.and_(is_dir, pc.match_substring_regex(paths, ancestors)))
        result = pc.and_(result, matched)
    if exc is not None:
        result = pc.and_(result, pc.invert(pc.match_substring_regex(paths, exc)))
    return result


def _include_ancestor_regex(includes: str | None) -> str | None:
    """Directories that lie above an anchored include pattern (``/a/b/c`` → ``a``, ``a/b``)."""
    alts = []
    for p in split_patterns(includes):
        if not p.startswith("/"):
            continue
        parts = p.strip("/").split("/")
        for i in range(1, len(parts)):
            alts.append("^" + _glob_to_re("/".join(parts[:i])) + "$")
    return "|".join(f"(?:{a})" for a in alts) if alts else None
