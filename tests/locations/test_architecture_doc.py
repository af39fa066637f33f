"""docs/architecture.md's capabilities table is what a backend author reads instead of the code: every
yes/no and number in it must be what the backends declare, so the page cannot drift from them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from airflow_datasync.locations import backend_class
from airflow_datasync.locations.base import Capabilities

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
COLUMNS = {"local": "file:///tmp", "S3": "s3://bucket/prefix", "SMB": "smb://host/share", "Azure": "azure://container/prefix"}


def capability_rows() -> tuple[list[str], dict[str, list[str]]]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| field | meaning |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            rows[name] = cells
    return header, rows


def declared(column: str) -> Capabilities:
    uri = COLUMNS[column]
    return backend_class(uri.split("://", 1)[0])(uri).capabilities


def test_the_capabilities_table_is_what_the_backends_declare():
    header, rows = capability_rows()
    fields = {f.name for f in dataclasses.fields(Capabilities)}
    assert set(rows) <= fields, f"the table names fields Capabilities lacks: {sorted(set(rows) - fields)}"
    checked = 0
    for name, cells in rows.items():
        for column in COLUMNS:
            cell = cells[header.index(column)]
            value = getattr(declared(column), name)
            if isinstance(value, bool) and (cell.startswith("yes") or cell.startswith("no")):
                assert value == cell.startswith("yes"), f"{name} for {column}: the page says {cell!r}, the code {value}"
                checked += 1
            elif isinstance(value, int) and not isinstance(value, bool) and cell.isdigit():
                assert value == int(cell), f"{name} for {column}: the page says {cell}, the code {value}"
                checked += 1
            elif isinstance(value, frozenset) and cell != "–":
                assert set(re.findall(r"`([^`]+)`", cell)) == set(value), f"{name} for {column}: {cell!r} vs {sorted(value)}"
                checked += 1
    assert checked >= 40  # the table is read, not skipped over
