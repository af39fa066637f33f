"""The ``datasync_smb`` connection type: credentials and session options for SMB locations.

Our own connection type, not the Samba provider's ``samba``: the options differ (signing, encryption,
dialect pin, Kerberos) and the location, not the hook, does the file work. The fields and how they are
read are in :mod:`airflow_datasync.locations.smb.connection` (the location reads a connection without
this hook, so that it needs no Airflow import until a connection is read); the hook gives the form its
type and the Test button.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from airflow_datasync.locations.smb.connection import (
    DEFAULT_CONN_ID,
    DIALECTS,
    SMB_VERSIONS,
    SmbConnectionConfig,
    SmbConnectionError,
)
from airflow_datasync.locations.smb.sessions import open_session

__all__ = ["DIALECTS", "SMB_VERSIONS", "SmbConnectionConfig", "SmbConnectionError", "SmbShareHook"]


class SmbShareHook(BaseHook):
    """Reads a ``datasync_smb`` connection for :class:`~airflow_datasync.locations.smb.SmbLocation`.

    :param smb_conn_id: the Airflow connection id (default ``datasync_smb_default``).
    """

    conn_name_attr = "smb_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "datasync_smb"
    hook_name = "SMB share (airflow-datasync)"

    def __init__(self, smb_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.smb_conn_id = smb_conn_id

    def get_config(self) -> SmbConnectionConfig:
        return SmbConnectionConfig.from_connection(self.get_connection(self.smb_conn_id))

    def get_conn(self) -> SmbConnectionConfig:
        return self.get_config()

    def test_connection(self) -> tuple[bool, str]:
        """Open a session with the connection's host and credentials (the form's Test button)."""
        try:
            config = self.get_config()
            if not config.host:
                return False, "set Server (host) to test the connection"
            open_session(config.host, config.port, config)
            return True, f"authenticated to {config.host}:{config.port}"
        except Exception as exc:  # reported to the UI; messages never carry the password
            return False, f"{type(exc).__name__}: {exc}"
