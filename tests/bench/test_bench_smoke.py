"""The benchmark harness runs end to end on a tiny dataset (no timed assertions: speed is `make bench`'s job),
and the pure parts (issue 14's targets, the profile's layering) decide what they should on known input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from bench import profile, report, run
from tests.locations.smb.smbd_server import INSTALL_HINT


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


def test_harness_runs_the_smb_rows_on_a_tiny_dataset(tmp_path):
    """Issue 14's rows: local→SMB (ours and rclone, through a real smbd) and the SMB re-run."""
    if not (shutil.which("smbd") or os.path.exists("/usr/sbin/smbd")):
        pytest.fail(INSTALL_HINT, pytrace=False)
    results = tmp_path / "results"
    rc = run.main(["--profile", "tiny", "--scenarios", "local-smb,rerun-smb", "--tools", "ours,rclone",
                   "--work", str(tmp_path / "work"), "--results-dir", str(results), "--docs", "none"])
    assert rc == 0
    [out] = list(results.glob("*.json"))
    result = json.loads(out.read_text())
    assert "smb" not in result["skipped"]
    rows = {(r["scenario"], r["tool"]): r for r in result["rows"]}
    assert set(rows) == {(s, t) for s in ("local-smb", "rerun-smb") for t in ("ours", "rclone")}
    for row in rows.values():
        assert row["failed_runs"] == 0 and row["ok_runs"] == 1, row
        assert row["cpu_ms_per_file"] > 0
    for tool in ("ours", "rclone"):
        assert rows[("local-smb", tool)]["runs"][0]["dest_files"] == 40
        assert rows[("local-smb", tool)]["runs"][0]["dest_bytes"] == 40 * 4096
    targets = {t["target"]: t for t in result["smb_targets"]}
    assert targets["40 × 4 KiB local→SMB ≤ 1.0 × rclone wall and ≤ 2 ms CPU/file"]["status"] in ("met", "missed")
    assert targets["re-run with nothing changed (40 files on SMB) ≤ 0.5 × rclone"]["status"] in ("met", "missed")
    assert "Targets (issue 14, SMB)" in report.markdown(result)
    assert "secret" not in out.read_text().lower()


# -- issue 14's targets table: report.py is pure, so synthetic rows decide every branch ----------------------
SETTINGS = {"small_count": 5000, "small_size": 4096, "big_count": 2, "big_mib": 500}
SMALL, BIG = "small-5000x4096", "big-2x500MiB"


def _row(scenario: str, dataset: str, tool: str, walls: list[float], cpu: float) -> dict:
    files, size = (5000, 5000 * 4096) if dataset == SMALL else (2, 2 * 500 << 20)
    row = run.Row(scenario, dataset, tool, "", files, size,
                  runs=[{"wall": w, "cpu": cpu, "max_rss": 1, "rc": 0} for w in walls])
    return report._summarise(row)


def _targets(rows: list[dict]) -> dict[str, dict]:
    return {t["target"]: t for t in report.smb_targets(rows, SETTINGS)}


def test_small_file_smb_target_needs_both_the_wall_ratio_and_the_cpu_per_file():
    rows = [_row("local-smb", SMALL, "rclone", [6.0, 6.1, 6.4], 5.0),
            _row("local-smb", SMALL, "ours", [5.5, 5.8, 6.0], 9.0),  # 1.8 ms/file, faster: met
            _row("smb-local", SMALL, "rclone", [6.0], 5.0),
            _row("smb-local", SMALL, "ours", [5.0], 12.5)]  # faster but 2.5 ms/file: missed
    found = _targets(rows)
    met = found["5,000 × 4 KiB local→SMB ≤ 1.0 × rclone wall and ≤ 2 ms CPU/file"]
    assert met["status"] == "met" and met["cpu_ms_per_file"] == 1.8
    assert "5.80 s (5.50–6.00)" in met["detail"] and "1.80 ms/file" in met["detail"]
    missed = found["5,000 × 4 KiB SMB→local ≤ 1.0 × rclone wall and ≤ 2 ms CPU/file"]
    assert missed["status"] == "missed" and missed["ratio"] == 0.83 and "(1 run)" in missed["detail"]


