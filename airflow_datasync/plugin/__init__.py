"""The airflow-datasync Airflow plugin (entry point ``airflow.plugins``).

It registers the executions UI (a FastAPI app Airflow mounts at ``/datasync``, behind Airflow's auth:
plugin/app.py; docs/ui.md), its nav entry and tabs, and a macro that reads an execution's report summary,
so that a downstream task can template ``{{ macros.datasync_native.report_summary(ti.xcom_pull(...)) }}``.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin


def report_summary(execution: Any) -> dict[str, Any] | None:
    from airflow_datasync.manifest import ExecutionDir

    conn_id = None
    if isinstance(execution, dict):
        execution, conn_id = execution.get("execution"), execution.get("store_conn_id")
    if not execution:
        return None
    ex = ExecutionDir(str(execution), conn_id)
    return ex.read_json(ex.report)


def _fastapi_apps() -> list[dict[str, Any]]:
    from airflow_datasync.plugin.app import URL_PREFIX, LazyDataSyncApp

    return [{"app": LazyDataSyncApp(), "url_prefix": URL_PREFIX, "name": "airflow-datasync"}]


def _external_views() -> list[dict[str, Any]]:
    """The nav entry and the DAG run / task instance tabs: our pages in the UI's iframe (same origin, so the
    browser sends the ``_token`` cookie). Hrefs start with the path of ``[api] base_url``, as the UI's own
    links do; the UI fills ``{DAG_ID}``, ``{RUN_ID}``, ``{TASK_ID}`` and ``{MAP_INDEX}`` in tabs."""
    from airflow_datasync.plugin.urls import pages_path

    pages = pages_path()
    return [
        {"name": "DataSync executions", "href": f"{pages}/executions", "destination": "nav",
         "category": "browse", "url_route": "datasync"},
        {"name": "DataSync", "href": f"{pages}/runs/{{DAG_ID}}/{{RUN_ID}}", "destination": "dag_run",
         "url_route": "datasync_run"},
        {"name": "DataSync", "href": f"{pages}/tasks/{{DAG_ID}}/{{RUN_ID}}/{{TASK_ID}}/{{MAP_INDEX}}",
         "destination": "task_instance", "url_route": "datasync_task"},
    ]


class DataSyncNativePlugin(AirflowPlugin):
    name = "datasync_native"
    macros = [report_summary]
    # The executions UI and its JSON API, behind Airflow's authentication (plugin/app.py).
    fastapi_apps = _fastapi_apps()
    external_views = _external_views()
    # No plugin-level operator_extra_links: the operators declare theirs (operators/links.py), which the
    # worker resolves; a plugin registration would make the API server resolve them, without a task context.
