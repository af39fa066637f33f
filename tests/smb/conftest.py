"""A real Samba ``smbd`` for the SMB tests: private config and state under a temporary directory, 127.0.0.1,
a free high port, a tdbsam user ``root``. Connections reach the location through ``AIRFLOW_CONN_*``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from .smbd_server import INSTALL_HINT, SambaServer, start_samba

CONN_ID = "datasync_smb_test"
ENCRYPTED_CONN_ID = "datasync_smb_test_encrypted"


@pytest.fixture(scope="session")
def samba():
    if not (shutil.which("smbd") or os.path.exists("/usr/sbin/smbd")):
        pytest.fail(INSTALL_HINT, pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="datasync-samba-"))
    server = start_samba(root)
    saved = {k: os.environ.get(k) for k in (f"AIRFLOW_CONN_{CONN_ID.upper()}", f"AIRFLOW_CONN_{ENCRYPTED_CONN_ID.upper()}")}
    base = {"conn_type": "datasync_smb", "host": "127.0.0.1", "port": server.port, "login": server.user,
            "password": server.password}
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps({**base, "extra": {"require_signing": True}})
    os.environ[f"AIRFLOW_CONN_{ENCRYPTED_CONN_ID.upper()}"] = json.dumps(
        {**base, "extra": {"encrypt": "true", "smb_version": "3.1.1"}})
    try:
        yield server
    finally:
        from airflow_datasync.locations.smb import reset_pools

        reset_pools()
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class SmbFolder:
    """A fresh folder on a share: its URI and where smbd keeps it on disk (to check from the outside)."""

    uri: str
    disk: Path
    conn_id: str = CONN_ID


@pytest.fixture
def smb_folder(samba: SambaServer):
    def make(share: str = "data", conn_id: str = CONN_ID, create: bool = True) -> SmbFolder:
        name = f"t-{uuid.uuid4().hex[:10]}"
        disk = samba.shares[share] / name
        if create:
            disk.mkdir()
        return SmbFolder(f"smb://127.0.0.1:{samba.port}/{share}/{name}", disk, conn_id)

    return make


def kill_smb_connections(server: SambaServer) -> int:
    """Kill smbd's per-connection children (not notifyd/cleanupd): every client connection drops for real."""
    killed = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/comm") as fh:
                comm = fh.read().strip()
        except OSError:
            continue
        if ppid == server.process.pid and comm == "smbd":
            os.kill(int(pid), 9)
            killed += 1
    return killed


@pytest.fixture
def drop_connections(samba):
    return lambda: kill_smb_connections(samba)
