"""The JSON API under ``/datasync/api``: executions, one execution, its per-file report, its Parquet files.

Every route runs behind the app-level authentication of plugin/app.py; every route that names an execution
takes it through ``auth.require_execution`` (404 unless the user may read its DAG), and the listing is
restricted to the DAGs the user may read. Responses carry no secret: URIs are redacted, connection ids and
options stay in the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import StreamingResponse

from airflow_datasync import catalog
from airflow_datasync.plugin.auth import ReadableExecution, listing_scope
from airflow_datasync.plugin.settings import manifest_stores

router = APIRouter(tags=["DataSync"])

MAX_LIMIT = 1000
_CHUNK = 1 << 20


@router.get("/executions")
def list_executions(
    user: GetUserDep,
    task_name: str | None = None,
    status: Annotated[str | None, Query(description="LAUNCHING, PREPARING, TRANSFERRING, VERIFYING, SUCCESS, ERROR")] = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    since: Annotated[dt.datetime | None, Query(description="launched at or after (ISO 8601)")] = None,
    until: Annotated[dt.datetime | None, Query(description="launched at or before (ISO 8601)")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> dict[str, Any]:
    """Executions of the configured stores that this user may see, newest first."""
    return catalog.list_executions(manifest_stores(), task_name=task_name, status=status, dag_id=dag_id,
                                   run_id=run_id, task_id=task_id, since=since, until=until, offset=offset,
                                   limit=limit, **listing_scope(user))


@router.get("/executions/{execution_id}")
def get_execution(execution: ReadableExecution) -> dict[str, Any]:
    """Summary, phase timeline, shards, live progress, warnings and errors of one execution."""
    return catalog.execution_detail(execution.dir, execution.store)


@router.get("/executions/{execution_id}/files")
def get_execution_files(
    execution: ReadableExecution,
    action: Annotated[str | None, Query(description="copy, mkdir, meta, skip, delete, error")] = None,
    status: Annotated[str | None, Query(description="SUCCESS, FAILED, SKIPPED, DRY_RUN")] = None,
    path_prefix: str | None = None,
    q: Annotated[str | None, Query(description="a substring of the path")] = None,
    failed_first: bool = True,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """A page of the per-file report, failed entries first."""
    return catalog.execution_files(execution.dir, action=action, status=status, path_prefix=path_prefix,
                                   path_contains=q, offset=offset, limit=limit, failed_first=failed_first)


@router.get("/executions/{execution_id}/download/{name}")
def download(execution: ReadableExecution, name: str) -> StreamingResponse:
    """One of the execution's Parquet files (report, manifest, verify), streamed from the store."""
    path = catalog.download_path(execution.dir, name)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{name}: not a file of this execution")
    fs = execution.dir.store.fs

    def chunks() -> Iterator[bytes]:
        with fs.open_input_stream(path) as fh:
            while data := fh.read(_CHUNK):
                yield data

    filename = f"{execution.dir.execution_id}-{name}"
    return StreamingResponse(chunks(), media_type="application/vnd.apache.parquet",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})
