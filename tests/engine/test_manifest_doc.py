"""docs/manifest.md is the reference a user reads instead of the code: its column tables must be the
schemas (names, order, types, nullability) and its key lists the keys a real execution writes, in order.
Every Parquet and JSON file of a real execution (all phases, deletions, POINT_IN_TIME_CONSISTENT) must be
documented there, so a new file or column cannot ship undocumented."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_datasync.engine import run_execution
from airflow_datasync.locations.base import LISTING_SCHEMA
from airflow_datasync.manifest import MANIFEST_SCHEMA, RESULT_SCHEMA, VERIFY_SCHEMA
from airflow_datasync.phases.report import REPORT_COLUMNS

DOC = Path(__file__).resolve().parents[2] / "docs" / "manifest.md"
TICKED = re.compile(r"`([^`]+)`")


def sections() -> dict[str, list[str]]:
    """Heading line → the lines under it, for every ``##``/``###`` heading."""
    out: dict[str, list[str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        if line.startswith("## ") or line.startswith("### "):
            current = line
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def section(marker: str) -> tuple[str, list[str]]:
    (found,) = [(h, lines) for h, lines in sections().items() if marker in h]
    return found


def table(lines: list[str]) -> list[list[str]]:
    """The cells of the section's first table, header and separator rows dropped."""
    rows, started = [], False
    for line in lines:
        if line.startswith("|"):
            started = True
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif started:
            break
    return rows[2:]


def documented_columns(marker: str) -> list[tuple[str, str | None, bool | None]]:
    """(name, type, nullable) per documented column; type and nullable are None in tables without types."""
    heading, lines = section(marker)
    out = []
    for row in table(lines):
        names = TICKED.findall(row[0])
        if len(row) >= 3 and re.match(r"^(string|int\d+|bool)", row[1]):
            nullable = "not null" not in row[1]
            types = [t.strip() for t in row[1].replace(", not null", "").split(",")]
            types = types * len(names) if len(types) == 1 else types
            assert len(types) == len(names), row
            out.extend((n, t, nullable) for n, t in zip(names, types))
        else:
            out.extend((n, None, None) for n in names)
    return out


def schema_columns(schema: pa.Schema) -> list[tuple[str, str, bool]]:
    return [(f.name, str(f.type), f.nullable) for f in schema]


def documented_files(marker: str) -> list[str]:
    """The Parquet files a section says it describes: named in its heading or in the text before its table."""
    heading, lines = section(marker)
    intro = [heading] + lines[:next(i for i, line in enumerate(lines) if line.startswith("|"))]
    return [n for n in TICKED.findall(" ".join(intro)) if n.endswith(".parquet")]


PARQUET_SECTIONS = {"LISTING_SCHEMA": LISTING_SCHEMA.names, "MANIFEST_SCHEMA": MANIFEST_SCHEMA.names,
                    "RESULT_SCHEMA": RESULT_SCHEMA.names, "VERIFY_SCHEMA": VERIFY_SCHEMA.names,
                    "Per-file report": REPORT_COLUMNS}


def test_schema_tables_are_the_schemas():
    assert documented_columns("LISTING_SCHEMA") == schema_columns(LISTING_SCHEMA)
    # The plan's table lists what it adds to the listing's columns ("All LISTING_SCHEMA columns, then:").
    assert schema_columns(LISTING_SCHEMA) + documented_columns("MANIFEST_SCHEMA") == schema_columns(MANIFEST_SCHEMA)
    assert documented_columns("RESULT_SCHEMA") == schema_columns(RESULT_SCHEMA)
    assert documented_columns("VERIFY_SCHEMA") == schema_columns(VERIFY_SCHEMA)
    assert [n for n, _, _ in documented_columns("Per-file report")] == REPORT_COLUMNS


@pytest.fixture(params=["plain", "striped"])
def execution_dir(request, tmp_path, make_tree, store) -> Path:
    """A real execution that writes every file: copies, a delete, finalize, a full re-scan verify; and one
    that also stripes a file (stripes.json, the ranges' records, the striped file's result)."""
    spec = {"a.txt": "a", "sub": {"b.txt": "bb"}, "link": ("link", "a.txt")}
    options = {"VerifyMode": "POINT_IN_TIME_CONSISTENT", "PreserveDeletedFiles": "REMOVE"}
    if request.param == "striped":
        spec["big.bin"] = b"x" * (12 * 1024**2)
        options.update(stripe_threshold_bytes=10 * 1024**2, stripe_bytes=5 * 1024**2)
    src = make_tree(tmp_path / "src", spec)
    make_tree(tmp_path / "dst", {"gone.txt": "old"})
    summary = run_execution(str(src), str(tmp_path / "dst"), options, store=str(store))
    assert summary["Status"] == "SUCCESS" and summary["FilesDeleted"] == 1, summary
    return Path(summary["ExecutionUri"])


def test_every_parquet_file_of_an_execution_has_the_documented_columns(execution_dir):
    files = {str(p.relative_to(execution_dir)): p for p in execution_dir.rglob("*.parquet")}
    covered: set[str] = set()
    for marker, columns in PARQUET_SECTIONS.items():
        patterns = [n.replace("NNNNN", "[0-9]" * 5) for n in documented_files(marker)]
        assert patterns, f"the {marker} section names no file"
        for rel, path in files.items():
            if any(fnmatch.fnmatch(rel, pat) for pat in patterns):
                assert pq.read_schema(path).names == list(columns), (rel, marker)
                covered.add(rel)
    assert covered == set(files), f"undocumented Parquet files: {sorted(set(files) - covered)}"


def test_every_json_record_has_the_documented_keys_in_order(execution_dir):
    documented = {}
    for row in table(section("JSON records")[1]):
        (name,) = TICKED.findall(row[0])
        documented[name.replace("NNNNN", "[0-9]" * 5)] = TICKED.findall(row[2])
    documented["report.json"] = [n for row in table(section("`report.json`")[1]) for n in TICKED.findall(row[0])]
    files = {str(p.relative_to(execution_dir)): p for p in execution_dir.rglob("*.json")}
    for rel, path in sorted(files.items()):
        keys = [documented[pat] for pat in documented if fnmatch.fnmatch(rel, pat)]
        assert keys, f"{rel} is not in docs/manifest.md's JSON records"
        assert list(json.loads(path.read_text())) == keys[0], rel


def test_journal_lines_have_the_documented_keys(execution_dir):
    text = DOC.read_text()
    after = text[text.index("The journal `shards/shard-NNNNN.journal` is JSON lines"):]
    documented = re.findall(r'"(\w+)"', next(t for t in TICKED.findall(after) if t.startswith("{")))
    lines = [json.loads(line) for p in execution_dir.glob("shards/shard-*.journal")
             for line in p.read_text().splitlines() if line.strip()]
    assert lines and all(list(line) == documented for line in lines), (documented, lines[:2])
