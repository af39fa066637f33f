"""The plugin's FastAPI app, mounted by Airflow at ``/datasync`` (``fastapi_apps`` in plugin/__init__.py).

Airflow mounts plugin apps with no authentication, so this app requires an authenticated user on every
route by an app-level dependency (fail closed: a route added later is protected without thinking of it);
routes that name an execution also check its DAG (``auth.require_execution``). The user is read the way
Airflow's own API reads it: an ``Authorization: Bearer`` token, else the ``_token`` cookie the UI sets, which
the browser sends with the pages the UI shows in an iframe.
"""

from __future__ import annotations

import html
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

URL_PREFIX = "/datasync"

_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:3rem;color:#222}}a{{color:#0b5cad}}</style></head>
<body><h1>{title}</h1><p>{text}</p><p><a href="{login}" target="_top">Log in to Airflow</a></p></body></html>
"""


def _relative_path(request: Request) -> str:
    """The request's path inside this app (without Airflow's base path and our mount prefix)."""
    path, root = request.url.path, request.scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _is_api(request: Request) -> bool:
    path = _relative_path(request)
    return path == "/api" or path.startswith("/api/")


async def _auth_error_page(request: Request, exc: Exception) -> Response:
    """401/403 outside ``/api`` as a short page linking to Airflow's login (a JSON body in the UI's iframe
    says nothing to a person); everything else as FastAPI answers it."""
    from airflow.api_fastapi.app import get_auth_manager
    from fastapi import HTTPException
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.responses import HTMLResponse

    assert isinstance(exc, HTTPException)
    if exc.status_code not in (401, 403) or _is_api(request):
        return await http_exception_handler(request, exc)
    try:
        login = get_auth_manager().get_url_login(next_url=str(request.url))
    except Exception:
        login = "/"
    if exc.status_code == 401:
        title, text = "Log in to see DataSync executions", "This page is shown to users logged in to Airflow."
    else:
        title, text = "Your Airflow session is not valid", "Log in again to see DataSync executions."
    body = _LOGIN_PAGE.format(title=html.escape(title), text=html.escape(text), login=html.escape(login, quote=True))
    return HTMLResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None) or None)


def create_datasync_app() -> FastAPI:
    """The app Airflow mounts at ``/datasync``: JSON API under ``/api``, HTML pages at the root."""
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends, FastAPI, HTTPException

    from airflow_datasync.plugin import api, pages

    app = FastAPI(
        title="airflow-datasync",
        description="DataSync executions: JSON API and pages (authenticated by Airflow's auth manager)",
        dependencies=[Depends(requires_authenticated())],
        # No open OpenAPI/docs routes: every route of this app requires a user.
        openapi_url=None, docs_url=None, redoc_url=None,
    )
    app.include_router(api.router, prefix="/api")
    app.include_router(pages.router)
    app.add_exception_handler(HTTPException, _auth_error_page)
    return app


class LazyDataSyncApp:
    """The ASGI app registered in ``fastapi_apps``: it builds :func:`create_datasync_app` on first use.

    Airflow imports plugins in every process (task runners, DAG processor, scheduler) but only the API server
    serves this app; building it at import would cost each task about a second of FastAPI and Airflow API
    imports for nothing."""

    def __init__(self) -> None:
        self._app: FastAPI | None = None
        self._lock = threading.Lock()

    @property
    def app(self) -> FastAPI:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = create_datasync_app()
        return self._app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
