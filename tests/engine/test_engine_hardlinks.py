"""Hard links at a file-system source: counted and reported by default, kept with preserve_hard_links."""

from __future__ import annotations

import json
import os

import pytest

from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.locations.local import LocalLocation
from airflow_datasync.phases import hardlinks
from airflow_datasync.phases import prepare as prepare_phase


@pytest.fixture
def linked_tree(tmp_path):
    """Two groups (3 names and 2 names) and a plain file, with old distinct mtimes."""
    src = tmp_path / "src"
    (src / "b").mkdir(parents=True)
    (src / "c").mkdir()
    (src / "a.txt").write_bytes(b"shared by three names\n" * 100)
    os.link(src / "a.txt", src / "b" / "a2.txt")
    os.link(src / "a.txt", src / "c" / "a3.txt")
    (src / "x.bin").write_bytes(os.urandom(5000))
    os.link(src / "x.bin", src / "y.bin")
    (src / "single.txt").write_text("one name\n")
    t = 1_600_000_000_000_000_000
    for i, p in enumerate(["a.txt", "x.bin", "single.txt"]):
        os.utime(src / p, ns=(t + i, t + i))
    return src


def inode(path) -> int:
    return os.lstat(path).st_ino


def prepare_json(summary) -> dict:
    with open(os.path.join(summary["ExecutionUri"], "prepare.json")) as fh:
        return json.load(fh)


def test_default_copies_independent_files_and_reports_the_groups(tmp_path, linked_tree, store):
    dst = tmp_path / "dst"
    summary = run_execution(str(linked_tree), str(dst), store=str(store))
    assert summary["Status"] == "SUCCESS", summary["ErrorDetail"]
    assert len({inode(dst / p) for p in ("a.txt", "b/a2.txt", "c/a3.txt")}) == 3
    assert (dst / "b" / "a2.txt").read_bytes() == (linked_tree / "a.txt").read_bytes()
    assert "5 files in 2 hard-link groups copied as independent files (set preserve_hard_links to keep them as links)" \
        in summary["Warnings"]
    assert prepare_json(summary)["hard_links"] == {"files": 5, "groups": 2, "preserved": False}


@pytest.mark.parametrize("verify", ["ONLY_FILES_TRANSFERRED", "POINT_IN_TIME_CONSISTENT"])
def test_preserve_hard_links_copies_once_and_links_the_other_names(tmp_path, linked_tree, store, report_rows, verify):
    dst = tmp_path / "dst"
    options = {"preserve_hard_links": True, "VerifyMode": verify}
    summary = run_execution(str(linked_tree), str(dst), options, store=str(store))
    assert summary["Status"] == "SUCCESS", summary["ErrorDetail"]
    assert inode(dst / "a.txt") == inode(dst / "b" / "a2.txt") == inode(dst / "c" / "a3.txt")
    assert inode(dst / "x.bin") == inode(dst / "y.bin") != inode(dst / "a.txt")
    assert os.lstat(dst / "single.txt").st_nlink == 1 and os.lstat(dst / "a.txt").st_nlink == 3
    # Each file's bytes went once; the other names are links made in FINALIZE.
    assert summary["BytesWritten"] == sum(os.path.getsize(linked_tree / p) for p in ("a.txt", "x.bin", "single.txt"))
    rows = {r["path"]: r for r in report_rows(summary)}
    assert rows["b/a2.txt"]["action"] == rows["y.bin"]["action"] == "link"
    assert rows["b/a2.txt"]["status"] == "SUCCESS" and rows["b/a2.txt"]["verify_status"] == "VERIFIED"
    assert summary["FilesVerified"] >= 5
    assert not any("hard-link" in w for w in summary["Warnings"])
    # Directory times are set after the links (a link changes its directory's mtime).
    assert os.stat(dst / "b").st_mtime_ns == os.stat(linked_tree / "b").st_mtime_ns
    # A re-run finds every name in place.
    again = run_execution(str(linked_tree), str(dst), options, store=str(store))
    assert again["Status"] == "SUCCESS" and again["FilesTransferred"] == 0
    assert {r["reason"] for r in report_rows(again) if r["path"] in ("b/a2.txt", "c/a3.txt", "y.bin")} == {
        "hard link in place"}


