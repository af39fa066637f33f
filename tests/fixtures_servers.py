"""Real servers shared by every test directory, loaded as a pytest plugin from ``tests/conftest.py``
(``pytest_plugins = ["tests.fixtures_servers"]``), so each starts at most once per session whichever
directories use it (``tests/locations/s3``, ``tests/locations/smb``, ``tests/locations/cross``):

- ``s3_server``: SeaweedFS (S3, SigV4 enforced), reached through the AWS connection ``datasync_test_s3``;
- ``permissive_s3``: moto's S3 server, which stores keys such as ``../x`` as AWS does
  (connection ``datasync_test_permissive_s3``);
- ``samba``: a private Samba ``smbd`` on 127.0.0.1 (connections ``datasync_smb_test`` and
  ``datasync_smb_test_encrypted``);
- ``azurite``: Azurite's blob service (connection ``datasync_test_azure``, a ``wasb`` connection);

plus the per-test helpers built on them: ``s3`` (a boto3 client), ``bucket`` (a fresh bucket),
``smb_folder`` (a fresh folder on a share), ``azure_container`` (a fresh container) and ``drop_connections``.

Connections reach the locations through ``AIRFLOW_CONN_*`` environment variables (JSON form), so the
engine needs no metadata database. The constants live here; ``tests/locations/s3/conftest.py`` and
``tests/locations/smb/conftest.py`` re-export them for the tests that import them from there. Fixture functions
must not be imported into a conftest: pytest would register them a second time there and start a
second server.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.azurite_server import AzuriteServer, start_azurite
from tests.locations.smb.smbd_server import INSTALL_HINT, SambaServer, start_samba
from tests.servers import start_moto, start_seaweedfs

S3_CONN_ID = "datasync_test_s3"
PERMISSIVE_S3_CONN_ID = "datasync_test_permissive_s3"
SMB_CONN_ID = "datasync_smb_test"
SMB_ENCRYPTED_CONN_ID = "datasync_smb_test_encrypted"
AZURE_CONN_ID = "datasync_test_azure"

_bucket_names = itertools.count()


# -- S3 ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def s3_server():
    server = start_seaweedfs()
    os.environ[f"AIRFLOW_CONN_{S3_CONN_ID.upper()}"] = server.connection_uri_json()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server):
    return s3_server.client()


@pytest.fixture
def bucket(s3):
    name = f"t{next(_bucket_names)}-{os.getpid()}"
    s3.create_bucket(Bucket=name)
    yield name
    _drop_bucket(s3, name)


def _drop_bucket(s3, name: str) -> None:
    """Empty and delete a test's bucket: SeaweedFS refuses every PUT once about 63 buckets exist."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=name)
    except (BotoCoreError, ClientError):
        pass  # a test that stopped the server, or made the bucket unusable: the next ones still get fresh names


@pytest.fixture(scope="session")
def permissive_s3():
    """An S3 API server that, like AWS, accepts keys such as ``../x`` (SeaweedFS refuses them)."""
    server = start_moto()
    os.environ[f"AIRFLOW_CONN_{PERMISSIVE_S3_CONN_ID.upper()}"] = server.connection_uri_json()
    yield server
    server.stop()


# -- SMB ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def samba():
    if not (shutil.which("smbd") or os.path.exists("/usr/sbin/smbd")):
        pytest.fail(INSTALL_HINT, pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="datasync-samba-"))
    server = start_samba(root)
    keys = (f"AIRFLOW_CONN_{SMB_CONN_ID.upper()}", f"AIRFLOW_CONN_{SMB_ENCRYPTED_CONN_ID.upper()}")
    saved = {k: os.environ.get(k) for k in keys}
    base = {"conn_type": "datasync_smb", "host": "127.0.0.1", "port": server.port, "login": server.user,
            "password": server.password}
    os.environ[keys[0]] = json.dumps({**base, "extra": {"require_signing": True}})
    os.environ[keys[1]] = json.dumps({**base, "extra": {"encrypt": "true", "smb_version": "3.1.1"}})
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
    conn_id: str = SMB_CONN_ID


@pytest.fixture
def smb_folder(samba: SambaServer):
    def make(share: str = "data", conn_id: str = SMB_CONN_ID, create: bool = True) -> SmbFolder:
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


# -- Azure Blob --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def azurite():
    server = start_azurite()
    key = f"AIRFLOW_CONN_{AZURE_CONN_ID.upper()}"
    saved = os.environ.get(key)
    os.environ[key] = server.connection_json()
    try:
        yield server
    finally:
        server.stop()
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved
        shutil.rmtree(server.workdir, ignore_errors=True)


@dataclass
class AzureContainer:
    """A fresh container: ``uri(name)`` is ``azure://<container>/<name>``; ``client`` the SDK's container client."""

    name: str
    client: object
    conn_id: str = AZURE_CONN_ID

    def uri(self, name: str = "") -> str:
        return f"azure://{self.name}/{name}"


@pytest.fixture
def azure_container(azurite: AzuriteServer):
    name = f"t-{uuid.uuid4().hex[:12]}"
    client = azurite.service().get_container_client(name)
    client.create_container()
    return AzureContainer(name, client)
