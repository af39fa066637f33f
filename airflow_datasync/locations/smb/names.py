"""Names Windows forbids on a share: refused per entry with the rule that forbids them, never renamed."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync.locations.base import LocationError

_FORBIDDEN_CHARS = re.compile(r'[<>:"|?*\x00-\x1f\\]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def windows_name_problem(name: str) -> str | None:
    """Why ``name`` (one path component) cannot exist on a Windows share, or ``None`` if it can."""
    bad = sorted(set(_FORBIDDEN_CHARS.findall(name)))
    if bad:
        shown = " ".join(repr(c) if c.isprintable() else f"\\x{ord(c):02x}" for c in bad)
        return f'contains characters Windows forbids in names ({shown}; forbidden: < > : " | ? * \\ and control characters)'
    if name.endswith((".", " ")):
        return "ends with a dot or a space, which Windows strips from names"
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    if stem in _RESERVED:
        return f"uses the reserved device name {stem} (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with or without an extension)"
    return None


def windows_path_problem(path: str) -> str | None:
    """Why a share cannot hold ``path`` (its first component Windows forbids, named), or ``None``."""
    for part in path.split("/"):
        problem = windows_name_problem(part)
        if problem:
            where = f"component {part!r} " if part != path else ""
            return f"{where}{problem}"
    return None


#: Paths that may hold a name Windows forbids (a cheap vectorised filter before the exact check per path).
MAYBE_FORBIDDEN = r'[<>:"|?*\x00-\x1f\\]|[. ](/|$)|(^|/)(?i:CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9]) *(\.|/|$)'


def check_windows_path(uri: str, path: str) -> None:
    problem = windows_path_problem(path)
    if problem:
        raise LocationError(f"{uri}: {path!r} cannot be written to an SMB share: {problem}. "
                            "Rename it at the source or exclude it with Excludes.")


def windows_path_problems(paths: pa.ChunkedArray | pa.Array) -> pa.Array | None:
    """:func:`windows_path_problem` of each path (null where fine), or None when every path is fine: one
    vectorised regex pass, then the exact rule only for the paths it flags."""
    maybe = pc.match_substring_regex(paths, MAYBE_FORBIDDEN)
    if not pc.any(maybe).as_py():
        return None
    flagged = paths.filter(maybe).to_pylist()
    problems = {p: windows_path_problem(p) for p in flagged}
    problems = {p: why for p, why in problems.items() if why}
    if not problems:
        return None
    found = pa.array(list(problems), pa.string())
    index = pc.index_in(paths, value_set=found)
    return pc.take(pa.array(list(problems.values()), pa.string()), index)
