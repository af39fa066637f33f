"""Safety: the source is never modified; nothing outside the destination root is written, deleted or
re-permissioned, even through symlinks planted in the destination; deletes only with REMOVE."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.phases.transfer import ShardFailedError

SRC_SPEC = {
    "a": {"f.txt": "fresh data", "old.txt": "old", "sub": {"g.txt": "g"}},
    "top.txt": "top",
    "link": ("link", "a/f.txt"),
}


@pytest.fixture
def outside(tmp_path, make_tree):
    """A directory outside both roots, shaped like the destination's ``a`` so names collide."""
    o = make_tree(tmp_path / "outside", {"f.txt": "precious", "old.txt": "precious old", "sub": {"g.txt": "precious g"},
                                         "unrelated.txt": "keep me"})
    os.chmod(o, 0o700)
    os.chmod(o / "f.txt", 0o600)
    os.utime(o / "f.txt", ns=(10**18, 10**18))
    os.utime(o, ns=(10**18, 10**18))
    return o


@pytest.fixture
def src(tmp_path, make_tree):
    s = make_tree(tmp_path / "src", SRC_SPEC)
    os.chmod(s / "a", 0o755)
    return s


@pytest.fixture
def dst(tmp_path):
    d = tmp_path / "dst"
    d.mkdir()
    return d


def test_source_never_modified(tmp_path, src, dst, store, snapshot, make_tree):
    make_tree(dst, {"extra.txt": "x", "extra-dir": {"y": "y"}, "a": {"stale.txt": "s"}, "top.txt": "different size!"})
    before = snapshot(src)
    for opts in ({}, {"PreserveDeletedFiles": "REMOVE", "VerifyMode": "POINT_IN_TIME_CONSISTENT"},
                 {"TransferMode": "ALL"}, {"OverwriteMode": "NEVER"}):
        summary = run_execution(str(src), str(dst), opts, store=str(store))
        assert summary["Status"] == "SUCCESS", (opts, summary)
        assert snapshot(src) == before, opts
    assert snapshot(dst) == before  # REMOVE made them equal; later runs kept it so


def test_deletes_only_with_remove(src, dst, store, make_tree, snapshot):
    make_tree(dst, {"extra.txt": "x", "extra-dir": {"y": "y", "z": {}}})
    s = run_execution(str(src), str(dst), {}, store=str(store))
    assert s["Status"] == "SUCCESS" and s["FilesDeleted"] == 0 and s["EstimatedFilesToDelete"] == 0
    assert (dst / "extra.txt").exists() and (dst / "extra-dir" / "z").is_dir()
    s = run_execution(str(src), str(dst), {"PreserveDeletedFiles": "REMOVE"}, store=str(store))
    assert s["Status"] == "SUCCESS", s
    assert s["FilesDeleted"] == 4
    assert snapshot(dst) == snapshot(src)


def test_remove_keeps_excluded_destination_entries(src, dst, store, make_tree):
    make_tree(dst, {"keep.tmp": "x", "gone.txt": "y"})
    s = run_execution(str(src), str(dst), {"PreserveDeletedFiles": "REMOVE", "Excludes": "*.tmp"}, store=str(store))
    assert s["Status"] == "SUCCESS", s
    assert (dst / "keep.tmp").read_text() == "x" and not (dst / "gone.txt").exists()


def test_remove_deletes_destination_symlink_not_its_target(src, dst, store, outside, snapshot):
    os.symlink(outside, dst / "escape")
    os.symlink(outside / "f.txt", dst / "escape-file")
    before = snapshot(outside)
    s = run_execution(str(src), str(dst), {"PreserveDeletedFiles": "REMOVE"}, store=str(store))
    assert s["Status"] == "SUCCESS", s
    assert s["FilesDeleted"] == 2
    assert not os.path.lexists(dst / "escape") and not os.path.lexists(dst / "escape-file")
    assert snapshot(outside) == before
    assert oct(os.stat(outside).st_mode & 0o777) == oct(0o700)


@pytest.mark.parametrize("remove", [False, True])
def test_destination_dir_replaced_by_symlink_receives_nothing(src, dst, store, outside, snapshot, report_rows, remove):
    assert run_execution(str(src), str(dst), {}, store=str(store))["Status"] == "SUCCESS"
    # Someone replaces dst/a by a symlink to an outside directory; the source changes meanwhile.
    for p in sorted((dst / "a").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (dst / "a").rmdir()
    os.symlink(outside, dst / "a")
    (src / "a" / "f.txt").write_text("newer data!")
    (src / "a" / "sub" / "g.txt").write_text("newer g")
    (src / "a" / "new.txt").write_text("brand new")
    os.unlink(src / "a" / "old.txt")
    before = snapshot(outside)

    opts = {"PreserveDeletedFiles": "REMOVE"} if remove else {}
    s = run_execution(str(src), str(dst), opts, store=str(store))

    assert snapshot(outside) == before
    assert oct(os.stat(outside).st_mode & 0o777) == oct(0o700)
    assert not (outside / "new.txt").exists()
    assert s["Status"] == "ERROR" and s["FilesFailed"] >= 1
    failed = {r["path"] for r in report_rows(s) if r["status"] == "FAILED"}
    assert {"a", "a/f.txt", "a/new.txt"} <= failed
    assert "symlink" in s["ErrorDetail"]
    # Entries elsewhere are still handled.
    assert (dst / "top.txt").read_text() == "top"


def test_destination_symlink_in_place_of_new_dir(src, tmp_path, store, outside, snapshot):
    dst = tmp_path / "dst"
    dst.mkdir()
    os.symlink(outside, dst / "a")  # planted before the first run
    before = snapshot(outside)
    s = run_execution(str(src), str(dst), {"PreserveDeletedFiles": "REMOVE"}, store=str(store))
    assert snapshot(outside) == before
    assert s["Status"] == "ERROR"
    assert os.readlink(dst / "a") == str(outside)


def _prepare(src, dst, store, opts):
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), opts, store=str(store))
    return ex, engine.prepare(ex)


