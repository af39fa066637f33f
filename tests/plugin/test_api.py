"""The JSON API through Airflow's real FastAPI app (``create_app()``), its auth manager and real executions.

Executions: a ``dag.test()`` run of ``datasync_test_sync`` with a file that fails (a directory in its way at
the destination), an engine run for DAG ``datasync_test_s3_sync`` writing to S3 with a manifest store on S3
(connection with a secret we then look for in every answer), a CLI run (no DAG), a running one, and one with
a 120,000-row report. Users: ``admin``, ``op``, ``viewer`` and ``outsider`` (a viewer who may not read
``datasync_test_sync``: tests/plugin/api_auth_manager.py).
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from tests.catalog.builders import make_tree, run_sync, start_running, write_big_report
from tests.fixtures_servers import S3_CONN_ID
from tests.plugin.api_auth_manager import DENIED_DAG, DENIED_USER
from tests.plugin.executions import failed_dag_run

PREFIX = "/datasync"
ROLES = {"admin": "ADMIN", "op": "OP", "viewer": "VIEWER", DENIED_USER: "VIEWER"}


@pytest.fixture(scope="module")
def env(tmp_path_factory, airflow_db, dags_folder, s3_server, plugin_app):
    """The executions, then Airflow's app configured with our auth manager and their stores (once per module)."""
    tmp = tmp_path_factory.mktemp("api")
    s3 = s3_server.client()
    s3.create_bucket(Bucket="api-test")
    local_store = tmp / "store"
    default_store = Path(os.environ["AIRFLOW_DATASYNC_MANIFEST_STORE"])
    manifest_stores = f"{local_store}, s3://api-test/manifests::{S3_CONN_ID}, {default_store}"

    run, report = failed_dag_run(dags_folder, tmp)
    dag_exec = report["TaskExecutionId"]

    s3_airflow = {"dag_id": "datasync_test_s3_sync", "run_id": "manual__s3", "task_id": "sync.launch",
                  "group_id": "sync", "map_index": -1, "try_number": 1}
    s3_exec = run_sync(make_tree(tmp / "s3-src"), "s3://api-test/data", "s3://api-test/manifests",
                       task_name="to-s3", airflow=s3_airflow, dst_conn_id=S3_CONN_ID, store_conn_id=S3_CONN_ID)
    cli_exec = run_sync(make_tree(tmp / "cli-src"), tmp / "cli-dst", local_store, task_name="cli")
    running = start_running(tmp, local_store, task_name="to-s3", airflow={**s3_airflow, "run_id": "manual__running"})
    big = run_sync(make_tree(tmp / "big-src", files=2), tmp / "big-dst", local_store, task_name="big",
                   airflow={**s3_airflow, "run_id": "manual__big"})
    big_table = write_big_report(big, 120_000)

    app = plugin_app(roles=ROLES, manifest_stores=manifest_stores)
    return {"client": app.client, "tokens": app.tokens, "run": run, "dag_exec": dag_exec,
            "s3_exec": s3_exec.execution_id, "cli_exec": cli_exec.execution_id, "running": running.execution_id, "big": big.execution_id,
            "big_table": big_table, "secret": s3_server.secret_key}


def get(env, path: str, user: str | None = "admin", **params):
    headers = {"Authorization": f"Bearer {env['tokens'][user]}"} if user else {}
    return env["client"].get(PREFIX + path, headers=headers, params=params)


def datasync_app(env):
    mount = next(r for r in env["client"].app.routes if isinstance(r, Mount) and r.path == PREFIX)
    return mount.app.app  # the FastAPI app inside plugin.app.LazyDataSyncApp


def route_urls(env) -> list[str]:
    """One URL per route of our app, path parameters filled with values that exist and may be read."""
    run = env["run"]
    values = {"execution_id": env["dag_exec"], "name": "report.parquet", "dag_id": DENIED_DAG, "run_id": run.run_id,
              "task_id": "sync.transfer", "map_index": "0"}
    urls = []
    for route in datasync_app(env).routes:
        if isinstance(route, APIRoute):
            params = re.findall(r"{(\w+)(?::\w+)?}", route.path)
            assert set(params) <= set(values), (route.path, "a path parameter this test does not know")
            urls.append(re.sub(r"{(\w+)(?::\w+)?}", lambda m: str(values[m.group(1)]), route.path))
        elif isinstance(route, Mount):
            urls.append(route.path + "/anything")  # a mounted app (static files...) must be protected too
        else:
            pytest.fail(f"unexpected route {route!r}")
    return urls


