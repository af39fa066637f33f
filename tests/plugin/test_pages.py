"""The HTML pages through Airflow's real app (``create_app()``) and auth manager, on real executions.

Executions: a ``dag.test()`` run of ``datasync_test_sync`` with a failed file; an engine run whose file
names are HTML (escaping); one caught while TRANSFERRING (live progress); a dry run; one writing to S3 through
a connection whose secret must never appear. Users: ``viewer`` and ``outsider`` (a viewer who may not read
``datasync_test_sync``: tests/plugin/api_auth_manager.py).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec
from airflow_datasync.manifest import MANIFEST_SCHEMA, utcnow
from airflow_datasync.plugin import formatting
from tests.airflow.test_sync_dag import load_dag
from tests.catalog.builders import make_tree, run_sync, start_running
from tests.fixtures_servers import S3_CONN_ID
from tests.plugin.api_auth_manager import DENIED_DAG, DENIED_USER

PREFIX = "/datasync"
ROLES = {"viewer": "VIEWER", DENIED_USER: "VIEWER", "op": "OP"}
HOSTILE = '<img src=x onerror=alert(1)> & "quotes".txt'
OTHER_DAG = {"dag_id": "datasync_test_s3_sync", "run_id": "manual__pages", "task_id": "sync.launch",
             "group_id": "sync", "map_index": -1, "try_number": 1}


def _dry_run(tmp: Path, store: Path) -> str:
    """An execution as a dry run leaves it: LAUNCHING + PREPARING, then a report whose rows say DRY_RUN."""
    src = make_tree(tmp / "dry-src", files=6)
    dst = tmp / "dry-dst"
    dst.mkdir()
    ex = engine.launch(LocationSpec(str(src)), LocationSpec(str(dst)), {}, task_name="dry", store=str(store),
                       airflow={**OTHER_DAG, "run_id": "manual__dry"})
    engine.prepare(ex)
    manifest = ex.read_table(ex.manifest, MANIFEST_SCHEMA)
    rows = manifest.select(["path", "type", "size", "action", "reason", "shard"])
    rows = rows.append_column("status", pa.array(["DRY_RUN"] * rows.num_rows))
    ex.write_table(ex.report_rows, rows, rows.schema)
    prepare = ex.read_json(ex.prepare)
    copies = int(pc.sum(pc.equal(manifest["action"], "copy")).as_py())
    ex.write_json(ex.report, {"TaskExecutionId": ex.execution_id, "TaskName": "dry", "Status": "SUCCESS",
                              "DryRun": True, "StartTime": ex.read_json(ex.launch)["launched_at"], "EndTime": utcnow(),
                              "FilesTransferred": 0, "BytesWritten": 0, "ErrorCode": None, "ErrorDetail": None,
                              "EstimatedFilesToTransfer": prepare["EstimatedFilesToTransfer"],
                              "EstimatedBytesToTransfer": prepare["EstimatedBytesToTransfer"], "Warnings": []})
    assert copies == 7
    return ex.execution_id


@pytest.fixture(scope="module")
def env(tmp_path_factory, airflow_db, dags_folder, s3_server):
    tmp = tmp_path_factory.mktemp("pages")
    store = tmp / "store"
    default_store = Path(os.environ["AIRFLOW_DATASYNC_MANIFEST_STORE"])
    saved = {k: os.environ.get(k) for k in ("AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
                                            "AIRFLOW__DATASYNC__MANIFEST_STORES")}
    os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = "tests.plugin.api_auth_manager.OneDagDeniedAuthManager"
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = ",".join(f"{u}:{r.lower()}" for u, r in ROLES.items())
    os.environ["AIRFLOW__DATASYNC__MANIFEST_STORES"] = f"{store}, {default_store}"

    src, dst = make_tree(tmp / "dag-src", files=10), tmp / "dag-dst"
    (dst / "zero.bin").mkdir(parents=True)
    dag = load_dag(dags_folder, "datasync_test_dags.py", "datasync_test_sync")
    run = dag.test(run_conf={"source": str(src), "destination": str(dst), "options": {"files_per_shard": 5}})
    dag_exec = sorted((default_store / "test-sync").iterdir())[-1].name

    hostile_src = make_tree(tmp / "hostile-src", files=2)
    (hostile_src / HOSTILE).write_text("x")
    hostile = run_sync(hostile_src, tmp / "hostile-dst", store, task_name="hostile", airflow=OTHER_DAG)
    running = start_running(tmp, store, task_name="running", airflow={**OTHER_DAG, "run_id": "manual__running"})
    s3 = s3_server.client()
    s3.create_bucket(Bucket="pages-test")
    to_s3 = run_sync(make_tree(tmp / "s3-src", files=3), "s3://pages-test/data", store, task_name="to-s3",
                     airflow={**OTHER_DAG, "run_id": "manual__s3"}, dst_conn_id=S3_CONN_ID)
    dry = _dry_run(tmp, store)

    from airflow.api_fastapi.app import create_app, get_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    purge_cached_app()
    app = create_app()
    manager = get_auth_manager()
    tokens = {u: manager.generate_jwt(SimpleAuthManagerUser(username=u, role=r)) for u, r in ROLES.items()}
    client = TestClient(app)
    yield {"client": client, "tokens": tokens, "run": run, "dag_exec": dag_exec, "hostile": hostile.execution_id,
           "running": running.execution_id, "s3": to_s3.execution_id, "dry": dry, "secret": s3_server.secret_key}
    client.close()
    purge_cached_app()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def page(env, path: str, user: str = "viewer", **params):
    env["client"].cookies.clear()
    env["client"].cookies.set("_token", env["tokens"][user])  # as the UI's iframe sends it
    response = env["client"].get(PREFIX + path, params=params)
    env["client"].cookies.clear()
    return response


def text_of(html: str) -> str:
    """The page's visible text, roughly: tags dropped, whitespace folded (entities kept as written)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_pages_are_html_that_only_airflow_may_frame(env):
    for path in ("/executions", f"/executions/{env['dag_exec']}", f"/runs/{DENIED_DAG}/{quote(env['run'].run_id)}"):
        response = page(env, path)
        assert response.status_code == 200, (path, response.text[:300])
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["content-security-policy"] == "frame-ancestors 'self'"


