"""Who may see which execution: Airflow's auth manager decides, per DAG.

- An execution launched by a DAG (``launch.json``'s ``airflow.dag_id``) is visible to a user who may read
  that DAG (``get_authorized_dag_ids(user=..., method="GET")``, the same rule as Airflow's own DAG list).
  A DAG deleted from Airflow's database (not merely stale) is readable by nobody through this rule.
- An execution no DAG launched (``"airflow": null``: the CLI, a script) belongs to no DAG; it is visible only
  to users who may read Airflow's connections (``is_authorized_connection(method="GET")``: Op and Admin in
  the simple and FAB auth managers), as its records name connection ids and paths of the whole installation.
- Asking for an execution one may not read answers 404, as for one that does not exist: a URL never tells
  whether an execution exists.

``get_auth_manager()`` is called directly: ``AuthManagerDep`` reads the state of the app serving the request,
which in a mounted plugin app is ours, not Airflow's (it answers 500 there).
"""

from __future__ import annotations

from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, HTTPException, status

from airflow_datasync import catalog
from airflow_datasync.plugin.settings import manifest_stores


def readable_dag_ids(user: Any) -> set[str]:
    """The DAG ids this user may read."""
    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


def can_read_unowned(user: Any) -> bool:
    """Whether this user may see executions that no DAG launched."""
    return bool(get_auth_manager().is_authorized_connection(method="GET", user=user))


def can_read_dag(user: Any, dag_id: str | None, *, readable: set[str] | None = None) -> bool:
    """Whether this user may see executions of ``dag_id`` (None: executions no DAG launched)."""
    if dag_id is None:
        return can_read_unowned(user)
    return dag_id in (readable if readable is not None else readable_dag_ids(user))


def can_read(user: Any, execution_info: dict[str, Any]) -> bool:
    """Whether this user may see the execution of this list row (``catalog.execution_info``)."""
    return can_read_dag(user, (execution_info.get("airflow") or {}).get("dag_id"))


def listing_scope(user: Any) -> dict[str, Any]:
    """Keyword arguments of ``catalog.list_executions`` that restrict a listing to what this user may see."""
    return {"dag_ids": readable_dag_ids(user), "include_unowned": can_read_unowned(user)}


def _not_found(execution_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"execution {execution_id} not found")


def require_execution(execution_id: str, user: GetUserDep) -> catalog.Execution:
    """FastAPI dependency for routes with an ``{execution_id}`` path parameter: the execution (its files in
    ``.dir``, its list row in ``.info``), or 404 when it does not exist *or* the user may not read its DAG."""
    found = catalog.find_execution(manifest_stores(), execution_id)
    if found is None or not can_read(user, found.info):
        raise _not_found(execution_id)
    return found


ReadableExecution = Annotated[catalog.Execution, Depends(require_execution)]
