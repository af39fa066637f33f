"""run_execution on real trees: what lands at the destination, the report, and incremental runs."""

from __future__ import annotations

import json
import os
import time

import pytest

from airflow_datasync.engine import run_execution


@pytest.fixture
def outside(tmp_path):
    o = tmp_path / "outside"
    o.mkdir()
    (o / "sentinel.txt").write_text("outside the tree")
    return o


@pytest.fixture
def tree(tmp_path, make_tree, outside):
    spec = {
        "top.txt": "top level\n",
        "empty.bin": b"",
        "binary.bin": bytes(range(256)) * 300,
        "empty-dir": {},
        "a": {
            "b": {
                "c": {"deep.txt": "deep\n" * 1000},
                "link-to-deep": ("link", "c/deep.txt"),
            },
            "dangling": ("link", "does/not/exist"),
            "to-outside": ("link", str(outside)),
            "rel-outside": ("link", "../../outside/sentinel.txt"),
        },
        "ünïcødé — 文件.txt": "unicode name\n",
        "with space.txt": "spaces\n",
        "new\nline.txt": "newline in name\n",
        "dir with space": {"x y": "z"},
    }
    src = make_tree(tmp_path / "src", spec)
    os.chmod(src / "top.txt", 0o600)
    os.chmod(src / "a" / "b", 0o750)
    # Distinct, old mtimes (files, symlinks, then dirs deepest first) so preservation is really tested.
    t = 1_600_000_000_000_000_000
    entries = sorted((p for p in src.rglob("*")), key=lambda p: -len(p.parts))
    for i, p in enumerate(entries):
        os.utime(p, ns=(t + i * 1_000_000_123, t + i * 1_000_000_007), follow_symlinks=False)
    return src


def count_entries(root):
    return sum(len(ds) + len(fs) for _, ds, fs in os.walk(root))


def test_full_copy_then_incremental(tmp_path, tree, store, snapshot, report_rows, outside):
    dst = tmp_path / "dst"
    dst.mkdir()
    outside_before = snapshot(outside)
    src_before = snapshot(tree)
    n = count_entries(tree)

    summary = run_execution(str(tree), str(dst), {}, store=str(store), task_name="e2e")

    assert summary["Status"] == "SUCCESS", summary
    assert summary["ErrorCode"] is None
    # Destination equals source: types, modes, contents, link targets and mtimes (dirs included).
    assert snapshot(dst) == src_before
    assert snapshot(tree) == src_before
    # Symlinks are copied as links, never followed: the outside link points outside, nothing was pulled in.
    assert os.readlink(dst / "a" / "to-outside") == str(outside)
    assert os.path.islink(dst / "a" / "rel-outside") and os.path.islink(dst / "a" / "dangling")
    assert not (dst / "a" / "sentinel.txt").exists()
    assert snapshot(outside) == outside_before
    assert (dst / "new\nline.txt").read_text() == "newline in name\n"
    assert (dst / "empty.bin").stat().st_size == 0 and (dst / "empty-dir").is_dir()
    # No temporary names left behind.
    assert not [p for p in dst.rglob(".~ds-*")]

    files = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()]
    nbytes = sum(p.stat().st_size for p in files)
    assert summary["FilesTransferred"] == n == summary["EstimatedFilesToTransfer"] == summary["FilesPrepared"]
    assert summary["BytesWritten"] == nbytes == summary["EstimatedBytesToTransfer"]
    assert summary["FilesSkipped"] == 0 and summary["FilesFailed"] == 0 and summary["FilesDeleted"] == 0
    assert summary["FilesVerified"] == len(files)  # ONLY_FILES_TRANSFERRED: regular files written
    assert summary["ShardsCompleted"] == summary["ShardCount"] == 1

    # report.json equals the returned summary; report.parquet has one row per entry with matching counters.
    ex = summary["ExecutionUri"]
    assert ex.startswith(str(store / "e2e"))
    with open(os.path.join(ex, "report.json"), encoding="utf-8") as fh:
        assert json.load(fh) == summary
    rows = report_rows(summary)
    assert os.path.basename(summary["ReportUri"]) == "report.parquet"
    assert len(rows) == n
    assert {r["path"] for r in rows} == {str(p.relative_to(tree)) for p in tree.rglob("*")}
    assert sum(r["status"] == "SUCCESS" for r in rows) == summary["FilesTransferred"]
    assert sum(r["verify_status"] == "VERIFIED" for r in rows) == summary["FilesVerified"]
    by_path = {r["path"]: r for r in rows}
    assert by_path["top.txt"]["bytes_written"] == len("top level\n")
    assert by_path["a/b/c"]["action"] == "mkdir"
    assert by_path["a/to-outside"]["type"] == "symlink"
    assert by_path["binary.bin"]["src_checksum"] == by_path["binary.bin"]["dst_checksum"]

    # Second run: nothing to do.
    again = run_execution(str(tree), str(dst), {}, store=str(store), task_name="e2e")
    assert again["Status"] == "SUCCESS", again
    assert again["FilesTransferred"] == 0 and again["BytesWritten"] == 0
    assert again["FilesSkipped"] == n and again["EstimatedFilesToTransfer"] == 0 and again["ShardCount"] == 0
    assert {r["status"] for r in report_rows(again)} == {"SKIPPED"}
    assert snapshot(dst) == src_before

    # Modify one file (same size, new mtime) and grow another: exactly those are recopied.
    (tree / "top.txt").write_text("TOP LEVEL\n")
    with open(tree / "a" / "b" / "c" / "deep.txt", "a") as fh:
        fh.write("more\n")
    os.utime(tree / "a" / "b" / "c", ns=(src_before["a/b/c"][-1],) * 2)  # keep the dir mtime: only files changed
    third = run_execution(str(tree), str(dst), {}, store=str(store), task_name="e2e")
    assert third["Status"] == "SUCCESS", third
    assert third["FilesTransferred"] == 2 and third["FilesSkipped"] == n - 2
    reasons = {r["path"]: r["reason"] for r in report_rows(third) if r["action"] == "copy"}
    assert reasons == {"top.txt": "mtime changed", "a/b/c/deep.txt": "size changed"}
    assert (dst / "top.txt").read_text() == "TOP LEVEL\n"
    assert snapshot(dst) == snapshot(tree)


