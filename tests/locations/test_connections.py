"""A connection in ``AIRFLOW_CONN_<ID>`` (JSON form) is read without importing Airflow, exactly as Airflow
reads it; anything else is left to Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_datasync.locations.connections import parse_json_connection

REPO = Path(__file__).resolve().parents[2]

VALUES = [
    {"conn_type": "datasync_smb", "host": "127.0.0.1", "port": 4455, "login": "root", "password": "p@ss:w/rd",
     "extra": {"require_signing": True}},
    {"conn_type": "aws", "login": "AKIA", "password": "secret", "extra": json.dumps({"endpoint_url": "http://x"})},
    {"conn_type": "wasb", "host": "https://acct.blob.core.windows.net", "port": "10000", "extra": ""},
    {"conn_type": "google-cloud-platform", "schema": "s"},
    {"conn_type": "postgresql", "description": "d"},
    {},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_same_fields_as_airflow(value):
    from airflow.sdk.definitions.connection import Connection

    text = json.dumps(value)
    ours = parse_json_connection("c", text)
    theirs = Connection.from_json(text, conn_id="c")
    assert ours is not None
    for field in ("conn_type", "host", "login", "password", "schema", "port", "extra_dejson"):
        assert getattr(ours, field) == getattr(theirs, field), field


@pytest.mark.parametrize("text", ['{"conn_type": "x", "bogus": 1}', '{"port": "eighty"}', '{"extra": "{not json"}',
                                  '{"extra": "[1, 2]"}', "[]", "{"])
def test_what_airflow_refuses_or_reads_oddly_is_left_to_it(text):
    assert parse_json_connection("c", text) is None


def _lookup_in_child(env: dict[str, str]) -> dict:
    """Look up connection ``c`` in a fresh interpreter; say what it found and whether Airflow got imported."""
    code = ("import json, sys\n"
            "from airflow_datasync.locations.connections import get_connection\n"
            "c = get_connection('c', conn_type='datasync_smb', where='test')\n"
            "print(json.dumps({'host': c.host, 'port': c.port, 'extra': c.extra_dejson,"
            " 'airflow': 'airflow' in sys.modules}))\n")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__SECRETS__", "AIRFLOW_CONFIG"))}
    out = subprocess.run([sys.executable, "-c", code], env={**keep, **env}, cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_cli_reads_a_json_connection_without_airflow(tmp_path):
    value = json.dumps({"conn_type": "datasync_smb", "host": "h", "port": 1445, "extra": {"encrypt": "true"}})
    found = _lookup_in_child({"AIRFLOW_CONN_C": value, "AIRFLOW_HOME": str(tmp_path)})
    assert found == {"host": "h", "port": 1445, "extra": {"encrypt": "true"}, "airflow": False}


@pytest.mark.parametrize("how", ["env", "cfg", "uri"])
def test_a_secrets_backend_or_a_uri_goes_through_airflow(tmp_path, how):
    env = {"AIRFLOW_HOME": str(tmp_path),
           "AIRFLOW_CONN_C": json.dumps({"conn_type": "datasync_smb", "host": "h", "port": 1445})}
    if how == "env":  # a backend that finds nothing: Airflow then reads the environment
        env["AIRFLOW__SECRETS__BACKEND"] = "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    elif how == "cfg":
        (tmp_path / "airflow.cfg").write_text(
            "[secrets]\nbackend = airflow.secrets.local_filesystem.LocalFilesystemBackend\n")
    else:
        env["AIRFLOW_CONN_C"] = "datasync-smb://h:1445"
    found = _lookup_in_child(env)
    assert found["airflow"] is True
    assert (found["host"], found["port"]) == ("h", 1445)
