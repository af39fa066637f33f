"""What a person sees: a real api-server, Airflow's login page, the nav entry "DataSync executions" in the
Airflow UI (our page in its iframe), the execution page and the DAG run tab, in Debian's Chromium.

The execution comes from a real ``dag.test()`` of ``datasync_test_sync`` with one file that cannot be
copied (a directory in its way at the destination), so the page has a failure to put first.
Set ``UPDATE_SCREENSHOTS=1`` to refresh ``docs/images/execution-page.png`` from this run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from airflow_datasync import engine
from airflow_datasync.manifest import utcnow
from tests.airflow.test_sync_dag import latest_report, load_dag, make_tree
from tests.catalog.builders import start_running

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOT = ROOT / "docs" / "images" / "execution-page.png"
PHASES = ["LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING"]


@pytest.fixture(scope="module")
def failed_run(airflow_db, dags_folder, tmp_path_factory):
    """One execution with 10 files, one of which fails: (dag run, report.json)."""
    root = tmp_path_factory.mktemp("browser-run")
    src, dst = root / "src", root / "dst"
    make_tree(src, files=10)
    dst.mkdir()
    (dst / "zero.bin").mkdir()
    dag = load_dag(dags_folder, "datasync_test_dags.py", "datasync_test_sync")
    run = dag.test(run_conf={"source": str(src), "destination": str(dst), "options": {"files_per_shard": 5}})
    report = latest_report(airflow_db / "executions", "test-sync")
    assert report["Status"] == "ERROR" and report["FilesFailed"] == 1
    return run, report


def log_in(page, server, next_path: str) -> None:
    """Through Airflow's own login form, as a person does; Airflow then sets the ``_token`` cookie."""
    page.goto(f"{server.base_url}/auth/login?next={quote(server.base_url + next_path, safe='')}")
    page.locator("input[name=username]").fill(server.username)
    page.locator("input[name=password]").fill(server.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: url.startswith(server.base_url + next_path) and "/auth/" not in url)


def test_anonymous_visitor_is_asked_to_log_in(airflow_server, page):
    response = page.goto(f"{airflow_server.base_url}/datasync/executions")
    assert response.status == 401
    expect(page.get_by_role("heading")).to_have_text("Log in to see DataSync executions")
    expect(page.get_by_role("link", name="Log in to Airflow")).to_have_attribute("href", "/auth/login?" + (
        "next=" + quote(f"{airflow_server.base_url}/datasync/executions", safe="")))


def test_execution_in_the_airflow_ui(airflow_server, page, failed_run):
    run, report = failed_run
    execution_id = report["TaskExecutionId"]
    log_in(page, airflow_server, "/")

    # The nav entry, as a person finds it: Browse → DataSync executions, our page in the UI's iframe.
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="DataSync executions").click()
    page.wait_for_url("**/plugin/datasync**")
    frame = page.frame_locator("iframe")
    expect(frame.get_by_role("heading", name="DataSync executions")).to_be_visible()
    row = frame.locator("tbody tr", has=frame.get_by_role("link", name=execution_id))
    expect(row).to_contain_text("ERROR")
    expect(row).to_contain_text("datasync_test_sync")

    # The execution page, still inside the UI.
    frame.get_by_role("link", name=execution_id).click()
    expect(frame.locator("h1")).to_contain_text(execution_id)
    expect(frame.get_by_role("alert")).to_contain_text("FilesFailed")
    expect(frame.locator("[data-counter=FilesTransferred] .value")).to_have_text(f"{report['FilesTransferred']:,}")
    expect(frame.locator("[data-counter=FilesFailed] .value")).to_have_text("1")
    expect(frame.locator("[data-counter=BytesWritten] .value")).to_have_text(f"{report['BytesWritten'] / 1000:.1f} kB")
    timeline = frame.locator(".timeline")
    for phase in PHASES:
        expect(timeline).to_contain_text(phase)
    first_file = frame.locator("#file-table tbody tr").first
    expect(first_file).to_contain_text("zero.bin")
    expect(first_file).to_contain_text("FAILED")
    expect(first_file).to_contain_text("is a directory at the destination")
    expect(frame.locator("#shards tbody tr")).to_have_count(report["ShardCount"])
    expect(frame.get_by_role("link", name="report.parquet")).to_be_visible()

    # A link into Airflow (the DAG) opens in the UI around the frame, not inside it.
    frame.get_by_role("link", name=run.dag_id).first.click()
    page.wait_for_url(f"{airflow_server.base_url}/dags/{run.dag_id}")
    expect(page.locator("iframe")).to_have_count(0)


