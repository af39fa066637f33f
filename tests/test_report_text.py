"""The text report a person reads (demo, CLI, report task log), rendered from the summaries of real runs."""

from __future__ import annotations

import re

import pytest

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.phases.transfer import ShardFailedError
from airflow_datasync.report_text import MAX_WARNINGS, format_bytes, format_duration, format_summary, render
from airflow_datasync.units import counted

DURATION = r"\d[\d,.]* (ms|s|min)"


def write(root, files: dict[str, bytes]):
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_a_real_run_renders_phases_in_units_counters_with_labels_and_no_none(tmp_path):
    src = write(tmp_path / "src", {"a.bin": b"a" * 1_500_000, "d/b.txt": b"b" * 2000, "d/c.txt": b""})
    summary = run_execution(str(src), str(tmp_path / "dst"), {}, store=str(tmp_path / "store"))
    text = render(summary)

    assert "None" not in text
    assert re.search(rf"LAUNCHING → PREPARING {DURATION} → TRANSFERRING {DURATION} → VERIFYING {DURATION} → SUCCESS",
                     text), text
    assert re.search(rf"Total duration +{DURATION}", text)
    assert "Entries transferred (files, directories, symlinks)  4" in text  # 3 files and directory d
    assert re.search(r"Bytes written +1\.5 MB", text)  # 1,502,000 bytes, decimal units
    assert re.search(r"Entries skipped \(already in sync\) +0", text)
    assert re.search(r"Verified files \(checksums compared\) +3 \(VerifyMode ONLY_FILES_TRANSFERRED\)", text)
    assert re.search(r"Shards +1 of 1 shard completed", text)
    assert "4 entries transferred (1.5 MB), 0 skipped, 0 deleted, 3 verified, 0 failed" in text
    assert re.search(rf"Source +{re.escape(str(src))}\n", text) and summary["ReportUri"] in text
    assert "Warnings" not in text and "Error code" not in text
    assert format_summary(summary).startswith("SUCCESS: 4 entries transferred (1.5 MB)")


def test_singular_forms_for_one_entry(tmp_path):
    src = write(tmp_path / "src", {"only.txt": b"x" * 10})
    summary = run_execution(str(src), str(tmp_path / "dst"), {"VerifyMode": "NONE"}, store=str(tmp_path / "store"))
    text = render(summary)
    assert "1 entry transferred (10 B)" in text and "1 entries" not in text
    assert "VERIFYING skipped (VerifyMode NONE)" in text


def test_a_rerun_with_nothing_to_copy_says_so(tmp_path):
    src = write(tmp_path / "src", {"a.txt": b"a" * 10, "b.txt": b"b" * 20})
    run_execution(str(src), str(tmp_path / "dst"), {}, store=str(tmp_path / "store"))
    again = render(run_execution(str(src), str(tmp_path / "dst"), {}, store=str(tmp_path / "store")))
    assert "0 entries transferred (0 B), 2 skipped" in again
    assert re.search(rf"TRANSFERRING {DURATION} \(nothing to copy\)", again)
    assert re.search(r"Shards +none \(nothing to copy\)", again) and "0 of 0" not in again


def test_a_failed_run_shows_its_error_and_the_phases_that_did_not_run(tmp_path):
    src = write(tmp_path / "src", {"keep.txt": b"k" * 100, "gone.txt": b"g" * 100})
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(tmp_path / "dst")), {}, store=str(tmp_path / "store"))
    shards = engine.prepare(ex)
    (src / "gone.txt").unlink()  # vanishes after PREPARING: the shard fails, VERIFYING never runs
    with pytest.raises(ShardFailedError):
        engine.transfer(ex, shards[0]["shard"])
    summary = engine.report(ex)
    text = render(summary)

    assert summary["Status"] == "ERROR" and "None" not in text
    assert "DataSync execution" in text and ": ERROR" in text.splitlines()[0]
    assert re.search(r"Error code +FilesFailed", text)
    assert re.search(r"Error detail +1 (entry|entries) failed to transfer, e\.g\. gone\.txt: vanished", text), text
    assert re.search(r"\n {18}deletions and directory metadata were not applied", text), text  # one line a problem
    assert "VERIFYING not run" in text
    assert re.search(r"Failed \(transfer, source, delete or verify\) +1", text)
    assert format_summary(summary).startswith("ERROR: 1 entry transferred (100 B)")
    assert "; FilesFailed: " in format_summary(summary)


def test_every_warning_is_listed_or_counted(tmp_path):
    src = write(tmp_path / "src", {"a.txt": b"a"})
    summary = run_execution(str(src), str(tmp_path / "dst"), {}, store=str(tmp_path / "store"))
    few = render({**summary, "Warnings": ["first problem", "second problem"]})
    assert "Warnings (2)\n  1. first problem\n  2. second problem" in few
    many = render({**summary, "Warnings": [f"problem {i}" for i in range(MAX_WARNINGS + 7)]})
    assert f"  {MAX_WARNINGS}. problem {MAX_WARNINGS - 1}" in many
    assert "… and 7 more" in many and f"problem {MAX_WARNINGS}\n" not in many


def test_a_dry_run_summary_says_nothing_was_written(tmp_path):
    src = write(tmp_path / "src", {"a.txt": b"a" * 2000, "b.txt": b"b" * 3000})
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(tmp_path / "dst")), {}, store=str(tmp_path / "store"))
    engine.prepare(ex)
    # The shape a dry run reports (LAUNCHING + PREPARING only; the params helper's option writes it).
    summary = {**engine.report(ex), "DryRun": True, "Status": "SUCCESS", "ErrorCode": None, "ErrorDetail": None}
    text = render(summary)
    assert "DRY RUN — nothing was written" in text and "None" not in text
    assert re.search(r"Would transfer \(files, directories, symlinks\) +2 entries, 5\.0 kB", text)
    assert re.search(r"Would skip \(already in sync\) +0 entries", text)
    assert re.search(r"Would delete +0 entries", text)
    assert "TRANSFERRING and VERIFYING not run" in text and "Entries transferred" not in text
    assert format_summary(summary).startswith("DRY RUN: would transfer 2 entries (5.0 kB)")


@pytest.mark.parametrize("count, text", [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (104_200_000, "104.2 MB"),
                                         (3 << 30, "3.2 GB"), (999_960, "1.0 MB"), (None, "—")])
def test_bytes_in_decimal_units(count, text):
    assert format_bytes(count) == text


@pytest.mark.parametrize("ms, text", [(0, "0 ms"), (850, "850 ms"), (1234, "1.2 s"), (125_000, "2 min 5 s"),
                                      (120_000, "2 min"), (3_720_000, "1 h 2 min"), (999.6, "1.0 s"), (59_960, "1 min"),
                                      (200 * 3_600_000, "8 d 8 h"), (None, "—")])
def test_durations_in_units(ms, text):
    assert format_duration(ms) == text


def test_plural():
    assert (counted(1, "entry", "entries"), counted(2, "entry", "entries"), counted(1000, "shard")) == (
        "1 entry", "2 entries", "1,000 shards")