@pytest.mark.parametrize("mode", ["POINT_IN_TIME_CONSISTENT", "NONE", "ONLY_FILES_TRANSFERRED"])
def test_verify_modes(tmp_path, tree, store, snapshot, report_rows, mode):
    dst = tmp_path / "dst"
    dst.mkdir()
    summary = run_execution(str(tree), str(dst), {"VerifyMode": mode}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    assert summary["VerifyMode"] == mode
    assert snapshot(dst) == snapshot(tree)
    rows = report_rows(summary)
    files = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()]
    if mode == "NONE":
        assert summary["FilesVerified"] == 0
        assert all(r["verify_status"] is None for r in rows)
    elif mode == "POINT_IN_TIME_CONSISTENT":
        # Every entry in scope is checked: files, dirs and symlinks.
        assert summary["FilesVerified"] == count_entries(tree)
        assert {r["verify_status"] for r in rows} == {"VERIFIED"}
    else:
        assert summary["FilesVerified"] == len(files)


def test_point_in_time_second_run_verifies_untouched_entries(tmp_path, tree, store):
    dst = tmp_path / "dst"
    dst.mkdir()
    assert run_execution(str(tree), str(dst), {}, store=str(store))["Status"] == "SUCCESS"
    again = run_execution(str(tree), str(dst), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}, store=str(store))
    assert again["Status"] == "SUCCESS" and again["FilesTransferred"] == 0
    assert again["FilesVerified"] == count_entries(tree)


def test_point_in_time_catches_extra_destination_file_with_remove(tmp_path, tree, store):
    # With REMOVE the extra file is deleted, so verification passes; the deletion is counted.
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "stale.txt").write_text("old")
    (dst / "stale-dir").mkdir()
    (dst / "stale-dir" / "x").write_text("old")
    summary = run_execution(str(tree), str(dst), {"VerifyMode": "POINT_IN_TIME_CONSISTENT", "PreserveDeletedFiles": "REMOVE"},
                            store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    assert summary["FilesDeleted"] == 3 and summary["EstimatedFilesToDelete"] == 3
    assert not (dst / "stale.txt").exists() and not (dst / "stale-dir").exists()


def test_preserve_keeps_extra_destination_files(tmp_path, tree, store):
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "stale.txt").write_text("old")
    summary = run_execution(str(tree), str(dst), {}, store=str(store))
    assert summary["Status"] == "SUCCESS" and summary["FilesDeleted"] == 0
    assert (dst / "stale.txt").read_text() == "old"


