"""Operator extra links: every phase task links to its execution's page in the DataSync UI plugin.

Airflow 3 computes an operator's links on the worker when the task ends (``finalize`` in the task runner)
and stores each URL in an XCom (``_link_<class name>``); the API server only reads that XCom back. So a
link may use the SDK's XCom (which talks to the supervisor), never the API server's database.

The execution id comes from the return value of the group's LAUNCHING task
(``{"execution": ..., "execution_id": ...}``): every phase task of one ``sync_task_group`` finds it there.
A task whose LAUNCHING failed has no execution and gets no link (an empty URL hides the button).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

from airflow_datasync.plugin.urls import execution_path

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

LAUNCH_TASK = "launch"


def _launch_task_id(task_id: str) -> str:
    """``sync.transfer`` → ``sync.launch``: the LAUNCHING task of the same task group."""
    group, _, _ = task_id.rpartition(".")
    return f"{group}.{LAUNCH_TASK}" if group else LAUNCH_TASK


def launched_execution_id(ti_key: TaskInstanceKey) -> str | None:
    """The execution id the group's LAUNCHING task returned, or None when it returned none (failed)."""
    from airflow.sdk.execution_time.xcom import XCom

    # get_all, not get_one: an absent XCom is an empty list here, where get_one logs an "XCom not found"
    # error into the task log of every phase task after a failed LAUNCHING.
    values: Any = XCom.get_all(key="return_value", dag_id=ti_key.dag_id, run_id=ti_key.run_id,
                               task_id=_launch_task_id(ti_key.task_id))
    value = values[0] if isinstance(values, list) and len(values) == 1 else None
    if isinstance(value, dict) and isinstance(value.get("execution_id"), str):
        return value["execution_id"]
    return None


class SyncExecutionLink(BaseOperatorLink):
    """"DataSync execution": the execution page (counters, phase timeline, shards, per-file report)."""

    name = "DataSync execution"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        execution_id = launched_execution_id(ti_key)
        return execution_path(execution_id) if execution_id else ""


class SyncShardLink(BaseOperatorLink):
    """"DataSync shard": the row of this mapped transfer instance's shard on the execution page."""

    name = "DataSync shard"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        execution_id = launched_execution_id(ti_key)
        if not execution_id:
            return ""
        shard = getattr(operator, "shard", None)
        # The rendered shard descriptor names the shard; the map index is the same number otherwise.
        number = shard.get("shard") if isinstance(shard, dict) else None
        if number is None:
            number = ti_key.map_index
        return execution_path(execution_id, fragment=f"shard-{int(number)}")
