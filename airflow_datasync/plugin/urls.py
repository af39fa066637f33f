"""Where the plugin's pages are, as paths a browser can follow from the Airflow UI.

Kept free of heavy imports: Airflow imports the plugin (and so this) in every task runner and in the
scheduler, where only these few strings are needed.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

#: Where Airflow mounts the plugin's FastAPI app (``fastapi_apps`` in plugin/__init__.py).
PLUGIN_PREFIX = "/datasync"


def base_path() -> str:
    """The path part of ``[api] base_url`` (``/airflow`` behind a proxy, empty at the root)."""
    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="/") or "/").path.rstrip("/")


def pages_path() -> str:
    """``<base path>/datasync``: the root of the pages, as links and the UI's nav entry and tabs use it."""
    return f"{base_path()}{PLUGIN_PREFIX}"


def execution_path(execution_id: str, fragment: str | None = None) -> str:
    """The execution page, optionally at an anchor such as ``shard-3``."""
    url = f"{pages_path()}/executions/{quote(execution_id, safe='')}"
    return f"{url}#{fragment}" if fragment else url
