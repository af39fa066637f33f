"""The benchmark harness runs end to end on a tiny dataset (no timed assertions: speed is `make bench`'s job)."""

from __future__ import annotations

import json

from bench import run


def test_harness_runs_ours_and_rclone_on_a_tiny_dataset(tmp_path):
    results, docs = tmp_path / "results", tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n\ntail\n")
    rc = run.main(["--profile", "tiny", "--scenarios", "local-local,local-s3", "--tools", "ours,rclone",
                   "--work", str(tmp_path / "work"), "--results-dir", str(results), "--docs", str(docs)])
    assert rc == 0
    [out] = list(results.glob("*.json"))
    result = json.loads(out.read_text())
    rows = {(r["scenario"], r["tool"]): r for r in result["rows"]}
    for scenario in ("local-local", "local-s3"):
        for tool in ("ours", "rclone"):
            row = rows[(scenario, tool)]
            assert row["failed_runs"] == 0, row
            assert row["wall_median"] > 0 and all(r["wall"] > 0 for r in row["runs"])
            assert row["runs"][0]["dest_files"] == row["files"] == 40
        assert rows[(scenario, "ours")]["ratio_vs_rclone"] > 0
    assert any(t["target"].startswith("40 × 4 KiB local→S3") for t in result["targets"])
    text = docs.read_text()
    assert "old" not in text and "| local → S3 | small-40x4096 | **ours**" in text and text.endswith("tail\n")
    assert "secret" not in out.read_text().lower()  # credentials only ever live in child environments
