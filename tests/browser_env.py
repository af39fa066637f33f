"""A real ``airflow api-server`` on 127.0.0.1 and Debian's Chromium driven by Playwright, once per session.

Every real-browser test uses these fixtures (registered in tests/conftest.py): the DataSync pages
(tests/plugin/browser/) and the SMB connection form (tests/locations/smb/test_smb_connection_form.py). The server
shares the tests' AIRFLOW_HOME, metadata DB and manifest store (tests/conftest.py), so the executions a
test runs with ``dag.test()`` are the ones its pages show. It logs users in with the simple auth manager:
``viewer`` (role viewer, what the pages need) and ``admin`` (who may add connections), with passwords in a
private passwords file. Playwright cannot download its own browser on this network; it launches
``/usr/bin/chromium`` (``make test`` installs it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.servers import free_port, stop_airflow_processes

CHROMIUM = "/usr/bin/chromium"
#: Without the networking flags Chromium keeps dialling out, which this closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWER, ADMIN = "viewer", "admin"
ROLES = {VIEWER: "viewer", ADMIN: "admin"}


@dataclass(frozen=True)
class AirflowServer:
    base_url: str
    passwords: dict[str, str]  # user name → password, for the login form
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


@pytest.fixture(scope="session")
def airflow_server(airflow_db) -> AirflowServer:
    workdir = Path(tempfile.mkdtemp(prefix="datasync-api-server-"))
    passwords = {user: secrets.token_urlsafe(12) for user in ROLES}
    passwords_file = workdir / "passwords.json"
    passwords_file.write_text(json.dumps(passwords))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{user}:{role}" for user, role in ROLES.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
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
        yield AirflowServer(base_url=base_url, passwords=passwords, log=log)
    finally:
        stop_airflow_processes([proc], timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def chromium():
    """Per module, not per session: Playwright's sync API keeps an asyncio loop running in the main thread
    while it is open, and every later ``asyncio.run()`` there (``dag.test()`` running a deferrable
    sensor's trigger in line) would fail with "cannot be called from a running event loop"."""
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


def log_in(page, server: AirflowServer, next_path: str, user: str = VIEWER) -> None:
    """Through Airflow's own login form, as a person does; Airflow then sets the ``_token`` cookie."""
    page.goto(f"{server.base_url}/auth/login?next={quote(server.base_url + next_path, safe='')}")
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(server.passwords[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: url.startswith(server.base_url + next_path) and "/auth/" not in url)


@pytest.fixture
def admin_page(airflow_server, page):
    """A fresh page logged in as ``admin`` (on the UI's home page), for what a viewer may not do."""
    log_in(page, airflow_server, "/", user=ADMIN)
    return page
