"""Which manifest stores the UI shows: ``[datasync] manifest_stores`` in Airflow's configuration.

    [datasync]
    manifest_stores = /data/datasync/executions, s3://ops-bucket/datasync::aws_manifests

Comma-separated; each entry is a directory or an ``s3://`` prefix, optionally followed by ``::`` and the
AWS connection id that reads it. Unset, the UI shows the engine's default store
(``$AIRFLOW_DATASYNC_MANIFEST_STORE``, else ``$AIRFLOW_HOME/datasync/executions``), where operators write
when they are given no ``store``. Read on every request, so a changed setting needs no restart of the
catalog (Airflow itself may still cache its configuration).
"""

from __future__ import annotations

from airflow_datasync.catalog import StoreRef


def manifest_stores() -> list[StoreRef]:
    from airflow.configuration import conf

    from airflow_datasync import engine

    text = conf.get("datasync", "manifest_stores", fallback="") or ""
    stores = [StoreRef.parse(part) for part in text.split(",") if part.strip()]
    return stores or [StoreRef(engine.DEFAULT_STORE)]
