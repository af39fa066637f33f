"""Provider metadata for Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from airflow_datasync import __version__


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-datasync",
        "name": "DataSync-style file tree migration (airflow-datasync)",
        "description": "Move and keep in sync file trees between POSIX mounts, SMB shares and S3, "
        "with DataSync's phases, options and reports, as Airflow tasks.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "airflow-datasync",
                "external-doc-url": "https://github.com/airflow-datasync/airflow-datasync",
                "tags": ["software"],
            }
        ],
        "operators": [
            {"integration-name": "airflow-datasync", "python-modules": ["airflow_datasync.operators.phases"]}
        ],
        "task-decorators": [],
    }
