"""Airflow runs the sync DAG (``dag.test()``): mapped transfer instances get their readable label while
they run (Airflow renders ``map_index_template`` before execute()), and record their try number."""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from pathlib import Path

import pytest


def load_dag(dags_folder: Path, filename: str, dag_id: str):
    spec = importlib.util.spec_from_file_location(filename.removesuffix(".py"), dags_folder / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(v for v in vars(module).values() if getattr(v, "dag_id", None) == dag_id and hasattr(v, "test"))


@pytest.fixture
def sync_dag(airflow_db, dags_folder):
    return load_dag(dags_folder, "datasync_test_dags.py", "datasync_test_sync")


def transfer_rows(run_id: str) -> list[tuple[int, str, str | None]]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance.map_index, TaskInstance.state, TaskInstance.rendered_map_index).filter(
            TaskInstance.task_id == "sync.transfer", TaskInstance.run_id == run_id).all()
        return [(m, str(s), r) for m, s, r in rows]


def running_transfers() -> list[tuple[str, int, str | None]]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        rows = session.query(TaskInstance.run_id, TaskInstance.map_index, TaskInstance.rendered_map_index).filter(
            TaskInstance.task_id == "sync.transfer", TaskInstance.state == TaskInstanceState.RUNNING).all()
        return [tuple(r) for r in rows]


def test_running_shard_shows_its_label_and_records_its_try(sync_dag, airflow_db, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "small").mkdir(parents=True)
    for i in range(3):
        (src / "small" / f"f{i}.txt").write_bytes(b"%d" % i * 100)
    (src / "big.bin").write_bytes(os.urandom(3 << 20))
    # 4 MB/s over parallel_shards=4 is 1 MB/s a shard: big.bin's shard runs ~3 s, long enough to be seen running.
    conf = {"source": str(src), "destination": str(dst), "options": {"files_per_shard": 2, "BytesPerSecond": 4 << 20}}

    seen_running: list[tuple[str, int, str | None]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            seen_running.extend(r for r in running_transfers() if r not in seen_running)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = sync_dag.test(run_conf=conf)
    finally:
        stop.set()
        watcher.join()
    assert str(run.state) == "success"

    rows = sorted(transfer_rows(run.run_id))
    executions = sorted((airflow_db / "executions" / "test-sync").iterdir())
    execution = executions[-1]
    shards = {s["shard"]: s for s in (json.loads(p.read_text()) for p in (execution / "shards").glob("*.json"))}
    assert len(rows) == len(shards) >= 3
    for map_index, state, label in rows:
        assert state == "success"
        assert label is not None and label.startswith(f"shard {map_index} · ")
        assert label.endswith(" B") or label.endswith(" kB") or label.endswith(" MB")
    labels = [label for _, _, label in rows]
    assert any(" · 1 entry · " in label for label in labels) or any(" · 2 entries · " in label for label in labels)
    assert any(label.endswith(" · 3.1 MB") for label in labels), labels  # big.bin: 3,145,728 bytes

    # Seen in the metadata DB while the instance was still RUNNING: the label was sent before execute() ended.
    early = [label for run_id, _, label in seen_running if run_id == run.run_id and label]
    assert any(label.endswith(" · 3.1 MB") for label in early), seen_running

    assert {s["try_number"] for s in shards.values()} == {1}
    progress = [json.loads(p.read_text()) for p in (execution / "progress").glob("shard-*.json")]
    assert len(progress) == len(shards) and {p["state"] for p in progress} == {"SUCCESS"}
    assert {p["try_number"] for p in progress} == {1}
