"""The shipped example DAGs run as users will run them."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.airflow.test_sync_dag import load_dag, make_tree, states, tree


def test_example_migration_dag_with_trigger_form_options(airflow_db, dags_folder, tmp_path):
    """Params drive the run: REMOVE deletes only what the source lost; Excludes keep files out and alive."""
    dag = load_dag(dags_folder, "example_datasync_migration.py", "example_datasync_migration")
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, files=12)
    dst.mkdir()
    (dst / "stale.txt").write_text("not in the source")
    (dst / "keep.tmp").write_text("excluded, so never deleted")
    (src / "scratch.tmp").write_text("excluded, so never copied")
    # The trigger form's fields (datasync_params): one per option, with DataSync's names.
    options = {"PreserveDeletedFiles": "REMOVE", "Excludes": ["*.tmp"], "VerifyMode": "POINT_IN_TIME_CONSISTENT",
               "files_per_shard": 4}
    run = dag.test(run_conf={"source": str(src), "destination": str(dst), **options})
    assert str(run.state) == "success", states(run)
    assert not (dst / "stale.txt").exists()
    assert (dst / "keep.tmp").read_text() == "excluded, so never deleted"
    assert not (dst / "scratch.tmp").exists()
    expected = {k: v for k, v in tree(src).items() if not k.endswith(".tmp")}
    assert {k: v for k, v in tree(dst).items() if not k.endswith(".tmp")} == expected
    runs = sorted((airflow_db / "executions" / "example-migration").iterdir())
    report = json.loads((runs[-1] / "report.json").read_text())
    assert report["FilesDeleted"] == 1 and report["Status"] == "SUCCESS"
    assert report["FilesVerified"] == len(expected)  # POINT_IN_TIME_CONSISTENT checks every entry in scope


@pytest.mark.parametrize("logical_date", [dt.datetime(2026, 11, 3, tzinfo=dt.UTC), None])
def test_backfill_dag_paths_follow_the_run_date_even_without_logical_date(
        airflow_db, dags_folder, tmp_path, monkeypatch, logical_date):
    """The day's folder exists and is settled: the quiet sensor lets the sync run once it stayed unchanged."""
    monkeypatch.setenv("AIRFLOW_DATASYNC_DEMO_ROOT", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_DATASYNC_DEMO_QUIET_SECONDS", "1")
    dag = load_dag(dags_folder, "example_datasync_backfill.py", "example_datasync_backfill")
    run_after = dt.datetime(2026, 11, 4, 6, tzinfo=dt.UTC)
    day = (logical_date or run_after).strftime("%Y-%m-%d")
    src = tmp_path / "daily" / "source" / day
    make_tree(src, files=5)
    (tmp_path / "daily" / "destination").mkdir(parents=True)
    run = dag.test(logical_date=logical_date, run_after=run_after)
    assert str(run.state) == "success", states(run)
    assert states(run)["wait_for_day"] == ["success"]
    assert tree(tmp_path / "daily" / "destination" / day) == tree(src)


def test_example_migration_runs_green_in_a_fresh_airflow(airflow_db, dags_folder, tmp_path, monkeypatch):
    """Unpaused with nothing set up, the example writes its small sample source and syncs it."""
    root = tmp_path / "demo-root"
    monkeypatch.setenv("AIRFLOW_DATASYNC_DEMO_ROOT", str(root))
    dag = load_dag(dags_folder, "example_datasync_migration.py", "example_datasync_migration")
    run = dag.test()
    assert str(run.state) == "success", states(run)
    assert len(tree(root / "source")) > 100
    assert tree(root / "destination") == tree(root / "source")


def test_backfill_dag_says_what_to_set_when_the_source_root_is_missing(airflow_db, dags_folder, tmp_path, monkeypatch,
                                                                      capfd):
    monkeypatch.setenv("AIRFLOW_DATASYNC_DEMO_ROOT", str(tmp_path))
    dag = load_dag(dags_folder, "example_datasync_backfill.py", "example_datasync_backfill")
    run = dag.test(logical_date=dt.datetime(2026, 11, 5, tzinfo=dt.UTC))
    assert str(run.state) == "failed"
    check = next(ti for ti in run.get_task_instances() if ti.task_id == "check_source_root")
    assert str(check.state) == "failed" and check.try_number == 1
    out = capfd.readouterr()
    message = next(line for line in (out.out + out.err).splitlines() if "AirflowFailException:" in line)
    assert "AIRFLOW_DATASYNC_DEMO_ROOT" in message and "<root>/daily/source/<YYYY-MM-DD>" in message
    assert f"{tmp_path}/daily/source/2026-11-05" in message
