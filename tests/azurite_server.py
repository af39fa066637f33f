"""Azurite (the Azure Storage emulator, npm package ``azurite``) on 127.0.0.1 for the Azure Blob tests.

``make azurite`` installs it from ``tests/azurite/package-lock.json`` into ``.tools/azurite``. Only the
blob service runs, in memory, on a port of its own choosing, with an account and key made for the session
(not the emulator's well-known ones, so that a test can look for the key in what an execution recorded).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
INSTALL_HINT = f"Azurite is not installed at {AZURITE}: run `make azurite` (npm install of tests/azurite)"
_LISTENING = re.compile(r"listens on (http://127\.0\.0\.1:(\d+))")


@dataclass
class AzuriteServer:
    endpoint: str  #: the account's blob endpoint, http://127.0.0.1:<port>/<account>
    account: str
    key: str
    process: subprocess.Popen
    workdir: Path

    def connection_json(self) -> str:
        """A ``wasb`` connection as the Microsoft Azure provider's form fills it: account, key, account URL."""
        return json.dumps({"conn_type": "wasb", "login": self.account, "password": self.key, "host": self.endpoint})

    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
                f"BlobEndpoint={self.endpoint};")

    def service(self):
        """An SDK client of the account, for tests to arrange and inspect blobs from the outside."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_azurite(timeout: float = 60.0) -> AzuriteServer:
    if not AZURITE.exists():
        raise RuntimeError(INSTALL_HINT)
    workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
    account = "datasynctest"
    key = base64.b64encode(secrets.token_bytes(64)).decode()
    log = workdir / "azurite.log"
    env = dict(os.environ, AZURITE_ACCOUNTS=f"{account}:{key}")
    cmd = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
           "--extentMemoryLimit", "2048", "--loose", "--skipApiVersionCheck", "--disableTelemetry",
           "--disableProductStyleUrl"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        found = _LISTENING.search(log.read_text())
        if found:
            return AzuriteServer(f"{found.group(1)}/{account}", account, key, proc, workdir)
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"Azurite did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)
