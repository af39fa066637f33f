"""Airflow's real FastAPI app (``create_app()``) with the plugin mounted, for the API and page tests.

Both configure it the same way: our auth manager (tests/plugin/api_auth_manager.py, one user denied one
DAG), users with roles, and the manifest stores the plugin lists; then a test client and a JWT per user.
The configuration goes into the environment (Airflow reads it there) and is put back afterwards, so the
modules that run later see the session's own settings.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

_CONFIG = ("AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
           "AIRFLOW__DATASYNC__MANIFEST_STORES")


@dataclass(frozen=True)
class PluginApp:
    client: TestClient  # noqa: F821 (fastapi.testclient, imported once Airflow is configured)
    tokens: dict[str, str]  # user name → JWT, for an Authorization header or the UI's ``_token`` cookie


@pytest.fixture(scope="module")
def plugin_app(airflow_db) -> Iterator[Callable[..., PluginApp]]:
    """``plugin_app(roles={"viewer": "VIEWER"}, manifest_stores="/a, s3://b/c::conn")`` → a :class:`PluginApp`.

    A factory, so a module first runs the executions its pages show, then starts the app (once per module).
    """
    saved = {key: os.environ.get(key) for key in _CONFIG}
    clients = []

    def start(roles: dict[str, str], manifest_stores: str) -> PluginApp:
        os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = "tests.plugin.api_auth_manager.OneDagDeniedAuthManager"
        os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = ",".join(f"{u}:{r.lower()}" for u, r in roles.items())
        os.environ["AIRFLOW__DATASYNC__MANIFEST_STORES"] = manifest_stores

        from airflow.api_fastapi.app import create_app, get_auth_manager, purge_cached_app
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from fastapi.testclient import TestClient

        purge_cached_app()
        app = create_app()
        manager = get_auth_manager()
        tokens = {u: manager.generate_jwt(SimpleAuthManagerUser(username=u, role=r)) for u, r in roles.items()}
        clients.append(TestClient(app))
        return PluginApp(client=clients[-1], tokens=tokens)

    yield start

    from airflow.api_fastapi.app import purge_cached_app

    for client in clients:
        client.close()
    purge_cached_app()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
