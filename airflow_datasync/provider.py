"""Provider metadata for Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from airflow_datasync import __version__

#: The dialects the form offers; the hook's SMB_VERSIONS (not imported: discovery must not import the SDK).
SMB_VERSIONS = ("2.0.2", "2.1", "3.0", "3.0.2", "3.1.1")


def smb_version_schema() -> dict:
    """The form field of ``smb_version``: null means "negotiate", labelled so the dropdown shows a choice.

    Airflow's form labels each ``enum`` value with ``values_display[str(value)]`` (``"null"`` for None) and
    shows the raw value when there is no label, hence the literal ``null`` an unlabelled None displayed."""
    return {"type": ["string", "null"], "default": None, "enum": [None, *SMB_VERSIONS],
            "values_display": {"null": "Auto (negotiate the highest)", **{v: f"SMB {v}" for v in SMB_VERSIONS}}}


#: ``[datasync]`` in Airflow's configuration (``airflow config list`` shows it); plugin/settings.py reads it.
CONFIG = {
    "datasync": {
        "description": "The DataSync executions pages and JSON API of the airflow-datasync plugin.",
        "options": {
            "manifest_stores": {
                "description": "The manifest stores whose executions the DataSync pages and API show, "
                               "comma-separated. Each is a directory or an s3:// prefix, optionally followed "
                               "by :: and the AWS connection id that reads it. Empty: the engine's default "
                               "store ($AIRFLOW_DATASYNC_MANIFEST_STORE, else $AIRFLOW_HOME/datasync/executions), "
                               "where operators write when given no manifest_store.",
                "version_added": "0.1.0",
                "type": "string",
                "example": "/data/datasync/executions, s3://ops-bucket/datasync::aws_manifests",
                "default": "",
            },
        },
    },
}


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-datasync",
        "name": "DataSync-style file tree migration (airflow-datasync)",
        "description": "Move and keep in sync file trees between POSIX mounts, SMB shares and S3, "
        "with DataSync's phases, options and reports, as Airflow tasks.",
        "versions": [__version__],
        "integrations": [
            # No external-doc-url (optional in Airflow's schema): the project has no public site, and the
            # documentation ships with it (README.md and docs/, the wheel's description is the README).
            {"integration-name": "airflow-datasync", "tags": ["software"]}
        ],
        "operators": [
            {"integration-name": "airflow-datasync", "python-modules": ["airflow_datasync.operators.phases"]},
            {"integration-name": "airflow-datasync", "python-modules": ["airflow_datasync.operators.aws_datasync"]},
        ],
        "task-decorators": [],
        "sensors": [
            {"integration-name": "airflow-datasync",
             "python-modules": ["airflow_datasync.sensors.execution", "airflow_datasync.sensors.location_quiet",
                                "airflow_datasync.sensors.aws_datasync"]},
        ],
        "triggers": [
            {"integration-name": "airflow-datasync",
             "python-modules": ["airflow_datasync.triggers.execution", "airflow_datasync.triggers.location_quiet",
                                "airflow_datasync.triggers.aws_datasync"]},
        ],
        "extra-links": [
            "airflow_datasync.operators.links.SyncExecutionLink",
            "airflow_datasync.operators.links.SyncShardLink",
        ],
        "hooks": [
            {"integration-name": "airflow-datasync", "python-modules": ["airflow_datasync.hooks.smb"]}
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_datasync.hooks.smb.SmbShareHook",
                "connection-type": "datasync_smb",
                "hook-name": "SMB share (airflow-datasync)",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema"],
                    "relabeling": {"host": "Server", "login": "Username"},
                    "placeholders": {"host": "fileserver.example.com", "port": "445", "login": "svc-datasync"},
                },
                "conn-fields": {
                    "domain": {"label": "Domain", "description": "Windows/AD domain of the user (optional).",
                               "schema": {"type": ["string", "null"]}},
                    "smb_version": {"label": "SMB version",
                                    "description": "Auto negotiates the highest dialect both sides support; "
                                                   "pick one to pin it.",
                                    "schema": smb_version_schema()},
                    "require_signing": {"label": "Require signing", "schema": {"type": "boolean", "default": True}},
                    "encrypt": {"label": "Encrypt (SMB 3)", "schema": {"type": "boolean", "default": False}},
                    "auth_protocol": {"label": "Authentication",
                                      "description": "negotiate (default), ntlm, or kerberos when the worker has a ticket.",
                                      "schema": {"type": "string", "default": "negotiate",
                                                 "enum": ["negotiate", "ntlm", "kerberos"]}},
                },
            }
        ],
        "config": CONFIG,
    }
