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


def test_a_metadata_update_on_s3_is_not_planned_again_from_stale_hints(tmp_path, make_tree, s3_server, bucket):
    # Shrunk example (local → S3): an object with the source's bytes but another mode/owner is updated
    # (`meta`: copied onto itself, same ETag). The next execution's scan hints came from the first one's
    # destination listing, keyed by ETag, so they still said the old mode: every run planned the update again.
    from airflow_datasync.engine import LocationSpec
    from airflow_datasync.locations import open_location
    from airflow_datasync.locations.base import Metadata
    from tests.fixtures_servers import S3_CONN_ID

    src = make_tree(tmp_path / "src", {"f": "same bytes"})
    os.chmod(src / "f", 0o640)
    os.utime(src / "f", ns=(1_000_000_000, 1_000_000_000))
    uri = f"s3://{bucket}/dst"
    with open_location(uri, S3_CONN_ID) as loc:
        loc.write("f", iter([b"same bytes"]), Metadata(mtime_ns=1_000_000_000, mode=0o600, uid=0, gid=0), tag="t")
    store = str(tmp_path / "store")
    first = run_execution(str(src), LocationSpec(uri, S3_CONN_ID), {}, store=store)
    assert (first["Status"], first["EstimatedFilesToTransfer"]) == ("SUCCESS", 1), first
    second = run_execution(str(src), LocationSpec(uri, S3_CONN_ID), {}, store=store)
    assert (second["Status"], second["EstimatedFilesToTransfer"]) == ("SUCCESS", 0), second


def test_overwrite_never_keeps_the_metadata_of_a_directory_that_existed(tmp_path, make_tree):
    # Shrunk example: destination directory "-" (mode 1156, owner 1000:1), the source's "-" (755, 0:0)
    # holds a new file, OverwriteMode=NEVER. Finalize applied the source's mode and owner to "-" because a
    # file was written into it: NEVER never modifies an entry that exists.
    src = make_tree(tmp_path / "src", {"-": {"new": "n"}})
    dst = make_tree(tmp_path / "dst", {"-": {}})
    os.chmod(dst / "-", 0o1156)
    os.chown(dst / "-", 1000, 1)
    summary = run_execution(str(src), str(dst), {"OverwriteMode": "NEVER"}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    st = os.stat(dst / "-")
    assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == (oct(0o1156), 1000, 1)
    assert (dst / "-" / "new").read_text() == "n"


def test_a_directory_that_could_not_be_made_gives_no_metadata_to_what_stands_in_its_place(tmp_path, make_tree):
    # Shrunk example: source directory "0" (0755) holding "0/0", destination file "0" (0644), Includes
    # "/0/0": the destination file is out of the filters' scope, so the mkdir of "0" fails and "0/0" with
    # it; FINALIZE then set the directory's mode on the file. Same for a symlink in the directory's place.
    src = make_tree(tmp_path / "src", {"0": {"0": ""}, "1": {"0": ""}})
    dst = make_tree(tmp_path / "dst", {"0": "", "1": ("link", "elsewhere")})
    os.chmod(src / "0", 0o755)
    os.chmod(dst / "0", 0o644)
    before = os.lstat(dst / "1")
    summary = run_execution(str(src), str(dst), {"Includes": "/0/0|/1/0"}, store=str(tmp_path / "store"))
    assert summary["Status"] == "ERROR"
    assert (dst / "0").is_file() and oct(os.lstat(dst / "0").st_mode & 0o7777) == "0o644"
    after = os.lstat(dst / "1")
    assert os.readlink(dst / "1") == "elsewhere" and after.st_mtime_ns == before.st_mtime_ns
