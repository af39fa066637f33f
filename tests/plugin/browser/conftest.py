"""A real ``airflow api-server`` on 127.0.0.1 and Debian's Chromium driven by Playwright, once per session.

The server shares the tests' AIRFLOW_HOME, metadata DB and manifest store (tests/conftest.py), so the
executions a test runs with ``dag.test()`` are the ones its pages show. It logs users in with the simple
auth manager: one ``viewer`` whose password is written to a private passwords file. Playwright cannot
download its own browser on this network; it launches ``/usr/bin/chromium`` (``make test`` installs it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port

CHROMIUM = "/usr/bin/chromium"
#: Without the networking flags Chromium keeps dialling out, which this closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWER = "viewer"


@dataclass(frozen=True)
class AirflowServer:
    base_url: str
    username: str
    password: str
    log: Path


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    """Wait until the API answers its health route (starting takes 10-30 s on a busy 2-core machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"airflow api-server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"airflow api-server not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT first (uvicorn shuts its workers down), then the whole process group if anything is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.fixture(scope="session")
def airflow_server(airflow_db) -> AirflowServer:
    workdir = Path(tempfile.mkdtemp(prefix="datasync-api-server-"))
    password = secrets.token_urlsafe(12)
    passwords = workdir / "passwords.json"
    passwords.write_text(json.dumps({VIEWER: password}))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{VIEWER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
    }
    log = workdir / "api-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), "api-server", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        _wait_healthy(f"{base_url}/api/v2/monitor/health", proc, log)
        yield AirflowServer(base_url=base_url, username=VIEWER, password=password, log=log)
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium)", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    # Waits, not time limits: the 2-core machine is shared, and the UI loads its frame after its own data.
    expect.set_options(timeout=30_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    """A fresh browser context (no cookies) with the viewport of the documentation's screenshot."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    yield context.new_page()
    context.close()
