"""Operator extra links after a real ``dag.test()`` run: the worker stores each link's URL in an XCom
(``_link_<class>``) that the API server shows as the task's buttons."""

from __future__ import annotations

from sqlalchemy import select

from tests.airflow.test_sync_dag import latest_report, make_tree, sync_dag  # noqa: F401 (fixture)


def _links(run) -> dict[tuple[str, int], dict[str, str]]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(select(XComModel.task_id, XComModel.map_index, XComModel.key, XComModel.value).where(
            XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id, XComModel.key.like("_link_%"))).all()
    out: dict[tuple[str, int], dict[str, str]] = {}
    for task_id, map_index, key, value in rows:
        out.setdefault((task_id, map_index), {})[key] = value
    return out


def test_every_phase_links_to_its_execution_and_each_shard_to_its_row(sync_dag, airflow_db, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, files=10)
    dst.mkdir()
    (dst / "zero.bin").mkdir()  # one file fails: links must exist on failed tasks too
    run = sync_dag.test(run_conf={"source": str(src), "destination": str(dst), "options": {"files_per_shard": 5}})
    execution_id = latest_report(airflow_db / "executions", "test-sync")["TaskExecutionId"]
    page = f"/datasync/executions/{execution_id}"

    links = _links(run)
    # Links are computed when a task runs: finalize and verify, upstream_failed here, never ran.
    for phase in ("launch", "prepare", "report"):
        assert links[(f"sync.{phase}", -1)] == {"_link_SyncExecutionLink": page}, phase
    shards = sorted(index for task_id, index in links if task_id == "sync.transfer")
    assert len(shards) >= 3
    states = {ti.map_index: str(ti.state) for ti in run.get_task_instances() if ti.task_id == "sync.transfer"}
    assert "failed" in states.values()
    for index in shards:
        assert links[("sync.transfer", index)] == {"_link_SyncExecutionLink": page,
                                                   "_link_SyncShardLink": f"{page}#shard-{index}"}


def test_no_link_when_launching_failed(sync_dag, tmp_path):
    run = sync_dag.test(run_conf={"source": str(tmp_path / "missing"), "destination": str(tmp_path), "options": {}})
    assert _links(run).get(("sync.launch", -1)) == {"_link_SyncExecutionLink": ""}