def test_executions_list_shows_what_the_user_may_read(env):
    listing = page(env, "/executions").text
    for key in ("dag_exec", "hostile", "running", "dry"):
        assert env[key] in listing, key
    assert "DataSync executions" in listing and "DRY RUN" in listing
    outsider = page(env, "/executions", DENIED_USER).text
    assert env["dag_exec"] not in outsider and env["hostile"] in outsider
    filtered = page(env, "/executions", task_name="running").text
    assert env["running"] in filtered and env["dag_exec"] not in filtered
    assert env["dag_exec"] in page(env, "/executions", status="ERROR").text
    assert env["dag_exec"] not in page(env, "/executions", date="2001-01-01").text


def test_executions_list_pages(env):
    first = page(env, "/executions", dag_id=OTHER_DAG["dag_id"]).text
    total = int(re.search(r"of (\d+)", text_of(first)).group(1))
    assert total >= 4
    from airflow_datasync.plugin import pages

    pages.EXECUTIONS_PER_PAGE, saved = 2, pages.EXECUTIONS_PER_PAGE
    try:
        one = page(env, "/executions", dag_id=OTHER_DAG["dag_id"]).text
        assert "1–2 of" in text_of(one) and "Next →" in one and "← Previous" not in one
        nxt = re.search(r'href="(\?[^"]*offset=2[^"]*)"', one).group(1).replace("&amp;", "&")
        assert "dag_id=datasync_test_s3_sync" in nxt  # the filters stay on the next page
        two = env["client"].get(PREFIX + "/executions" + nxt, cookies={"_token": env["tokens"]["viewer"]}).text
        assert "3–4 of" in text_of(two) and "← Previous" in two
    finally:
        pages.EXECUTIONS_PER_PAGE = saved


def test_execution_page_shows_counters_phases_and_failed_file_first(env):
    html = page(env, f"/executions/{env['dag_exec']}").text
    text = text_of(html)
    for phase in ("LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING"):
        assert phase in text
    assert "FilesFailed" in text and "Entries transferred" in text and "Data written" in text
    first_row = re.search(r'<table id="file-table">.*?<tbody>\s*(<tr.*?</tr>)', html, re.S).group(1)
    assert "zero.bin" in first_row and "FAILED" in first_row and 'class="failed"' in first_row
    assert 'id="shard-0"' in html and "/download/report.parquet" in html
    assert "None" not in text  # a person never reads Python's None


def test_file_browser_filters(env):
    only_copied = page(env, f"/executions/{env['dag_exec']}", file_status="SUCCESS", path_prefix="dir1").text
    rows = re.findall(r'<td class="mono path file-path">([^<]*)</td>', only_copied)
    assert rows and all(r.startswith("dir1") for r in rows)
    assert "zero.bin" not in rows
    assert re.findall(r'<td class="mono path file-path">([^<]*)</td>', page(env, f"/executions/{env['dag_exec']}", q="zero").text) == ["zero.bin"]


def test_everything_from_the_store_is_escaped(env):
    html = page(env, f"/executions/{env['hostile']}").text
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &#34;quotes&#34;.txt" in html


