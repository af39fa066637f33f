"""A bad option reaching LAUNCHING at run time fails the launch task at once, without retries, naming the
option and the values it accepts; the report task then says LAUNCHING failed."""

from __future__ import annotations

import pytest

from tests.airflow.test_sync_dag import load_dag, make_tree, states


@pytest.fixture
def params_dag(airflow_db, dags_folder):
    return load_dag(dags_folder, "datasync_params_test_dags.py", "datasync_test_params")


def launch_ti(run):
    return next(ti for ti in run.get_task_instances() if ti.task_id == "sync.launch")


@pytest.mark.parametrize("conf, named", [
    # REST API callers may send DataSync's Options as one object: the form's Param checks never see it.
    ({"options": {"VerifyMode": "FULL"}}, ["VerifyMode='FULL'", "ONLY_FILES_TRANSFERRED", "POINT_IN_TIME_CONSISTENT"]),
    # Each field valid on its own (the form accepts both), the pair refused as DataSync refuses it.
    ({"PreserveDeletedFiles": "REMOVE", "TransferMode": "ALL"}, ["PreserveDeletedFiles=REMOVE", "TransferMode=ALL"]),
], ids=["bad-value-in-conf-options", "bad-combination"])
def test_bad_option_fails_launch_once_without_retries(params_dag, tmp_path, capfd, conf, named):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, files=3)
    dst.mkdir()
    run = params_dag.test(run_conf={"source": str(src), "destination": str(dst), **conf})
    assert str(run.state) == "failed", states(run)
    launch = launch_ti(run)
    assert str(launch.state) == "failed"
    assert launch.max_tries == 3 and launch.try_number == 1  # retries were allowed, none was spent
    assert states(run)["sync.prepare"] == ["upstream_failed"]
    assert list(dst.iterdir()) == []
    log = capfd.readouterr()
    text = log.out + log.err
    line = next(line for line in text.splitlines() if "AirflowFailException: LAUNCHING failed:" in line)
    for part in named:
        assert part in line, line


def test_options_from_params_reach_the_engine(params_dag, airflow_db, tmp_path):
    """The form's fields (names as DataSync's) are the options of the execution: launch.json records them."""
    import json

    from tests.airflow.test_sync_dag import latest_report

    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, files=6)
    (src / "skip.tmp").write_text("excluded")
    dst.mkdir()
    run = params_dag.test(run_conf={"source": str(src), "destination": str(dst), "VerifyMode": "NONE",
                                    "Excludes": ["*.tmp"], "BytesPerSecond": 50_000_000, "files_per_shard": 3,
                                    "ReportLevel": "ERRORS_ONLY"})
    assert str(run.state) == "success", states(run)
    assert not (dst / "skip.tmp").exists() and (dst / "zero.bin").exists()
    report = latest_report(airflow_db / "executions", "test-params")
    assert report["VerifyMode"] == "NONE" and report["DryRun"] is False
    with open(f"{report['ExecutionUri']}/launch.json") as fh:
        options = json.load(fh)["options_dict"]
    assert options["Excludes"] == "*.tmp" and options["BytesPerSecond"] == 50_000_000
    assert options["files_per_shard"] == 3 and options["TaskReportConfig"]["ReportLevel"] == "ERRORS_ONLY"
    assert len(states(run)["sync.transfer"]) >= 3


def test_launch_retry_policy_fails_permanent_errors_and_leaves_others_to_retries():
    import jinja2
    from airflow.sdk import RetryAction

    from airflow_datasync.locations import LocationError
    from airflow_datasync.operators.phases import LAUNCH_RETRY_POLICY
    from airflow_datasync.options import OptionsError

    for error in (OptionsError("VerifyMode='FULL' is invalid"), LocationError("/x does not exist"),
                  jinja2.UndefinedError("'ds' is undefined")):
        assert LAUNCH_RETRY_POLICY.evaluate(error, try_number=1, max_tries=3).action == RetryAction.FAIL, error
    assert LAUNCH_RETRY_POLICY.evaluate(ConnectionError("reset"), try_number=1, max_tries=3).action == RetryAction.DEFAULT
