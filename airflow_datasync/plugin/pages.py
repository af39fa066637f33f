"""HTML pages of the DataSync UI, served at the root of the plugin app (``/datasync/...``).

- ``/executions``: every execution the user may see, newest first, filtered and paged (the nav entry);
- ``/executions/{execution_id}``: one execution as the AWS DataSync console shows a task execution: status,
  counters, the phase timeline, live progress, shards and the per-file report, failed files first;
- ``/runs/{dag_id}/{run_id}``: the DAG run tab; ``/tasks/{dag_id}/{run_id}/{task_id}/{map_index}``: the task
  instance tab.

Pages are rendered on the server by Jinja2 with autoescaping on (every value from a store or a URL is
escaped), carry no secret (URIs come redacted from the catalog), and may be framed only by Airflow's own
pages (``frame-ancestors 'self'``). Authentication comes from the app (plugin/app.py); each page checks the
DAG of what it shows and answers 404 otherwise, as for something that does not exist.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, HTTPException, Request
from fastapi import status as http_status
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from airflow_datasync import catalog
from airflow_datasync.plugin import formatting
from airflow_datasync.plugin.auth import can_read_dag, listing_scope, require_execution
from airflow_datasync.plugin.settings import manifest_stores
from airflow_datasync.plugin.urls import base_path

router = APIRouter(include_in_schema=False)

EXECUTIONS_PER_PAGE = 25
FILES_PER_PAGE = 50
#: While an execution runs, its page reloads its live parts this often (see templates/execution.html).
REFRESH_SECONDS = 3
#: Pages may be framed by Airflow's UI (same origin) and by nothing else.
SECURITY_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
FILE_ACTIONS = ["copy", "mkdir", "meta", "skip", "delete", "error", "link"]
FILE_STATUSES = ["FAILED", "SUCCESS", "SKIPPED", "DRY_RUN"]
#: The counters of an execution page, in the order the AWS console shows them, with their labels. DataSync
#: names them Files*, but they count entries: directories and symlinks too (only VERIFYING counts files).
COUNTERS = [
    ("FilesTransferred", "Entries transferred", "count"),
    ("BytesWritten", "Data written", "bytes"),
    ("FilesSkipped", "Entries skipped (in sync)", "count"),
    ("FilesDeleted", "Entries deleted", "count"),
    ("FilesVerified", "Files verified", "count"),
    ("FilesFailed", "Entries failed", "count"),
]
ESTIMATES = [
    ("FilesPrepared", "Entries prepared", "count"),
    ("EstimatedFilesToTransfer", "Estimated entries to transfer", "count"),
    ("EstimatedBytesToTransfer", "Estimated data to transfer", "bytes"),
    ("EstimatedFilesToDelete", "Estimated entries to delete", "count"),
]
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters.update(formatting.FILTERS)
_templates.globals.update(percent=formatting.percent, quote=lambda value: quote(str(value), safe=""))


def _render(request: Request, template: str, **context: Any) -> HTMLResponse:
    prefix = request.scope.get("root_path", "").rstrip("/")
    body = _templates.get_template(template).render(
        prefix=prefix, airflow=base_path(), refresh_seconds=REFRESH_SECONDS, final_statuses=catalog.FINAL_STATUSES,
        **context,
    )
    return HTMLResponse(body, headers=SECURITY_HEADERS)


def _query(request: Request, **changes: Any) -> str:
    """This page's query string with some parameters changed (paging links keep the filters)."""
    params = {k: v for k, v in request.query_params.items() if v != ""}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else "?"


def _pager(request: Request, page: dict[str, Any], offset_param: str = "offset") -> dict[str, Any]:
    offset, limit, total = page["offset"], page["limit"], page["total"]
    return {
        "first": offset + 1 if total else 0, "last": min(total, offset + limit), "total": total,
        "previous": _query(request, **{offset_param: max(0, offset - limit)}) if offset > 0 else None,
        "next": _query(request, **{offset_param: offset + limit}) if offset + limit < total else None,
    }


