"""Names Windows forbids on a share: refused per entry with the rule that forbids them, never renamed."""

from __future__ import annotations

import re

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


def check_windows_path(uri: str, path: str) -> None:
    for part in path.split("/"):
        problem = windows_name_problem(part)
        if problem:
            where = f" (component {part!r})" if part != path else ""
            raise LocationError(f"{uri}: {path!r}{where} cannot be written to an SMB share: {problem}. "
                                "Rename it at the source or exclude it with Excludes.")
