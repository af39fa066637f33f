"""Helpers of the leftovers cases: a shard copied by a real subprocess, killed with SIGKILL half way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parents[2])

#: In a subprocess's environment: local files get temporary names, as on a file system without O_TMPFILE
#: (NFS, most FUSE mounts), so that the cases of named temporaries run on any disk.
NAMED_TEMPORARIES = "DS_TEST_NAMED_TEMPORARIES"
#: What a subprocess of these cases runs first.
PRELUDE = f"""
import os
if os.environ.get("{NAMED_TEMPORARIES}"):
    from airflow_datasync.locations import local
    local.UNNAMED_FILES = False
"""
#: Copies one shard at a limited rate, so that a kill lands while a big file is being written.
TRANSFER = PRELUDE + """
import sys
from airflow_datasync import engine
from airflow_datasync.manifest import ExecutionDir
engine.transfer(ExecutionDir(sys.argv[1]), int(sys.argv[2]), bytes_per_second=int(sys.argv[3]))
print("FINISHED", flush=True)
"""


def python_env(*, named_temporaries: bool = False) -> dict[str, str]:
    """The environment of a subprocess that imports the engine of this checkout (connections included);
    ``named_temporaries``: see :data:`NAMED_TEMPORARIES`."""
    env = dict(os.environ)
    if named_temporaries:
        env[NAMED_TEMPORARIES] = "1"
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("AIRFLOW_DATASYNC_MANIFEST_STORE", None)
    return env


def kill_when(execution_uri: str, shard: int, rate: int, ready: Callable[[], bool], timeout: float = 90, *,
              named_temporaries: bool = False) -> float:
    """Run TRANSFERRING of ``shard`` in a subprocess and SIGKILL it as soon as ``ready()`` holds; returns
    the monotonic time of the kill. Fails if the copy finished (or died) first."""
    proc = subprocess.Popen([sys.executable, "-c", TRANSFER, execution_uri, str(shard), str(rate)],
                            env=python_env(named_temporaries=named_temporaries),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed = None
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if ready():
                os.kill(proc.pid, signal.SIGKILL)
                killed = time.monotonic()
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None and killed is None:
            proc.kill()
        out, err = proc.communicate(timeout=30)
    assert killed is not None, f"not killed half way: rc={proc.returncode} out={out!r} err={err[-3000:]!r}"
    assert proc.returncode == -signal.SIGKILL
    return killed


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@dataclass
class Dest:
    """A destination of a leftovers case: its location and what is left there, seen from outside the engine
    (the disk under smbd for SMB, the server's own API for object stores)."""

    kind: str
    uri: str
    conn_id: str | None
    disk: Path | None = None
    #: What a killed copy leaves there: "temporaries" (file systems, SMB) or "uploads" (object stores).
    leaves = "temporaries"
    #: A local destination is written with named temporaries (see :data:`NAMED_TEMPORARIES`): what these
    #: cases look at; its files without a name leave nothing to clean (test_a_killed_unnamed_file_…).
    named_temporaries = False

    def spec(self):
        from airflow_datasync.engine import LocationSpec

        return LocationSpec(self.uri, self.conn_id)

    def leftovers(self) -> list[str]:
        """Every temporary (or unfinished upload) left at the destination."""
        return sorted(str(p.relative_to(self.disk)) for p in self.disk.rglob(".~ds-*"))

    def in_flight(self) -> int:
        """Bytes of the largest temporary (or upload) being written now."""
        sizes = [p.stat().st_size for p in self.disk.rglob(".~ds-*") if p.is_file()]
        return max(sizes, default=0)

    def read(self, rel: str) -> bytes | None:
        path = self.disk / rel
        return path.read_bytes() if path.is_file() else None


class S3Dest(Dest):
    """An S3 prefix on SeaweedFS with 5 MiB parts, so that a 24 MiB file is a multipart upload."""

    leaves = "uploads"

    def __init__(self, client, bucket: str, prefix: str, conn_id: str) -> None:
        super().__init__("s3", f"s3://{bucket}/{prefix}?part_size=5MiB", conn_id)
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def _uploads(self) -> list[dict]:
        return self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix).get("Uploads", [])

    def leftovers(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix).get("Contents", [])
        return sorted([f"upload {u['Key']}" for u in self._uploads()]
                      + [o["Key"] for o in listed if "/.~ds-" in "/" + o["Key"]])

    def in_flight(self) -> int:
        sizes = [sum(p["Size"] for p in self.client.list_parts(Bucket=self.bucket, Key=u["Key"],
                                                                UploadId=u["UploadId"]).get("Parts", []))
                 for u in self._uploads()]
        return max(sizes, default=0)

    def read(self, rel: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + rel)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None


class AzureDest(Dest):
    """A prefix in an Azurite container with 4 MiB blocks, so that a 24 MiB file is staged as blocks."""

    leaves = "uploads"

    def __init__(self, container, prefix: str) -> None:
        super().__init__("azure", container.uri(prefix) + "?block_size=4MiB", container.conn_id)
        self.client, self.prefix = container.client, prefix

    def _uncommitted(self) -> dict[str, int]:
        out = {}
        for blob in self.client.list_blobs(name_starts_with=self.prefix, include=["uncommittedblobs"]):
            _committed, uncommitted = self.client.get_blob_client(blob.name).get_block_list("all")
            if uncommitted:
                out[blob.name] = sum(b["size"] for b in uncommitted)
        return out

    def leftovers(self) -> list[str]:
        names = [b.name for b in self.client.list_blobs(name_starts_with=self.prefix)]
        return sorted([f"blocks {n}" for n in self._uncommitted()] + [n for n in names if "/.~ds-" in "/" + n])

    def in_flight(self) -> int:
        return max(self._uncommitted().values(), default=0)

    def read(self, rel: str) -> bytes | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.client.get_blob_client(self.prefix + rel).download_blob().readall()
        except ResourceNotFoundError:
            return None


def destination(request, kind: str, tmp_path: Path) -> Dest:
    if kind == "local":
        (tmp_path / "dst").mkdir()
        dest = Dest(kind, str(tmp_path / "dst"), None, tmp_path / "dst")
        dest.named_temporaries = True
        return dest
    if kind == "smb":
        folder = request.getfixturevalue("smb_folder")()
        return Dest(kind, folder.uri, folder.conn_id, folder.disk)
    if kind == "s3":
        from tests.fixtures_servers import S3_CONN_ID

        return S3Dest(request.getfixturevalue("s3"), request.getfixturevalue("bucket"), "dst/", S3_CONN_ID)
    if kind == "azure":
        return AzureDest(request.getfixturevalue("azure_container"), "dst/")
    raise ValueError(kind)

