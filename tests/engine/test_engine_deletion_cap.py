"""The deletion cap: PreserveDeletedFiles=REMOVE stops in PREPARING, before anything is copied or deleted,
when the plan deletes too much: an empty source (an unmounted NFS export is an empty directory), more
than ``max_deletes`` entries, or more than ``max_delete_percent`` of the destination."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from airflow_datasync.engine import run_execution
from airflow_datasync.options import OptionsError, TaskOptions
from airflow_datasync.phases.deletion_cap import DeletionCapError

REMOVE = {"PreserveDeletedFiles": "REMOVE"}


@pytest.fixture
def synced(tmp_path, make_tree, store):
    """A destination in sync with a 40-file source (plus 2 directories)."""
    src = make_tree(tmp_path / "src", {"a": {f"f{i}.txt": f"a{i}" for i in range(20)},
                                       "b": {f"g{i}.txt": f"b{i}" for i in range(20)}})
    dst = tmp_path / "dst"
    assert run_execution(str(src), str(dst), REMOVE, store=str(store))["Status"] == "SUCCESS"
    return src, dst


def _latest_report(store) -> dict:
    (task,) = store.iterdir()
    return json.loads((sorted(task.iterdir())[-1] / "report.json").read_text())


def test_an_emptied_source_is_refused_and_the_destination_kept(synced, store, snapshot):
    """The unmounted-NFS story: the mount point is there, empty; REMOVE would delete everything."""
    src, dst = synced
    before = snapshot(dst)
    for child in src.iterdir():
        for f in child.iterdir():
            f.unlink()
        child.rmdir()
    with pytest.raises(DeletionCapError, match="the source is empty.*allow_empty_source_delete=true"):
        run_execution(str(src), str(dst), REMOVE, store=str(store))
    assert snapshot(dst) == before
    report = _latest_report(store)
    assert report["Status"] == "ERROR" and report["ErrorCode"] == "DeletionCapExceeded"
    assert "42 entries" in report["ErrorDetail"] and report["FilesDeleted"] == 0
    assert report["EstimatedFilesToDelete"] == 42


def test_an_empty_source_deletes_only_when_allowed(synced, store):
    src, dst = synced
    for child in src.iterdir():
        for f in child.iterdir():
            f.unlink()
        child.rmdir()
    summary = run_execution(str(src), str(dst), {**REMOVE, "allow_empty_source_delete": True, "max_delete_percent": 100},
                            store=str(store))
    assert summary["Status"] == "SUCCESS" and summary["FilesDeleted"] == 42 and list(dst.iterdir()) == []


def test_a_share_above_max_delete_percent_is_refused_before_any_copy(synced, store, snapshot):
    src, dst = synced
    for f in (src / "a").iterdir():  # 21 of 42 destination entries would go: 50 % is the default cap
        f.unlink()
    (src / "a").rmdir()
    (src / "b" / "new.txt").write_text("would be copied")
    before = snapshot(dst)
    with pytest.raises(DeletionCapError, match=r"21 entries of the destination's 42 entries \(50 %\)"):
        run_execution(str(src), str(dst), {**REMOVE, "max_delete_percent": 40}, store=str(store))
    assert snapshot(dst) == before and not (dst / "b" / "new.txt").exists()
    summary = run_execution(str(src), str(dst), REMOVE, store=str(store))  # 50 % is not above 50
    assert summary["Status"] == "SUCCESS" and summary["FilesDeleted"] == 21 and (dst / "b" / "new.txt").exists()


def test_max_deletes_caps_by_count(synced, store, snapshot):
    src, dst = synced
    for i in range(3):
        (src / "a" / f"f{i}.txt").unlink()
    before = snapshot(dst)
    with pytest.raises(DeletionCapError, match="would delete 3 entries, more than max_deletes=2"):
        run_execution(str(src), str(dst), {**REMOVE, "max_deletes": 2}, store=str(store))
    assert snapshot(dst) == before
    assert run_execution(str(src), str(dst), {**REMOVE, "max_deletes": 3}, store=str(store))["FilesDeleted"] == 3


def test_a_few_deletions_pass_the_share_cap(tmp_path, make_tree, store):
    """A first REMOVE run into a folder of a few stale files deletes most of it, and is right to."""
    src = make_tree(tmp_path / "src", {"new.txt": "new"})
    dst = make_tree(tmp_path / "dst", {"stale1.txt": "x", "stale2.txt": "y"})
    summary = run_execution(str(src), str(dst), REMOVE, store=str(store))
    assert summary["Status"] == "SUCCESS" and summary["FilesDeleted"] == 2


def test_a_dry_run_reports_what_a_run_would_refuse(synced, store, snapshot):
    src, dst = synced
    for f in (src / "a").iterdir():
        f.unlink()
    before = snapshot(dst)
    summary = run_execution(str(src), str(dst), {**REMOVE, "dry_run": True, "max_delete_percent": 10}, store=str(store))
    assert summary["Status"] == "SUCCESS" and summary["DryRun"]
    assert any(w.startswith("dry run: a run would be refused: PreserveDeletedFiles=REMOVE would delete 20 entries")
               for w in summary["Warnings"])
    assert snapshot(dst) == before


def test_the_cli_exits_2_naming_the_option(synced, store, python_exe, python_env):
    src, dst = synced
    for child in src.iterdir():
        for f in child.iterdir():
            f.unlink()
        child.rmdir()
    done = subprocess.run([python_exe, "-m", "airflow_datasync.cli", "run", str(src), str(dst), "--store", str(store),
                           "-o", "PreserveDeletedFiles=REMOVE"], env=python_env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert "allow_empty_source_delete" in done.stderr
    assert len(list(os.scandir(dst))) == 2


@pytest.mark.parametrize("bad, words", [({"max_deletes": -2}, "max_deletes=-2"), ({"max_delete_percent": 101}, "0 to 100"),
                                        ({"allow_empty_source_delete": "yes"}, "true or false")])
def test_cap_options_are_validated(bad, words):
    with pytest.raises(OptionsError, match=words):
        TaskOptions.from_dict(bad)


def test_the_trigger_form_has_the_cap_fields():
    from airflow_datasync.params import datasync_params, options_from_params

    params = datasync_params()
    assert params["max_deletes"].value is None  # an empty field: no limit by count
    assert params["max_delete_percent"].value == 50 and params["max_delete_percent"].schema["maximum"] == 100
    assert params["allow_empty_source_delete"].value is False
    options = TaskOptions.from_dict(options_from_params({"max_deletes": None, "max_delete_percent": 20}))
    assert (options.max_deletes, options.max_delete_percent) == (-1, 20)
