"""Private servers the server-fault cases may kill (``kill -9``) and start again on the same port with the
same data: SeaweedFS, smbd, Azurite (on disk, not in memory). Each is started the way tests/servers.py,
tests/locations/smb/smbd_server.py and tests/azurite_server.py start the shared ones, and restarted with
the command line and working directory it was first started with."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.azurite_server import AZURITE, AzuriteServer
from tests.locations.smb.smbd_server import SambaServer, start_samba
from tests.servers import S3Server, free_port, start_seaweedfs, wait_port


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the server and every child it forked (each was started in a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(30)


def _respawn(proc: subprocess.Popen, env: dict[str, str] | None, cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen(proc.args, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd,
                                start_new_session=True)


@dataclass
class RestartableS3:
    """A private SeaweedFS: :meth:`kill` is ``kill -9`` of ``weed`` (all its servers), :meth:`restart` the
    same command (ports, data directory) again, ready when a bucket listing answers."""

    server: S3Server

    @property
    def port(self) -> int:
        return int(self.server.endpoint.rsplit(":", 1)[1])

    def kill(self) -> None:
        _kill_group(self.server.process)

    def restart(self) -> None:
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.server.access_key,
                   AWS_SECRET_ACCESS_KEY=self.server.secret_key)
        self.server.process = _respawn(self.server.process, env, self.server.workdir, self.server.workdir / "weed.log")
        wait_port(self.port, proc=self.server.process, log=self.server.workdir / "weed.log")
        client, deadline = self.server.client(), time.monotonic() + 90
        while True:  # the gateway listens before the filer behind it answers
            try:
                client.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        self.server.stop()


def start_restartable_s3() -> RestartableS3:
    return RestartableS3(start_seaweedfs())


@dataclass
class RestartableSmb:
    """A private smbd; :meth:`kill` kills it and every per-connection child, :meth:`restart` starts it with
    the same smb.conf (same port, shares, password database)."""

    server: SambaServer

    @property
    def port(self) -> int:
        return self.server.port

    def kill(self) -> None:
        assert self.server.process is not None
        _kill_group(self.server.process)

    def restart(self) -> None:
        assert self.server.process is not None
        self.server.process = _respawn(self.server.process, None, self.server.root, self.server.root / "smbd.out")
        wait_port(self.port, timeout=30, proc=self.server.process)

    def stop(self) -> None:
        if self.server.process is not None and self.server.process.poll() is None:
            _kill_group(self.server.process)
        shutil.rmtree(self.server.root, ignore_errors=True)


def start_restartable_smb() -> RestartableSmb:
    return RestartableSmb(start_samba(Path(tempfile.mkdtemp(prefix="datasync-faults-samba-"))))


@dataclass
class RestartableAzurite:
    """A private Azurite that keeps its blobs on disk (``--location``) on a fixed port, so that a kill and
    a restart lose nothing that was committed."""

    server: AzuriteServer
    port: int
    #: A container made at start and on disk: Azurite saves its metadata every few seconds, so what a
    #: ``kill -9`` catches younger than that is gone after the restart (the engine copies such blobs again).
    container: str = "faults"

    def kill(self) -> None:
        _kill_group(self.server.process)

    def restart(self) -> None:
        env = dict(os.environ, AZURITE_ACCOUNTS=f"{self.server.account}:{self.server.key}")
        self.server.process = _respawn(self.server.process, env, self.server.workdir,
                                       self.server.workdir / "azurite.log")
        wait_port(self.port, timeout=60, proc=self.server.process)

    def stop(self) -> None:
        if self.server.process.poll() is None:
            _kill_group(self.server.process)
        shutil.rmtree(self.server.workdir, ignore_errors=True)


#: Azurite's metadata store (LokiJS) writes itself to disk every 5 s; waiting a little longer makes the
#: container survive a kill.
AZURITE_SAVE_SECONDS = 6


def start_restartable_azurite() -> RestartableAzurite:
    import base64
    import secrets

    if not AZURITE.exists():
        raise RuntimeError(f"Azurite is not installed at {AZURITE}: run `make azurite`")
    workdir = Path(tempfile.mkdtemp(prefix="datasync-faults-azurite-"))
    account, key, port = "datasyncfaults", base64.b64encode(secrets.token_bytes(64)).decode(), free_port()
    log = workdir / "azurite.log"
    env = dict(os.environ, AZURITE_ACCOUNTS=f"{account}:{key}")
    cmd = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(workdir / "data"),
           "--loose", "--skipApiVersionCheck", "--disableTelemetry", "--disableProductStyleUrl"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    server = AzuriteServer(f"http://127.0.0.1:{port}/{account}", account, key, proc, workdir)
    try:
        wait_port(port, timeout=60, proc=proc, log=log)
        restartable = RestartableAzurite(server, port)
        server.service().create_container(restartable.container)
        time.sleep(AZURITE_SAVE_SECONDS)
    except BaseException:
        _kill_group(proc)
        raise
    return restartable
