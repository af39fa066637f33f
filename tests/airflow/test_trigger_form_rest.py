"""Trigger-time validation through Airflow's real REST API (``create_app()``): the form's Params refuse a
bad option before a run exists; a good conf creates the run."""

from __future__ import annotations

import pytest

from tests.airflow.test_sync_dag import load_dag


@pytest.fixture
def api(airflow_db, dags_folder, tmp_path):
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    # dag.test() stores the DAG (model and serialized form) in the metadata DB, as the DAG processor would.
    dag = load_dag(dags_folder, "example_datasync_migration.py", "example_datasync_migration")
    (tmp_path / "src").mkdir()
    dag.test(run_conf={"source": str(tmp_path / "src"), "destination": str(tmp_path / "dst"), "dry_run": True})
    client = TestClient(create_app())
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def test_rest_trigger_refuses_a_bad_option_and_accepts_the_form_names(api, tmp_path):
    url = "/api/v2/dags/example_datasync_migration/dagRuns"
    bad = api.post(url, json={"logical_date": None, "conf": {"VerifyMode": "FULL"}})
    assert bad.status_code == 400, bad.text
    assert "VerifyMode" in bad.text and "FULL" in bad.text
    good = api.post(url, json={"logical_date": None, "conf": {"source": str(tmp_path), "VerifyMode": "NONE",
                                                              "dry_run": True, "Excludes": ["*.tmp"]}})
    assert good.status_code == 200, good.text
    assert good.json()["conf"]["VerifyMode"] == "NONE"