def _day(text: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """A ``YYYY-MM-DD`` filter as the UTC day it names; anything else filters nothing."""
    if not text:
        return None, None
    try:
        start = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        return None, None
    return start, start + dt.timedelta(days=1) - dt.timedelta(microseconds=1)


def _not_found(request: Request, what: str) -> HTMLResponse:
    """The same 404 whether the thing does not exist or the user may not read its DAG (no existence leak);
    a page, not JSON, because it shows in the UI's frame."""
    response = _render(request, "not_found.html", what=what)
    response.status_code = http_status.HTTP_404_NOT_FOUND
    return response


def _offset(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


@router.get("/", response_class=HTMLResponse)
@router.get("/executions", response_class=HTMLResponse)
def executions_page(request: Request, user: GetUserDep, task_name: str | None = None, status: str | None = None,
                    dag_id: str | None = None, date: str | None = None, offset: str | None = None) -> HTMLResponse:
    """"DataSync executions": the table the nav entry shows."""
    since, until = _day(date)
    status = status if status in catalog.STATUSES else None
    page = catalog.list_executions(
        manifest_stores(), task_name=task_name or None, status=status, dag_id=dag_id or None, since=since,
        until=until, offset=_offset(offset), limit=EXECUTIONS_PER_PAGE, **listing_scope(user))
    filters = {"task_name": task_name or "", "status": status or "", "dag_id": dag_id or "", "date": date or ""}
    return _render(request, "executions.html", page=page, pager=_pager(request, page), filters=filters,
                   statuses=catalog.STATUSES)


@router.get("/executions/{execution_id}", response_class=HTMLResponse)
def execution_page(request: Request, user: GetUserDep, execution_id: str, action: str | None = None,
                   file_status: str | None = None, path_prefix: str | None = None, q: str | None = None,
                   offset: str | None = None) -> HTMLResponse:
    """One execution: status, counters, timeline, progress, shards, warnings and the file browser."""
    try:
        execution = require_execution(execution_id, user)
    except HTTPException as exc:
        if exc.status_code != http_status.HTTP_404_NOT_FOUND:
            raise
        return _not_found(request, f"Execution {execution_id}")
    detail = catalog.execution_detail(execution.dir, execution.store)
    action = action if action in FILE_ACTIONS else None
    file_status = file_status if file_status in FILE_STATUSES else None
    files = catalog.execution_files(execution.dir, action=action, status=file_status, path_prefix=path_prefix or None,
                                    path_contains=q or None, offset=_offset(offset), limit=FILES_PER_PAGE)
    return _render(request, "execution.html", ex=detail, files=files, pager=_pager(request, files),
                   file_filters={"action": action or "", "file_status": file_status or "",
                                 "path_prefix": path_prefix or "", "q": q or ""},
                   file_actions=FILE_ACTIONS, file_statuses=FILE_STATUSES, counters=COUNTERS, estimates=ESTIMATES,
                   dry_run_counts=_dry_run_counts(execution) if detail["dry_run"] else None,
                   timeline=_timeline_bars(detail["timeline"]))


def _dry_run_counts(execution: catalog.Execution) -> dict[str, int]:
    """What a dry run would do, by action, counted from its report (one column read per count)."""
    return {action: catalog.execution_files(execution.dir, action=action, limit=0, failed_first=False)["total"]
            for action in ("copy", "mkdir", "meta", "skip", "delete", "error")}


def _timeline_bars(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The phases (not the final status) with their bar widths, relative to the longest phase."""
    phases = [t for t in timeline if t["phase"] in catalog.PHASES]
    longest = max((t["duration_ms"] or 0 for t in phases), default=0)
    return [{**t, "width": formatting.percent(t["duration_ms"] or 0, longest) if longest else 0.0} for t in phases]


@router.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse)
def run_tab(request: Request, user: GetUserDep, dag_id: str, run_id: str) -> HTMLResponse:
    """The DAG run tab: the executions that run launched."""
    if not can_read_dag(user, dag_id):
        return _not_found(request, f"DAG {dag_id}")
    page = catalog.list_executions(manifest_stores(), dag_id=dag_id, run_id=run_id, limit=100,
                                   **listing_scope(user))
    return _render(request, "run.html", dag_id=dag_id, run_id=run_id, page=page, counters=COUNTERS)


@router.get("/tasks/{dag_id}/{run_id}/{task_id}/{map_index}", response_class=HTMLResponse)
def task_tab(request: Request, user: GetUserDep, dag_id: str, run_id: str, task_id: str,
             map_index: str) -> HTMLResponse:
    """The task instance tab: the execution(s) this task belongs to; a transfer instance's shard highlighted.

    Airflow leaves ``{MAP_INDEX}`` unreplaced for a task that is not mapped: any non-number means -1."""
    if not can_read_dag(user, dag_id):
        return _not_found(request, f"DAG {dag_id}")
    index = int(map_index) if map_index.lstrip("-").isdigit() else -1
    page = catalog.list_executions(manifest_stores(), dag_id=dag_id, run_id=run_id, task_id=task_id, limit=20,
                                   **listing_scope(user))
    shards: dict[str, list[dict[str, Any]]] = {}
    if index >= 0:
        for info in page["items"]:
            found = catalog.find_execution(manifest_stores(), info["execution_id"])
            if found is not None:
                shards[info["execution_id"]] = catalog.execution_detail(found.dir, found.store)["shards"]
    return _render(request, "task.html", dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=index,
                   page=page, shards=shards, counters=COUNTERS)