def test_swap_between_prepare_and_transfer_does_not_write_or_chmod_outside(src, dst, store, outside, snapshot):
    """The plan was made when dst/a was a directory; by TRANSFERRING/FINALIZING it is a symlink."""
    assert run_execution(str(src), str(dst), {}, store=str(store))["Status"] == "SUCCESS"
    os.chmod(src / "a" / "f.txt", 0o640)          # → "meta" on a/f.txt
    os.chmod(src / "a", 0o750)                    # → directory metadata in FINALIZING
    (src / "a" / "sub" / "g.txt").write_text("changed g")  # → "copy" below a
    os.unlink(src / "a" / "old.txt")              # → "delete" below a
    ex, shards = _prepare(src, dst, store, {"PreserveDeletedFiles": "REMOVE"})
    actions = {r["path"]: r["action"] for r in __import__("pyarrow.parquet", fromlist=["x"]).read_table(ex.manifest).to_pylist()}
    assert actions["a/f.txt"] == "meta" and actions["a/sub/g.txt"] == "copy" and actions["a/old.txt"] == "delete"

    for p in sorted((dst / "a").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (dst / "a").rmdir()
    os.symlink(outside, dst / "a")
    before = snapshot(outside)
    mode_before = os.stat(outside).st_mode

    for shard in shards:
        with pytest.raises(ShardFailedError):
            engine.transfer(ex, shard["shard"])
    engine.finalize(ex)
    engine.verify(ex)
    summary = engine.report(ex)

    assert snapshot(outside) == before
    assert os.stat(outside).st_mode == mode_before and os.stat(outside).st_mtime_ns == 10**18
    assert (outside / "old.txt").read_text() == "precious old"
    assert summary["Status"] == "ERROR"


def test_symlink_metadata_change_never_touches_the_target(src, dst, store, outside, snapshot):
    """A symlink whose owner differs gets a metadata update: it must apply to the link, not its target."""
    os.symlink(outside / "f.txt", src / "owned-link")
    os.lchown(src / "owned-link", 4321, 4321)
    os.symlink(outside / "f.txt", dst / "owned-link")
    st_src = os.lstat(src / "owned-link")
    os.utime(dst / "owned-link", ns=(st_src.st_atime_ns, st_src.st_mtime_ns), follow_symlinks=False)
    before = snapshot(outside)
    target_stat = os.stat(outside / "f.txt")

    s = run_execution(str(src), str(dst), {}, store=str(store))

    assert s["Status"] == "SUCCESS", s
    after = os.stat(outside / "f.txt")
    assert (after.st_mode, after.st_uid, after.st_gid) == (target_stat.st_mode, target_stat.st_uid, target_stat.st_gid)
    assert snapshot(outside) == before
    assert os.lstat(dst / "owned-link").st_uid == 4321 and os.readlink(dst / "owned-link") == str(outside / "f.txt")


def test_destination_file_symlink_is_replaced_not_written_through(src, dst, store, outside, snapshot):
    """dst/top.txt is a symlink to an outside file: the copy replaces the link, the target keeps its bytes."""
    os.symlink(outside / "f.txt", dst / "top.txt")
    before = snapshot(outside)
    s = run_execution(str(src), str(dst), {}, store=str(store))
    assert s["Status"] == "SUCCESS", s
    assert not os.path.islink(dst / "top.txt") and (dst / "top.txt").read_text() == "top"
    assert snapshot(outside) == before


def test_destination_root_is_a_symlink_is_used_as_the_root(tmp_path, src, store, snapshot):
    real = tmp_path / "real-dst"
    real.mkdir()
    os.symlink(real, tmp_path / "dst-link")
    s = run_execution(str(src), str(tmp_path / "dst-link"), {}, store=str(store))
    assert s["Status"] == "SUCCESS", s
    assert snapshot(real) == snapshot(src)


def test_special_files_are_skipped_not_failed(tmp_path):
    """PreserveDevices=NONE (DataSync's default): FIFOs, sockets and devices are ignored, never opened."""
    from airflow_datasync.engine import run_execution

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "data.txt").write_text("payload")
    os.mkfifo(src / "pipe")  # opening it for reading would block forever
    summary = run_execution(str(src), str(dst), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    assert (dst / "data.txt").read_text() == "payload"
    assert not os.path.lexists(dst / "pipe")
    rows = pq.read_table(summary["ReportUri"]).to_pylist()
    pipe = next(r for r in rows if r["path"] == "pipe")
    assert pipe["status"] == "SKIPPED" and "PreserveDevices=NONE" in pipe["reason"]


def test_remove_keeps_a_directory_that_still_holds_excluded_entries(tmp_path):
    from airflow_datasync.engine import run_execution

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "kept.txt").write_text("k")
    (dst / "old").mkdir(parents=True)
    (dst / "old" / "notes.tmp").write_text("excluded: must survive")
    (dst / "old" / "gone.txt").write_text("not in source: deleted")
    summary = run_execution(str(src), str(dst), {"PreserveDeletedFiles": "REMOVE", "Excludes": "*.tmp"},
                            store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    assert summary["FilesDeleted"] == 1
    assert not (dst / "old" / "gone.txt").exists()
    assert (dst / "old" / "notes.tmp").read_text() == "excluded: must survive"
    assert any("old" in w and "kept" in w for w in summary["Warnings"])
