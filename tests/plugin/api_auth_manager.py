"""An auth manager for the API tests: Airflow's simple auth manager, except that user ``outsider`` may not
read DAG ``datasync_test_sync``. Configured through ``[core] auth_manager`` (the simple manager grants
every DAG to every role, so it cannot express a per-DAG denial by itself)."""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

DENIED_USER = "outsider"
DENIED_DAG = "datasync_test_sync"


class OneDagDeniedAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if user.username == DENIED_USER and details is not None and details.id == DENIED_DAG:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)

    def filter_authorized_dag_ids(self, *, dag_ids, user, method="GET", team_name=None) -> set[str]:
        allowed = super().filter_authorized_dag_ids(dag_ids=dag_ids, user=user, method=method, team_name=team_name)
        return {d for d in allowed if not (user.username == DENIED_USER and d == DENIED_DAG)}