def test_every_route_requires_a_user_and_a_valid_token(env):
    urls = route_urls(env)
    assert {"/api/executions", f"/api/executions/{env['dag_exec']}"} <= set(urls)
    client = env["client"]
    for url in urls:
        client.cookies.clear()
        assert client.get(PREFIX + url).status_code == 401, url
        assert client.get(PREFIX + url, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403, url
        assert client.get(PREFIX + url, cookies={"_token": "not-a-jwt"}).status_code == 403, url
        client.cookies.clear()
        good = client.get(PREFIX + url, headers={"Authorization": f"Bearer {env['tokens']['admin']}"})
        assert good.status_code == 200, (url, good.status_code, good.text[:300])
        client.cookies.set("_token", env["tokens"]["admin"])
        assert client.get(PREFIX + url).status_code == 200, url
        client.cookies.clear()


def test_unauthenticated_pages_link_to_the_login_and_api_answers_json(env):
    client = env["client"]
    client.cookies.clear()
    api = client.get(PREFIX + "/api/executions")
    assert api.status_code == 401 and api.json() == {"detail": "Not authenticated"}
    page = client.get(PREFIX + "/executions")
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    assert "/auth/login" in page.text and "next=" in page.text


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["execution_id"] for item in response.json()["items"]]


def test_listing_shows_each_user_what_they_may_read(env):
    everything = ids(get(env, "/api/executions", "admin", limit=100))
    mine = {env["dag_exec"], env["s3_exec"], env["cli_exec"], env["running"], env["big"]}
    assert mine <= set(everything) and everything == sorted(everything, reverse=True)
    assert set(ids(get(env, "/api/executions", "op", limit=100))) == set(everything)
    # A viewer may read every DAG, but not the executions no DAG launched (those need connection access).
    viewer = set(ids(get(env, "/api/executions", "viewer", limit=100)))
    assert env["cli_exec"] not in viewer and env["dag_exec"] in viewer
    outsider = get(env, "/api/executions", DENIED_USER, limit=100).json()
    assert env["dag_exec"] not in {i["execution_id"] for i in outsider["items"]}
    assert all((i["airflow"] or {}).get("dag_id") not in (DENIED_DAG, None) for i in outsider["items"])
    assert outsider["total"] == len(outsider["items"]) and env["s3_exec"] in {i["execution_id"] for i in outsider["items"]}
    assert ids(get(env, "/api/executions", DENIED_USER, dag_id=DENIED_DAG)) == []


def test_a_user_who_may_not_read_the_dag_gets_404_everywhere(env):
    execution = env["dag_exec"]
    for path in (f"/api/executions/{execution}", f"/api/executions/{execution}/files",
                 f"/api/executions/{execution}/download/report.parquet"):
        denied = get(env, path, DENIED_USER)
        missing = get(env, path.replace(execution, "exec-20200101T000000000000-00000000"), DENIED_USER)
        assert denied.status_code == missing.status_code == 404, path
        assert denied.json()["detail"].replace(execution, "X") == missing.json()["detail"].replace(
            "exec-20200101T000000000000-00000000", "X")
        assert get(env, path, "viewer").status_code == 200, path
    assert get(env, f"/api/executions/{env['cli_exec']}", "viewer").status_code == 404
    assert get(env, f"/api/executions/{env['cli_exec']}", "op").status_code == 200


def test_list_filters_by_task_status_dag_run_task_and_date(env):
    assert ids(get(env, "/api/executions", task_name="cli")) == [env["cli_exec"]]
    run = env["run"]
    assert ids(get(env, "/api/executions", dag_id=DENIED_DAG, run_id=run.run_id)) == [env["dag_exec"]]
    assert ids(get(env, "/api/executions", dag_id=DENIED_DAG, run_id=run.run_id, task_id="sync.transfer")) == [env["dag_exec"]]
    assert env["running"] in ids(get(env, "/api/executions", status="TRANSFERRING"))
    assert env["dag_exec"] in ids(get(env, "/api/executions", status="ERROR"))
    assert env["dag_exec"] not in ids(get(env, "/api/executions", status="SUCCESS", limit=1000))
    assert ids(get(env, "/api/executions", since="2100-01-01T00:00:00Z")) == []
    assert ids(get(env, "/api/executions", until="2000-01-01T00:00:00Z")) == []
    page = get(env, "/api/executions", offset=1, limit=2).json()
    assert len(page["items"]) == 2 and page["offset"] == 1 and page["total"] >= 5
    assert get(env, "/api/executions", limit=100_000).status_code == 422


def test_detail_of_the_dag_run_execution(env):
    detail = get(env, f"/api/executions/{env['dag_exec']}").json()
    assert detail["status"] == "ERROR" and detail["error_code"] == "FilesFailed" and "zero.bin" in detail["error_detail"]
    assert detail["airflow"]["dag_id"] == DENIED_DAG and detail["airflow"]["task_id"] == "sync.launch"
    assert [t["phase"] for t in detail["timeline"]] == ["LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING", "ERROR"]
    assert detail["timeline"][2]["state"] == "FAILED"
    states = {s["state"] for s in detail["shards"]}
    assert states == {"SUCCESS", "FAILED"} and all(s["files"] > 0 for s in detail["shards"])
    assert detail["counters"]["FilesFailed"] == 1


