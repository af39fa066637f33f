"""Issue 16's mounted-file-system rows (bench/mounts.py) run end to end through a real FUSE mount
(bench/delayed_fs.py, a passthrough adding a delay per operation): the copies land whole, and the mount's
operations are counted per run (no timed assertions)."""

from __future__ import annotations

import json
import os

import pytest

from bench import mounts, run

FUSE_VENV = run.REPO / "bench" / "work" / "fuse-venv"


def test_mount_rows_copy_through_a_delayed_fuse_mount_and_count_its_operations(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    if not (FUSE_VENV / "bin" / "python").exists():
        pytest.fail("the FUSE server's venv is missing: run `make fuse-mount` (Debian fuse3, PyPI mfusepy)",
                    pytrace=False)
    os.symlink(FUSE_VENV, work / "fuse-venv")
    results = tmp_path / "results"
    rc = run.main(["--profile", "tiny", "--scenarios", ",".join(mounts.SCENARIOS), "--tools", "ours,cp",
                   "--work", str(work), "--results-dir", str(results), "--docs", "none"])
    assert rc == 0
    [out] = list(results.glob("*.json"))
    result = json.loads(out.read_text())
    assert "mount" not in result["skipped"], result["skipped"]
    rows = {(r["scenario"], r["tool"]): r for r in result["rows"]}
    for scenario in mounts.SCENARIOS:
        for tool in ("ours", "cp"):
            row = rows[(scenario, tool)]
            assert row["failed_runs"] == 0, row
            first = row["runs"][0]
            assert first["dest_files"] == row["files"] == 40 and first["dest_bytes"] == row["bytes"], row
            ops = first["mount_ops_by_kind"]
            if scenario == "local-mount":  # every file was created on the mount, once
                assert ops.get("create", 0) >= 40, ops
            else:  # every file was read through the mount
                assert ops.get("open", 0) >= 40 and ops.get("read", 0) >= 40, ops
            assert first["mount_ops"] == sum(ops.values()) and first["mount_server_cpu"] >= 0
    assert not os.path.ismount(work / "mnt") and not (work / "mount-backing").exists()
