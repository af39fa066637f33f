"""``make demo``: a real migration end to end on the embedded default (SQLite, local folders).

Generates a sample tree, migrates the project-local Airflow DB, runs the example DAG with
``airflow dags test`` (every phase is a real Airflow task; shards are mapped task instances), prints the
execution report, then runs it again to show an incremental run that transfers nothing.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from airflow_datasync.progress import progress_line
from airflow_datasync.report_text import format_bytes, format_duration, render
from airflow_datasync.wording import counted

ROOT = Path.cwd()
DATA = ROOT / "demo-data"
SOURCE, DESTINATION = DATA / "source", DATA / "destination"
STORE = Path(os.environ.get("AIRFLOW_DATASYNC_MANIFEST_STORE", ROOT / ".airflow" / "datasync" / "executions"))
TASK_NAME = "example-migration"
NAMES = ["report", "données", "日本語", "naïve café", "emoji 🚀", "with space", "UPPER", "a-b_c.d"]


def generate(root: Path, files: int = 3000, seed: int = 7, large_files: int = 3) -> tuple[int, int]:
    """A deterministic tree: nested dirs, empty files and dirs, ``large_files`` of 24 MiB, unicode names."""
    rng = random.Random(seed)
    total, first = 0, root
    for i in range(files):
        depth = rng.randint(0, 3)
        parts = [f"{rng.choice(NAMES)} {level}" for level in range(depth)]
        path = root.joinpath(*parts, f"{rng.choice(NAMES)}-{i:05d}.{rng.choice(['txt', 'csv', 'bin', 'json'])}")
        path.parent.mkdir(parents=True, exist_ok=True)
        first = path if i == 0 else first
        size = 0 if i % 50 == 0 else int(rng.lognormvariate(8, 1.5)) % (2 << 20)
        path.write_bytes(rng.randbytes(size))
        total += size
    for i in range(large_files):
        big = root / "large" / f"video-{i}.raw"
        big.parent.mkdir(parents=True, exist_ok=True)
        big.write_bytes(rng.randbytes(24 << 20))
        total += 24 << 20
    for i in range(5):
        (root / "empty dirs" / f"empty-{i}").mkdir(parents=True, exist_ok=True)
    (root / "latest.csv").symlink_to("large/video-0.raw" if large_files else first.relative_to(root))
    return files + large_files, total


def airflow(*args: str, log: Path | None = None) -> int:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    cmd = [str(Path(sys.executable).parent / "airflow"), *args]
    if log is None:
        return subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT).returncode
    with open(log, "w") as fh:
        return subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode


def tasks_run(log: Path) -> str:
    """The task instances `airflow dags test` ran, from its log: the phases, with mapped shards counted."""
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if "[DAG TEST] end task task_id=" in line:
            task = line.split("task_id=", 1)[1].split()[0]
            counts[task] = counts.get(task, 0) + 1
    return " → ".join(f"{t} ×{n}" if n > 1 else t for t, n in counts.items())


def latest_report() -> dict:
    runs = sorted((STORE / TASK_NAME).iterdir())
    return json.loads((runs[-1] / "report.json").read_text())


def shard_lines(report: dict) -> list[str]:
    """Each shard's last progress snapshot (what the UI showed while it ran), one line a shard."""
    folder = Path(report["ExecutionUri"]) / "progress"
    snapshots = [json.loads(p.read_text()) for p in sorted(folder.glob("shard-*.json"))] if folder.is_dir() else []
    return ["  " + progress_line(s) for s in snapshots]


def run(label: str, n: int, conf: dict) -> dict:
    log = DATA / f"airflow-dags-test-{n}.log"
    t0 = time.monotonic()
    rc = airflow("dags", "test", "example_datasync_migration", "--conf", json.dumps(conf), log=log)
    took = time.monotonic() - t0
    report = latest_report()
    print(f"\n=== {label}: `airflow dags test` exit {rc} in {format_duration(took * 1000)} (Airflow log: {log.relative_to(ROOT)})")
    print("  Airflow tasks run: " + tasks_run(log))
    print("\n".join(shard_lines(report)))
    print(render(report))
    if rc != 0 or report["Status"] != "SUCCESS":
        sys.exit(f"demo failed: see {log}")
    return report


def main() -> None:
    shutil.rmtree(DATA, ignore_errors=True)
    SOURCE.mkdir(parents=True)
    os.environ.setdefault("AIRFLOW_DATASYNC_DEMO_ROOT", str(DATA))
    t0 = time.monotonic()
    files, size = generate(SOURCE)
    print(f"generated {counted(files, 'file')} ({format_bytes(size)}) under {SOURCE.relative_to(ROOT)} "
          f"in {format_duration((time.monotonic() - t0) * 1000)}")
    print("migrating the Airflow metadata DB (SQLite in .airflow/) ...")
    if airflow("db", "migrate") != 0:
        sys.exit("airflow db migrate failed")
    # The trigger form's field names (airflow_datasync.params.datasync_params).
    conf = {"source": str(SOURCE), "destination": str(DESTINATION),
            "VerifyMode": "ONLY_FILES_TRANSFERRED", "files_per_shard": 1000}
    first = run("first run: everything is new", 1, conf)
    second = run("second run: nothing changed", 2, conf)
    assert second["FilesTransferred"] == 0 and second["FilesSkipped"] == first["FilesPrepared"], second
    print(f"\nsecond run transferred {counted(second['FilesTransferred'], 'entry', 'entries')} and skipped "
          f"{counted(second['FilesSkipped'], 'entry', 'entries')}: "
          f"the destination is in sync. Execution records: {STORE.relative_to(ROOT) if STORE.is_relative_to(ROOT) else STORE}")


if __name__ == "__main__":
    main()