def test_detail_of_a_running_execution_shows_live_progress(env):
    detail = get(env, f"/api/executions/{env['running']}").json()
    assert detail["status"] == "TRANSFERRING" and detail["running"] is True
    assert detail["progress"]["shards_running"] == 1 and detail["progress"]["eta_seconds"] > 0
    assert [s["state"] for s in detail["shards"]][:2] == ["SUCCESS", "RUNNING"]


def test_files_list_the_failed_file_first_then_page(env):
    page = get(env, f"/api/executions/{env['dag_exec']}/files", limit=3).json()
    assert page["items"][0]["path"] == "zero.bin" and page["items"][0]["status"] == "FAILED"
    assert page["total"] == 14 and len(page["items"]) == 3
    assert [r["path"] for r in get(env, f"/api/executions/{env['dag_exec']}/files", q="file-1").json()["items"]] == [
        "dir1/file-1.txt"]
    assert get(env, f"/api/executions/{env['dag_exec']}/files", action="mkdir").json()["total"] == 3


def test_files_page_and_filter_a_large_report(env):
    table = env["big_table"]
    paths, statuses, actions = (table[c].to_pylist() for c in ("path", "status", "action"))
    failed = [p for p, s in zip(paths, statuses) if s == "FAILED"]
    reference = failed + [p for p, s in zip(paths, statuses) if s != "FAILED"]
    url = f"/api/executions/{env['big']}/files"
    for offset in (0, 100, 60_000, 119_950):
        page = get(env, url, offset=offset, limit=100).json()
        assert page["total"] == 120_000 and [r["path"] for r in page["items"]] == reference[offset:offset + 100]
    copies = [p for p, a in zip(paths, actions) if a == "copy" and p.startswith("d5/")]
    page = get(env, url, action="copy", path_prefix="d5/", failed_first="false", offset=1000, limit=50).json()
    assert page["total"] == len(copies) and [r["path"] for r in page["items"]] == copies[1000:1050]
    page = get(env, url, status="FAILED", q="d2/", limit=1000).json()
    assert [r["path"] for r in page["items"]] == [p for p in failed if "d2/" in p]
    assert get(env, url, limit=5000).status_code == 422


def test_download_streams_only_the_parquet_files(env):
    response = get(env, f"/api/executions/{env['big']}/download/report.parquet")
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    assert pq.read_table(io.BytesIO(response.content)).num_rows == 120_000
    manifest = get(env, f"/api/executions/{env['s3_exec']}/download/manifest.parquet")  # from the S3 store
    assert manifest.status_code == 200 and pq.read_table(io.BytesIO(manifest.content)).num_rows > 0
    for name in ("launch.json", "report.json", "prepare.json", "shards", "verify.parquet.tmp"):
        assert get(env, f"/api/executions/{env['big']}/download/{name}").status_code == 404, name
    # A file its execution has not written (still running; a failed shard no longer keeps VERIFYING from running).
    assert get(env, f"/api/executions/{env['running']}/download/verify.parquet").status_code == 404


def test_no_secret_in_any_answer(env):
    secret = env["secret"]
    answers: list[Any] = [get(env, "/api/executions", limit=1000).text]
    for execution in (env["s3_exec"], env["dag_exec"], env["running"], env["cli_exec"]):
        answers.append(get(env, f"/api/executions/{execution}").text)
        answers.append(get(env, f"/api/executions/{execution}/files", limit=1000).text)
        for name in ("report.parquet", "manifest.parquet", "verify.parquet"):
            answer = get(env, f"/api/executions/{execution}/download/{name}")
            answers.append(answer.content.decode("latin-1"))
    s3_detail = json.loads(answers[1])
    assert s3_detail["destination"] == "s3://api-test/data" and s3_detail["status"] == "SUCCESS"
    assert s3_detail["store"] == "s3://api-test/manifests"
    assert [i for i, text in enumerate(answers) if secret in text] == []
    # Nor the launch record's connection ids and options (they stay in the store).
    assert [i for i, text in enumerate(answers[:2]) if "conn_id" in text or "options_dict" in text] == []


def test_a_token_from_airflow_login_route_reads_the_api(env):
    """The docs' example: POST /auth/token with a simple-auth-manager user, then the token on our API."""
    from tests.plugin.api_auth_manager import OneDagDeniedAuthManager

    password = OneDagDeniedAuthManager.get_passwords()["viewer"]
    client = env["client"]
    client.cookies.clear()
    login = client.post("/auth/token", json={"username": "viewer", "password": password})
    assert login.status_code == 201, login.text
    token = login.json()["access_token"]
    client.cookies.clear()
    answer = client.get(PREFIX + "/api/executions", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and env["dag_exec"] in {i["execution_id"] for i in answer.json()["items"]}
    client.cookies.clear()
