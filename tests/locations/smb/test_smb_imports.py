"""The SMB location imports no Airflow (the CLI and the engine use it outside Airflow); the hook depends on
the location package, never the reverse."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import airflow_datasync.locations.smb
from airflow_datasync.locations import open_location
loc = open_location("smb://files.example.com/share/dir", "some_conn")
print(sorted(m for m in sys.modules if m == "airflow" or m.startswith(("airflow.", "smbclient", "smbprotocol"))))
"""


def test_importing_and_opening_an_smb_location_imports_neither_airflow_nor_the_smb_client():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_hook_reads_connections_with_the_location_package_config():
    from airflow_datasync.hooks import smb as hook
    from airflow_datasync.locations.smb import connection

    assert hook.SmbConnectionConfig is connection.SmbConnectionConfig
    assert hook.SmbShareHook.default_conn_name == connection.DEFAULT_CONN_ID
