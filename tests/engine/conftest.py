"""Shared fixtures for the engine tests: real trees on disk, a private manifest store, snapshots, reports.

Helpers are exposed as fixtures (not imported) so that these modules never collide with another
``conftest`` or helper module elsewhere under ``tests/``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

#: The repository root, so subprocesses import the engine under test whatever their cwd.
REPO_ROOT = str(Path(__file__).resolve().parents[2])


def _write_tree(root: Path, spec: dict) -> Path:
    """Create ``spec`` under ``root``.

    Values: ``bytes``/``str`` → a file with that content; ``dict`` → a directory (recursively);
    ``("link", target)`` → a symlink to ``target``.
    """
    root.mkdir(parents=True, exist_ok=True)
    for name, value in spec.items():
        path = root / name
        if isinstance(value, dict):
            _write_tree(path, value)
        elif isinstance(value, tuple) and value[0] == "link":
            os.symlink(value[1], path)
        else:
            path.write_bytes(value.encode() if isinstance(value, str) else value)
    return root


def _snapshot(root: str | os.PathLike, *, mtimes: bool = True) -> dict[str, tuple]:
    """Every entry below ``root`` (without following symlinks): type, mode, mtime and content digest."""
    root = os.fspath(root)
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            s = os.lstat(full)
            if os.path.islink(full):
                entry = ("symlink", os.readlink(full))
            elif os.path.isdir(full):
                entry = ("dir", oct(s.st_mode & 0o7777))
            else:
                with open(full, "rb") as fh:
                    entry = ("file", oct(s.st_mode & 0o7777), hashlib.sha256(fh.read()).hexdigest())
            out[rel] = entry + ((s.st_mtime_ns,) if mtimes else ())
    return out


def _report_rows(summary: dict) -> list[dict]:
    assert summary["ReportUri"], "no per-file report was written"
    return pq.read_table(summary["ReportUri"]).to_pylist()


def _all_store_bytes(store: str | os.PathLike) -> bytes:
    """Concatenated bytes of every file in the manifest store (Parquet is zstd-compressed, so decode it too)."""
    blob = b""
    for dirpath, _dirs, files in os.walk(store):
        for name in files:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as fh:
                blob += fh.read()
            if name.endswith(".parquet"):
                blob += repr(pq.read_table(full).to_pylist()).encode()
    return blob


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A manifest store private to the test (never the user's ~/airflow)."""
    return tmp_path / "store"


@pytest.fixture
def make_tree():
    return _write_tree


@pytest.fixture
def snapshot():
    return _snapshot


@pytest.fixture
def report_rows():
    return _report_rows


@pytest.fixture
def store_bytes():
    return _all_store_bytes


@pytest.fixture
def python_env() -> dict:
    """Environment for a ``python -c`` subprocess that imports the engine from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("AIRFLOW_DATASYNC_MANIFEST_STORE", None)
    return env


@pytest.fixture
def python_exe() -> str:
    return sys.executable


def listing(rows: list[dict]) -> pa.Table:
    from airflow_datasync.locations.base import LISTING_SCHEMA

    full = [{f.name: r.get(f.name) for f in LISTING_SCHEMA} for r in rows]
    return pa.Table.from_pylist(full, schema=LISTING_SCHEMA)


@pytest.fixture
def make_listing():
    """Build a listing table from short dicts; absent columns are null."""
    return listing
