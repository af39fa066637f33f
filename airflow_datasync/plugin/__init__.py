"""The airflow-datasync Airflow plugin (entry point ``airflow.plugins``).

Small for now: it registers the plugin and a macro that reads an execution's report summary, so that a
downstream task can template ``{{ macros.datasync_native.report_summary(ti.xcom_pull(...)) }}``.
The executions page in the Airflow UI grows here.
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
    from airflow_datasync.plugin.app import URL_PREFIX, create_datasync_app

    return [{"app": create_datasync_app(), "url_prefix": URL_PREFIX, "name": "airflow-datasync"}]


class DataSyncNativePlugin(AirflowPlugin):
    name = "datasync_native"
    macros = [report_summary]
    # The executions UI and its JSON API, behind Airflow's authentication (plugin/app.py).
    fastapi_apps = _fastapi_apps()
