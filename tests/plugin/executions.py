"""Executions the plugin's tests show, made by Airflow itself."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.airflow.test_sync_dag import latest_report, load_dag
from tests.catalog.builders import make_tree


def failed_dag_run(dags_folder: Path, root: Path) -> tuple[Any, dict]:
    """A real ``dag.test()`` of ``datasync_test_sync`` (the whole task group, mapped shards) over the 10 files
    of tests/catalog/builders.py and ``zero.bin``, which fails (a directory in its way at the destination).

    Answers (the DAG run, its report.json). The API, page and browser tests all show it: a failure to put
    first, a shard to highlight."""
    src, dst = make_tree(root / "dag-src", files=10), root / "dag-dst"
    (dst / "zero.bin").mkdir(parents=True)
    dag = load_dag(dags_folder, "datasync_test_dags.py", "datasync_test_sync")
    run = dag.test(run_conf={"source": str(src), "destination": str(dst), "options": {"files_per_shard": 5}})
    report = latest_report(Path(os.environ["AIRFLOW_DATASYNC_MANIFEST_STORE"]), "test-sync")
    assert str(run.state) == "failed" and report["Status"] == "ERROR" and report["FilesFailed"] == 1
    return run, report