def test_big_file_smb_target_needs_rclone_s_throughput_and_300_mb_s():
    mb = 2 * 500 * 2**20 / 1e6
    rows = [_row("local-smb", BIG, "rclone", [mb / 250], 1.0), _row("local-smb", BIG, "ours", [mb / 280], 1.0),
            _row("smb-local", BIG, "rclone", [mb / 400], 1.0), _row("smb-local", BIG, "ours", [mb / 450], 1.0)]
    found = _targets(rows)
    assert found["2 × 500 MiB local→SMB ≥ rclone's MB/s and ≥ 300 MB/s"]["status"] == "missed"  # under 300
    ok = found["2 × 500 MiB SMB→local ≥ rclone's MB/s and ≥ 300 MB/s"]
    assert ok["status"] == "met" and "450 MB/s" in ok["detail"] and "400 MB/s" in ok["detail"]


def test_smb_s3_rerun_and_unmeasured_targets():
    rows = [_row("smb-s3", SMALL, "rclone", [6.0], 4.0), _row("smb-s3", SMALL, "ours", [6.0], 4.0),
            _row("s3-smb", BIG, "rclone", [3.0], 1.0), _row("s3-smb", BIG, "ours", [3.3], 1.0),
            _row("rerun-smb", SMALL, "rclone", [1.0, 1.2, 1.1], 1.0), _row("rerun-smb", SMALL, "ours", [0.55], 0.5)]
    found = _targets(rows)
    assert found["5,000 × 4 KiB SMB→S3 ≤ 1.0 × rclone"]["status"] == "met"  # equal is within the limit
    assert found["2 × 500 MiB S3→SMB ≤ 1.0 × rclone"]["status"] == "missed"
    assert found["re-run with nothing changed (5,000 files on SMB) ≤ 0.5 × rclone"]["status"] == "met"
    for name in ("2 × 500 MiB SMB→S3 ≤ 1.0 × rclone", "5,000 × 4 KiB S3→SMB ≤ 1.0 × rclone",
                 "5,000 × 4 KiB local→SMB ≤ 1.0 × rclone wall and ≤ 2 ms CPU/file"):
        assert found[name]["status"] == "not measured"
    assert len(found) == 9