def test_running_execution_shows_live_progress_and_refreshes(env):
    html = page(env, f"/executions/{env['running']}").text
    text = text_of(html)
    assert 'data-final="false"' in html and "DOMParser" in html  # the page re-reads its live parts
    assert "TRANSFERRING" in text and "Progress" in text and "ETA" in text
    assert "dir1/file-4.txt" in text  # the file the running shard copies now
    assert re.search(r'<tr id="shard-1"[^>]*>.*?RUNNING', html, re.S)
    finished = page(env, f"/executions/{env['dag_exec']}").text
    assert 'data-final="true"' in finished and "DOMParser" not in finished


def test_dry_run_says_what_it_would_do(env):
    text = text_of(page(env, f"/executions/{env['dry']}").text)
    assert "DRY RUN" in text and "nothing was written at the destination" in text
    assert "It would copy 7 files" in text
    assert "DRY_RUN" in text


def test_no_secret_on_any_page(env):
    for path in ("/executions", f"/executions/{env['s3']}", f"/runs/{OTHER_DAG['dag_id']}/manual__s3"):
        response = page(env, path)
        assert response.status_code == 200 and env["s3"] in response.text, path
        assert env["secret"] not in response.text, path


def test_run_and_task_tabs(env):
    run_id = env["run"].run_id
    tab = page(env, f"/runs/{DENIED_DAG}/{quote(run_id, safe='')}").text
    assert env["dag_exec"] in tab and "Entries failed" in tab
    shard = page(env, f"/tasks/{DENIED_DAG}/{quote(run_id, safe='')}/sync.transfer/1").text
    assert env["dag_exec"] in shard and re.search(r'<tr id="shard-1" class="highlight">', shard)
    # Airflow leaves {MAP_INDEX} as it is for a task that is not mapped.
    report = page(env, f"/tasks/{DENIED_DAG}/{quote(run_id, safe='')}/sync.report/%7BMAP_INDEX%7D")
    assert report.status_code == 200 and env["dag_exec"] in report.text and 'class="highlight"' not in report.text
    other = page(env, f"/tasks/{DENIED_DAG}/{quote(run_id, safe='')}/unrelated_task/-1").text
    assert env["dag_exec"] not in other and "belongs to no DataSync execution" in other


def test_a_user_who_may_not_read_the_dag_gets_404_on_every_page(env):
    run_id = quote(env["run"].run_id, safe="")
    for path in (f"/executions/{env['dag_exec']}", f"/runs/{DENIED_DAG}/{run_id}",
                 f"/tasks/{DENIED_DAG}/{run_id}/sync.transfer/0"):
        assert page(env, path, DENIED_USER).status_code == 404, path
        assert page(env, path, "viewer").status_code == 200, path
    missing_id = "exec-20200101T000000000000-00000000"
    missing = page(env, f"/executions/{missing_id}", DENIED_USER)
    denied = page(env, f"/executions/{env['dag_exec']}", DENIED_USER)
    assert missing.status_code == denied.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")  # a page in the UI's frame, not JSON
    assert denied.text.replace(env["dag_exec"], "X") == missing.text.replace(missing_id, "X")  # no existence leak


@pytest.mark.parametrize(("value", "text"), [
    (None, "–"), (0, "0 B"), (999, "999 B"), (104_200_000, "104.2 MB"), (1_500, "1.5 kB"), (3.2e12, "3.2 TB")])
def test_bytes_in_units(value, text):
    assert formatting.human_bytes(value) == text


@pytest.mark.parametrize(("ms", "text"), [
    (None, "–"), (12, "12 ms"), (1_234, "1.2 s"), (184_000, "3 min 04 s"), (7_500_000, "2 h 05 min")])
def test_durations_in_units(ms, text):
    assert formatting.human_duration_ms(ms) == text


def test_links_and_views_follow_the_base_url_path(monkeypatch):
    """Behind a proxy serving Airflow under /airflow, every href of the plugin starts with that path."""
    from airflow_datasync.plugin import _external_views
    from airflow_datasync.plugin.urls import execution_path

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://example.com/airflow/")
    hrefs = {view["destination"]: view["href"] for view in _external_views()}
    assert hrefs == {"nav": "/airflow/datasync/executions",
                     "dag_run": "/airflow/datasync/runs/{DAG_ID}/{RUN_ID}",
                     "task_instance": "/airflow/datasync/tasks/{DAG_ID}/{RUN_ID}/{TASK_ID}/{MAP_INDEX}"}
    assert execution_path("exec-1", "shard-3") == "/airflow/datasync/executions/exec-1#shard-3"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080")
    assert execution_path("exec-1") == "/datasync/executions/exec-1"