def test_independent_copies_converge_to_links_and_follow_changes(tmp_path, linked_tree, store):
    dst = tmp_path / "dst"
    run_execution(str(linked_tree), str(dst), store=str(store))  # independent copies first
    summary = run_execution(str(linked_tree), str(dst), {"preserve_hard_links": True}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary["ErrorDetail"]
    assert summary["FilesTransferred"] == 3 and summary["BytesWritten"] == 0  # only links: the bytes were there
    assert inode(dst / "a.txt") == inode(dst / "c" / "a3.txt")
    # The source file changes (through any of its names): copied once more, every name follows.
    with open(linked_tree / "b" / "a2.txt", "ab") as fh:
        fh.write(b"appended\n")
    changed = run_execution(str(linked_tree), str(dst), {"preserve_hard_links": True}, store=str(store))
    assert changed["Status"] == "SUCCESS", changed["ErrorDetail"]
    assert inode(dst / "a.txt") == inode(dst / "b" / "a2.txt") == inode(dst / "c" / "a3.txt")
    assert (dst / "c" / "a3.txt").read_bytes().endswith(b"appended\n")


def test_groups_spanning_partitions_plan_as_in_memory(tmp_path, store, monkeypatch, report_rows):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i:03d}").write_text(f"file {i}\n")
        os.link(src / f"f{i:03d}", src / f"g{i:03d}")
    monkeypatch.setattr(prepare_phase, "PARTITION_ROWS", 20)
    dst = tmp_path / "dst"
    summary = run_execution(str(src), str(dst), {"preserve_hard_links": True}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary["ErrorDetail"]
    assert all(inode(dst / f"f{i:03d}") == inode(dst / f"g{i:03d}") for i in range(40))
    assert sum(r["action"] == "link" for r in report_rows(summary)) == 40


def test_unlinked_names_are_found(tmp_path):
    (tmp_path / "a").write_text("x")
    os.link(tmp_path / "a", tmp_path / "b")
    (tmp_path / "c").write_text("x")
    loc = LocalLocation(str(tmp_path))
    assert hardlinks.unlinked(loc, [("b", "a")]) == {}
    assert "not a hard link of 'a'" in hardlinks.unlinked(loc, [("c", "a")])["c"]


def test_hard_link_replaces_a_copy_and_is_idempotent(tmp_path):
    (tmp_path / "a").write_text("x")
    (tmp_path / "b").write_text("old copy")
    loc = LocalLocation(str(tmp_path))
    assert loc.hard_link("b", "a", tag="t") is True
    assert inode(tmp_path / "a") == inode(tmp_path / "b")
    assert loc.hard_link("b", "a", tag="t") is False  # already that file
    assert loc.hard_link("sub/new", "a", tag="t") is True and inode(tmp_path / "sub" / "new") == inode(tmp_path / "a")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".~ds-")]


def test_a_store_without_hard_links_gets_independent_copies_and_says_so(tmp_path, linked_tree, store, s3, bucket):
    from tests.fixtures_servers import S3_CONN_ID

    dst = LocationSpec(f"s3://{bucket}/dst", S3_CONN_ID)
    summary = run_execution(LocationSpec(str(linked_tree)), dst, {"preserve_hard_links": True}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary["ErrorDetail"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {"dst/a.txt", "dst/b/a2.txt", "dst/c/a3.txt", "dst/x.bin", "dst/y.bin"} <= keys
    assert ("preserve_hard_links: S3 holds no hard links, so 5 files in 2 hard-link groups copied as independent "
            "files") in summary["Warnings"]