def test_profile_charges_waits_and_busy_code_to_their_layers(tmp_path):
    """A real py-spy recording of a script with one thread blocked on an event and one spinning."""
    script = tmp_path / "spin.py"
    script.write_text("import threading\n"
                      "done = threading.Event()\n"
                      "def spin():\n"
                      "    n = 0\n"
                      "    while not done.is_set():\n"
                      "        n += 1\n"
                      "def idle():\n"
                      "    done.wait(1.0)\n"
                      "threads = [threading.Thread(target=spin, name='spinner'), threading.Thread(target=idle, name='idler')]\n"
                      "for t in threads:\n"
                      "    t.start()\n"
                      "threads[1].join()\n"
                      "done.set()\n"
                      "threads[0].join()\n")
    out = tmp_path / "p.json"
    proc = subprocess.run([profile.py_spy_bin(), "record", "-r", "100", "-f", "speedscope", "--idle",
                           "--full-filenames", "-o", str(out), "--", sys.executable, str(script)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = profile.summarise(json.loads(out.read_text()), 100)
    assert summary.self_layer["waiting: threads (locks, events, queues)"] > 0
    # Threads are told apart by what they ran, not by name: py-spy sometimes samples a thread before its
    # name is registered and files it as "(unnamed)" (one run in three here).
    spinning = max(summary.threads.values(), key=lambda group: group["busy"])
    assert spinning["busy"] > 0.8 * spinning["samples"]
    assert all(group["busy"] < 0.2 * group["samples"] for group in summary.threads.values() if group is not spinning)
    assert summary.self_fn[("spin", str(script))] > 0.5 * summary.busy
    text = profile.markdown(summary, title="spin", facts=["synthetic"])
    assert "## By layer" in text and "`spin`" in text


# -- issue 16: the empty-tree row and its targets -----------------------------------------------------------
def test_harness_runs_the_empty_tree_row(tmp_path):
    """Our CLI and rclone over an empty tree into empty folders; the row's target is judged from it."""
    results = tmp_path / "results"
    rc = run.main(["--profile", "tiny", "--scenarios", "empty", "--tools", "ours,rclone,cp", "--work",
                   str(tmp_path / "work"), "--results-dir", str(results), "--docs", "none"])
    assert rc == 0
    [out] = list(results.glob("*.json"))
    result = json.loads(out.read_text())
    rows = {(r["scenario"], r["tool"]): r for r in result["rows"]}
    assert set(rows) == {("empty", "ours"), ("empty", "rclone")}  # cp is no peer of an empty run
    for row in rows.values():
        assert row["failed_runs"] == 0 and row["ok_runs"] == 5 and (row["files"], row["bytes"]) == (0, 0), row
    [empty] = [t for t in result["targets"] if t["target"].startswith("empty-tree run")]
    assert empty["status"] in ("met", "missed") and "rclone copy of the same empty tree" in empty["detail"]
    assert "| empty tree, local → local" in report.markdown(result)


def _issue16(rows: list[dict]) -> dict[str, dict]:
    return {t["target"]: t for t in report.targets(rows, SETTINGS) if "issue 16" in t["target"]}


def test_empty_tree_target_is_the_median_wall_against_its_limit():
    def empty(tool: str, walls: list[float]) -> dict:
        row = run.Row("empty", "empty", tool, "", 0, 0,
                      runs=[{"wall": w, "cpu": w * 0.9, "max_rss": 1, "rc": 0} for w in walls])
        return report._summarise(row)

    name = "empty-tree run ≤ 0.35 s wall (issue 16)"
    assert _issue16([])[name]["status"] == "not measured"
    met = _issue16([empty("ours", [0.30, 0.34, 0.50]), empty("rclone", [0.05])])[name]
    assert met["status"] == "met" and "0.34 s (0.30–0.50)" in met["detail"] and "0.05 s (1 run)" in met["detail"]
    assert _issue16([empty("ours", [0.36])])[name]["status"] == "missed"


def test_issue16_end_to_end_target_sits_beside_issue5s_with_the_airflow_baseline_apart():
    rows = [_row("airflow-e2e", SMALL, "rclone", [10.0], 8.0), _row("airflow-e2e", SMALL, "ours", [18.0], 17.0),
            _row("airflow-e2e", SMALL, "airflow-empty", [12.0], 13.0)]
    found = {t["target"]: t for t in report.targets(rows, SETTINGS)}
    issue5 = found["end to end through Airflow (5,000 files → S3, verify) ≤ 2 × rclone copy + check"]
    issue16 = found["end to end through Airflow (5,000 files → S3, verify) ≤ 1.5 × rclone copy + check (issue 16)"]
    assert (issue5["status"], issue16["status"]) == ("met", "missed") and issue16["ratio"] == 1.8
    assert "doing nothing: 12.00 s, CPU 13.00 s" in issue16["detail"]


def test_airflow_rows_note_the_task_instances_each_dag_ran(tmp_path):
    from bench.run import Row, _net_of_baseline, _task_instances_run

    log = tmp_path / "dags-test.log"
    started = "2026-12-02T02:22:10.032417Z [info     ] Task started                   [airflow.api_fastapi] ti_id=1\n"
    log.write_text(started * 7 + "2026-12-02T02:22:11Z [info     ] Task instance state updated [x]\n")
    assert _task_instances_run(log) == 7 and _task_instances_run(tmp_path / "missing.log") is None

    ours = Row("airflow-e2e", "small", "ours", "", 1, 1, runs=[{"rc": 0, "wall": 18.0, "cpu": 17.0, "task_instances_run": 7}])
    empty = Row("airflow-e2e", "small", "airflow-empty", "", 0, 0,
                runs=[{"rc": 0, "wall": 13.0, "cpu": 12.5, "task_instances_run": 6}])
    (note,) = _net_of_baseline(ours, empty)
    assert note.startswith("net of the empty-DAG baseline (medians): 5.00 s wall, 4.50 s CPU") and \
        note.endswith("task instances run: ours 7, baseline 6"), note
