"""A LAUNCHING that refuses its input leaves no execution: the report task says why, without Airflow's
"XCom not found" error or a chained traceback ahead of its message (``dag.test()`` runs the tasks in this
process and their log lines go to stdout, which the test reads)."""

from __future__ import annotations

from tests.airflow.test_sync_dag import load_dag, states


def test_report_after_a_failed_launch_says_why_and_nothing_else(airflow_db, dags_folder, tmp_path, capsys):
    dag = load_dag(dags_folder, "datasync_test_dags.py", "datasync_test_sync")
    missing = tmp_path / "no-such-source"
    capsys.readouterr()

    run = dag.test(run_conf={"source": str(missing), "destination": str(tmp_path / "dst")})

    out = capsys.readouterr().out
    st = states(run)
    assert str(run.state) == "failed", st
    assert st["sync.launch"] == ["failed"] and st["sync.report"] == ["failed"], st
    report_ti = next(ti for ti in run.get_task_instances() if ti.task_id == "sync.report")
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if "Task started" in line and str(report_ti.id) in line)
    report_log = "\n".join(lines[first:])  # the report task ran last: its lines run to the end

    assert "XCom not found" not in out
    assert "LAUNCHING failed" in report_log
    assert f"{missing}" in report_log and "does not exist" in report_log  # the launch's own reason, repeated
    assert report_log.count("Traceback") == 1  # Airflow's one log.exception for a failed task, nothing chained
    assert "The above exception" not in report_log and "During handling" not in report_log


def test_report_operator_takes_the_launch_output_or_a_task_id(airflow_db):
    import pendulum
    from airflow.sdk import DAG

    from airflow_datasync.operators.phases import SyncLaunchOperator, SyncReportOperator

    with DAG("datasync_report_wiring", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        launch = SyncLaunchOperator(task_id="launch", source="/a", destination="/b")
        report = SyncReportOperator(task_id="report", execution=launch.output)
        by_id = SyncReportOperator(task_id="report_by_id", launch_task_id="launch")
    # The XComArg becomes a pull inside execute, keeping the dependency it implied.
    assert report.launch_task_id == "launch" and report.execution is None
    assert report.upstream_task_ids == {"launch"}
    assert by_id.launch_task_id == "launch" and report.trigger_rule == "all_done"
