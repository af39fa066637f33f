"""Defects the property-based model (tests/faults/test_model.py) found, each as the shrunk example it gave,
through ``run_execution`` on real directories."""

from __future__ import annotations

import os

from airflow_datasync.engine import run_execution


def test_overwrite_never_keeps_a_destination_file_where_the_source_has_a_directory(tmp_path, make_tree):
    # Shrunk example: source directory "-", destination file (or symlink) "-", OverwriteMode=NEVER. NEVER
    # never modifies an entry that exists: the file stays, whatever its type at the source.
    src = make_tree(tmp_path / "src", {"-": {}, "d": {"x": "new"}})
    dst = make_tree(tmp_path / "dst", {"-": "keep me", "d": ("link", "-")})
    summary = run_execution(str(src), str(dst), {"OverwriteMode": "NEVER"}, store=str(tmp_path / "store"))
    assert (dst / "-").read_text() == "keep me" and os.readlink(dst / "d") == "-"
    rows = {r["path"]: (r["action"], r["reason"]) for r in _rows(summary)}
    assert rows["-"] == rows["d"] == ("skip", "exists (OverwriteMode=NEVER)")


def test_a_directory_replaces_a_destination_file_of_the_same_name(tmp_path, make_tree):
    # Shrunk example: source directory "f", destination file "f", the defaults. The plan says mkdir (type
    # changed), as docs/manifest.md documents; the mkdir then failed with "exists at the destination and
    # is not a directory", so the tree below never arrived. A symlink in that place stays refused
    # (tests/engine/test_engine_safety.py): one planted to redirect writes is never trusted.
    src = make_tree(tmp_path / "src", {"f": {"inner": "i"}, "g": {}})
    dst = make_tree(tmp_path / "dst", {"f": "was a file", "g": "was a file too"})
    summary = run_execution(str(src), str(dst), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    assert (dst / "f" / "inner").read_text() == "i" and (dst / "g").is_dir()


def _rows(summary: dict) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(summary["ReportUri"]).to_pylist()
