"""The SMB tests' ``smbd`` comes from ``tests/fixtures_servers.py`` (a pytest plugin loaded by
``tests/conftest.py``), so it starts once per session for every directory that uses it: ``samba`` (a private
smbd on 127.0.0.1, a free high port, a tdbsam user ``root``), ``smb_folder`` (a fresh folder on a share) and
``drop_connections``. Connections reach the location through ``AIRFLOW_CONN_*``; their ids are re-exported
here for the tests."""

from __future__ import annotations

from tests.fixtures_servers import SMB_CONN_ID as CONN_ID
from tests.fixtures_servers import SMB_ENCRYPTED_CONN_ID as ENCRYPTED_CONN_ID
from tests.fixtures_servers import SmbFolder, kill_smb_connections

__all__ = ["CONN_ID", "ENCRYPTED_CONN_ID", "SmbFolder", "kill_smb_connections"]