def test_execution_page_screenshot(airflow_server, page, failed_run, tmp_path):
    _, report = failed_run
    path = f"/datasync/executions/{report['TaskExecutionId']}"
    log_in(page, airflow_server, path)
    expect(page.locator("#file-table tbody tr").first).to_contain_text("zero.bin")
    shot = tmp_path / "execution-page.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, SCREENSHOT)


def test_dag_run_and_task_instance_tabs_and_extra_links(airflow_server, page, failed_run):
    run, report = failed_run
    execution_id = report["TaskExecutionId"]
    tab = f"/dags/{run.dag_id}/runs/{quote(run.run_id, safe='')}/plugin/datasync_run"
    log_in(page, airflow_server, "/")
    page.goto(f"{airflow_server.base_url}{tab}")
    frame = page.frame_locator("iframe")
    card = frame.locator("section", has=frame.get_by_role("link", name=execution_id))
    expect(card).to_contain_text("ERROR")
    expect(card.locator("[data-counter=FilesFailed] .value")).to_have_text("1")

    # The task instance tab of the failed transfer instance: its shard's row, highlighted.
    failed = next(ti for ti in run.get_task_instances() if ti.task_id == "sync.transfer" and str(ti.state) == "failed")
    page.goto(f"{airflow_server.base_url}/dags/{run.dag_id}/runs/{quote(run.run_id, safe='')}/tasks/sync.transfer/"
              f"mapped/{failed.map_index}/plugin/datasync_task")
    shard_row = page.frame_locator("iframe").locator(f"tr#shard-{failed.map_index}.highlight")
    expect(shard_row).to_contain_text("FAILED")

    # The report task's button, as the UI asks Airflow's REST API for it (the cookie authenticates).
    links = page.request.get(f"{airflow_server.base_url}/api/v2/dags/{run.dag_id}/dagRuns/"
                             f"{quote(run.run_id, safe='')}/taskInstances/sync.report/links")
    assert links.ok, links.text()
    assert links.json()["extra_links"]["DataSync execution"] == f"/datasync/executions/{execution_id}"


def test_running_execution_updates_itself(airflow_server, page, failed_run, tmp_path):
    """The page of a running execution re-reads its live parts while a person watches, then shows the end."""
    run, _ = failed_run
    store = Path(os.environ["AIRFLOW_DATASYNC_MANIFEST_STORE"])
    airflow = {"dag_id": run.dag_id, "run_id": run.run_id, "task_id": "sync.launch", "group_id": "sync",
               "map_index": -1, "try_number": 1}
    ex = start_running(tmp_path, store, task_name="live", airflow=airflow)
    log_in(page, airflow_server, f"/datasync/executions/{ex.execution_id}")
    shard = page.locator("#shard-1")
    expect(shard).to_contain_text("RUNNING")
    expect(shard).to_contain_text("dir1/file-4.txt")

    progress = Path(ex.file("progress/shard-00001.json"))
    update = json.loads(progress.read_text())
    update.update(files_done=8, current=["dir2/file-17.txt"], updated_at=utcnow())
    progress.write_text(json.dumps(update))
    expect(shard).to_contain_text("dir2/file-17.txt", timeout=30_000)  # no reload: the script swapped it in

    for number in range(1, ex.read_json(ex.prepare)["shard_count"]):  # shard 0 was done already
        engine.transfer(ex, number)
    engine.finalize(ex)
    engine.verify(ex)
    engine.report(ex)
    expect(page.locator("#status")).to_contain_text("SUCCESS", timeout=30_000)
    expect(page.locator("body")).to_have_attribute("data-final", "true")
