"""Per-file failures: one entry that cannot be copied fails itself, never the whole execution's later phases.

FINALIZE and VERIFYING run whatever the shards did: what transferred is verified, directory metadata is
applied, every deletion (PreserveDeletedFiles=REMOVE) is skipped with the reason in the report, and the
status is ERROR. A shard that never reported (killed, out of retries) counts as failed copies too.
"""

from __future__ import annotations

import os

import pytest

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.phases.transfer import ShardFailedError

#: A directory mtime nothing else would set: FINALIZE applied the source's directory metadata if it is there.
DIR_MTIME_NS = 1_500_000_000_000_000_000


@pytest.fixture
def trees(tmp_path, make_tree):
    """A source of 12 files in 3 directories; a destination where ``d1/blocked.bin`` is a non-empty
    directory (a file cannot replace it: permanent) and two stale files REMOVE would delete."""
    src = make_tree(tmp_path / "src", {f"d{i}": {f"f{j}.txt": f"data {i} {j}" * (j + 1) for j in range(4)}
                                       for i in range(3)})
    (src / "d1" / "blocked.bin").write_bytes(b"cannot land")
    for d in ("d0", "d1", "d2"):
        os.utime(src / d, ns=(DIR_MTIME_NS, DIR_MTIME_NS))
    dst = make_tree(tmp_path / "dst", {"stale.txt": "not in source", "old": {"gone.txt": "not in source"},
                                       "d1": {"blocked.bin": {"in the way": "keep"}}})
    return src, dst


def _copied_and_verified(src, dst) -> int:
    files = [p for p in src.rglob("*.txt")]
    for p in files:
        rel = p.relative_to(src)
        assert (dst / rel).read_bytes() == p.read_bytes(), rel
    return len(files)


@pytest.mark.parametrize("verify_mode", ["ONLY_FILES_TRANSFERRED", "POINT_IN_TIME_CONSISTENT"])
def test_one_file_that_cannot_be_copied_skips_deletions_not_finalize_or_verify(trees, store, report_rows, verify_mode):
    src, dst = trees
    summary = run_execution(str(src), str(dst), {"PreserveDeletedFiles": "REMOVE", "VerifyMode": verify_mode,
                                                "files_per_shard": 5}, store=str(store))
    assert summary["Status"] == "ERROR" and summary["ErrorCode"] == "FilesFailed"
    # Everything else was copied and verified; the failed copy is a transfer failure, not a verify failure.
    assert _copied_and_verified(src, dst) == 12
    assert summary["VerifyRan"] and summary["FilesVerified"] >= 12
    assert summary["FilesFailedDetail"] == {"Prepare": 0, "Transfer": 1, "Verify": 0, "Delete": 0}
    assert summary["FilesFailed"] == 1
    # Nothing was deleted, and the report says why.
    assert (dst / "stale.txt").read_text() == "not in source" and (dst / "old" / "gone.txt").exists()
    assert (dst / "d1" / "blocked.bin" / "in the way").read_text() == "keep"
    assert summary["FilesDeleted"] == 0 and summary["DeletionsSkipped"] == summary["EstimatedFilesToDelete"] == 4
    assert "4 deletions skipped because 1 copy failed" in summary["ErrorDetail"]
    rows = {r["path"]: r for r in report_rows(summary)}
    assert rows["stale.txt"]["action"] == "delete" and rows["stale.txt"]["status"] == "SKIPPED"
    assert "1 copy failed" in rows["stale.txt"]["warning"]
    assert rows["d1/blocked.bin"]["status"] == "FAILED"
    # FINALIZE still applied directory metadata.
    assert {d: os.stat(dst / d).st_mtime_ns for d in ("d0", "d1", "d2")} == dict.fromkeys(("d0", "d1", "d2"), DIR_MTIME_NS)


def test_when_the_failure_is_gone_the_next_run_deletes(trees, store):
    src, dst = trees
    options = {"PreserveDeletedFiles": "REMOVE"}
    assert run_execution(str(src), str(dst), options, store=str(store))["Status"] == "ERROR"
    (dst / "d1" / "blocked.bin" / "in the way").unlink()
    (dst / "d1" / "blocked.bin").rmdir()
    summary = run_execution(str(src), str(dst), options, store=str(store))
    assert summary["Status"] == "SUCCESS", summary["ErrorDetail"]
    assert summary["FilesDeleted"] == 3 and not (dst / "stale.txt").exists() and not (dst / "old").exists()
    assert (dst / "d1" / "blocked.bin").read_bytes() == b"cannot land"


def test_a_shard_that_never_reported_skips_deletions(tmp_path, make_tree, store, report_rows):
    """A shard killed for good (out of retries) wrote no results: its entries count as failed copies."""
    src = make_tree(tmp_path / "src", {f"f{i}.txt": f"file {i}" for i in range(6)})
    dst = make_tree(tmp_path / "dst", {"stale.txt": "not in source"})
    execution = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)),
                              {"PreserveDeletedFiles": "REMOVE", "files_per_shard": 3}, store=str(store))
    shards = engine.prepare(execution)
    assert len(shards) == 2
    engine.transfer(execution, shards[0]["shard"])  # the second shard never runs
    finalized = engine.finalize(execution)
    assert finalized["deleted"] == 0 and finalized["deletions_skipped"] == 1
    assert "1 shard never reported (3 entries not copied)" in finalized["deletions_skipped_because"]
    engine.verify(execution)
    summary = engine.report(execution)
    assert summary["Status"] == "ERROR" and summary["ErrorCode"] == "TransferIncomplete"
    assert (dst / "stale.txt").exists()
    assert summary["FilesVerified"] == 3 and summary["FilesFailedDetail"]["Verify"] == 0


def test_an_entry_refused_in_preparing_also_skips_deletions(tmp_path, make_tree, store):
    """An entry PREPARING refuses (here a name that is not UTF-8; an unreadable directory, which hides
    children that would then look deleted, is the case that matters) makes REMOVE wait too."""
    src = make_tree(tmp_path / "src", {"ok.txt": "ok"})
    with open(os.path.join(os.fsencode(src), b"latin1-\xe9.txt"), "wb") as fh:
        fh.write(b"not utf-8 named")
    dst = make_tree(tmp_path / "dst", {"stale.txt": "old"})
    summary = run_execution(str(src), str(dst), {"PreserveDeletedFiles": "REMOVE"}, store=str(store))
    assert summary["ErrorCode"] == "SourceErrors" and summary["DeletionsSkipped"] == 1
    assert "1 entry was refused in PREPARING" in summary["ErrorDetail"]
    assert summary["FilesFailedDetail"]["Prepare"] == 1
    assert (dst / "stale.txt").exists() and (dst / "ok.txt").read_text() == "ok"


def test_a_failed_shard_still_raises_for_its_own_task(trees, store):
    """TRANSFERRING itself still fails the shard (Airflow retries it; retry_policy decides), per file."""
    src, dst = trees
    execution = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), {}, store=str(store))
    failures = []
    for shard in engine.prepare(execution):
        try:
            engine.transfer(execution, shard["shard"])
        except ShardFailedError as exc:
            failures.append(str(exc))
    assert len(failures) == 1 and "blocked.bin" in failures[0]