def test_filters_end_to_end(tmp_path, make_tree, store, report_rows):
    src = make_tree(tmp_path / "src", {"logs": {"a.log": "1", "old": {"b.log": "2"}}, "data": {"x.csv": "3", "x.tmp": "4"},
                                       "top.tmp": "5", "readme": "6"})
    dst = tmp_path / "dst"
    dst.mkdir()
    summary = run_execution(str(src), str(dst), {"Includes": "/logs|/data", "Excludes": "*.tmp|/logs/old"}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    got = sorted(str(p.relative_to(dst)) for p in dst.rglob("*"))
    assert got == ["data", "data/x.csv", "logs", "logs/a.log"]
    assert {r["path"] for r in report_rows(summary)} == set(got)


def test_options_mtime_none_and_no_permissions(tmp_path, make_tree, store):
    src = make_tree(tmp_path / "src", {"f": "data"})
    os.chmod(src / "f", 0o600)
    os.utime(src / "f", ns=(10**18, 10**18))
    dst = tmp_path / "dst"
    dst.mkdir()
    summary = run_execution(str(src), str(dst), {"Mtime": "NONE", "Atime": "NONE", "PosixPermissions": "NONE",
                                                 "VerifyMode": "POINT_IN_TIME_CONSISTENT"}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    assert (dst / "f").read_text() == "data"
    assert (dst / "f").stat().st_mtime_ns != 10**18
    umask = os.umask(0o022)
    os.umask(umask)
    # PosixPermissions=NONE: the destination's default mode (0666 minus the umask), not the source's 0600.
    assert (dst / "f").stat().st_mode & 0o777 == 0o666 & ~umask


def test_metadata_only_change_is_applied_without_copy(tmp_path, make_tree, store, report_rows):
    src = make_tree(tmp_path / "src", {"f": "data"})
    dst = tmp_path / "dst"
    dst.mkdir()
    assert run_execution(str(src), str(dst), {}, store=str(store))["Status"] == "SUCCESS"
    os.chmod(src / "f", 0o640)
    summary = run_execution(str(src), str(dst), {}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    assert summary["BytesWritten"] == 0
    row = next(r for r in report_rows(summary) if r["path"] == "f")
    assert (row["action"], row["status"]) == ("meta", "SUCCESS")
    assert (dst / "f").stat().st_mode & 0o777 == 0o640


def test_type_change_file_to_symlink_and_back(tmp_path, make_tree, store, snapshot):
    src = make_tree(tmp_path / "src", {"x": "file", "y": ("link", "x")})
    dst = tmp_path / "dst"
    dst.mkdir()
    assert run_execution(str(src), str(dst), {}, store=str(store))["Status"] == "SUCCESS"
    os.unlink(src / "x")
    os.symlink("y-target", src / "x")
    os.unlink(src / "y")
    (src / "y").write_text("now a file")
    summary = run_execution(str(src), str(dst), {}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    assert os.readlink(dst / "x") == "y-target" and (dst / "y").read_text() == "now a file"
    assert not (dst / "y").is_symlink()


def test_summary_only_report_config(tmp_path, make_tree, store):
    src = make_tree(tmp_path / "src", {"f": "data"})
    dst = tmp_path / "dst"
    dst.mkdir()
    summary = run_execution(str(src), str(dst), {"TaskReportConfig": {"OutputType": "SUMMARY_ONLY"}}, store=str(store))
    assert summary["Status"] == "SUCCESS" and summary["ReportUri"] is None
    assert os.path.exists(os.path.join(summary["ExecutionUri"], "report.json"))
    assert not os.path.exists(os.path.join(summary["ExecutionUri"], "report.parquet"))


def test_many_small_files_several_shards(tmp_path, make_tree, store, snapshot, report_rows):
    spec = {f"d{i}": {f"f{j}.txt": f"{i}-{j}" for j in range(20)} for i in range(10)}
    src = make_tree(tmp_path / "src", spec)
    dst = tmp_path / "dst"
    dst.mkdir()
    t0 = time.monotonic()
    summary = run_execution(str(src), str(dst), {"files_per_shard": 25}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    assert summary["ShardCount"] == summary["ShardsCompleted"] == 9  # 210 entries / 25
    assert summary["FilesTransferred"] == 210
    assert snapshot(dst) == snapshot(src)
    assert {r["shard"] for r in report_rows(summary)} == set(range(9))
    assert time.monotonic() - t0 < 20
