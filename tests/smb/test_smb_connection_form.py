"""The ``datasync_smb`` connection form: "SMB version" offers a labelled Auto choice instead of ``null``,
and the hook reads every way a connection can say "negotiate" (old connections included)."""

from __future__ import annotations

import json

import pytest

from airflow_datasync import provider
from airflow_datasync.hooks.smb import DIALECTS, SMB_VERSIONS, SmbConnectionError, SmbShareHook


def _ui_label(value, values_display: dict) -> str:
    """How Airflow's form labels a dropdown option (its FieldDropdown): values_display[str(value) or "null"]."""
    key = "null" if value is None else str(value)
    return values_display.get(key, key)


def _form_fields() -> dict:
    """The extra fields the connection form gets, through the service behind /ui/connections/hook_meta."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    HookMetaService.hook_meta_data.cache_clear()
    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "datasync_smb"]
    return meta.extra_fields


def test_smb_version_dropdown_labels_every_choice():
    field = _form_fields()["smb_version"]
    schema = field["schema"]
    assert schema["title"] == "SMB version" and field["value"] is None  # a new connection starts on Auto
    assert schema["enum"][0] is None and list(schema["enum"][1:]) == list(SMB_VERSIONS)
    labels = [_ui_label(v, schema["values_display"]) for v in schema["enum"]]
    assert all(label and label.lower() not in ("null", "none", "") for label in labels), labels
    assert "negotiate" in labels[0].lower()
    assert len(set(labels)) == len(labels)


def test_form_versions_are_the_hooks():
    assert provider.SMB_VERSIONS == SMB_VERSIONS and set(SMB_VERSIONS) <= set(DIALECTS)


def _config(monkeypatch, extra):
    monkeypatch.setenv("AIRFLOW_CONN_SMB_FORM_TEST", json.dumps(
        {"conn_type": "datasync_smb", "host": "files.example.com", "login": "svc", "password": "x",
         **({"extra": extra} if extra is not None else {})}))
    return SmbShareHook("smb_form_test").get_config()


SAVED_BY_THE_FORM = {"domain": None, "smb_version": None, "require_signing": True, "encrypt": False,
                     "auth_protocol": "negotiate"}  # what the form saves with Auto (the browser test checks it)


@pytest.mark.parametrize("extra", [None, {}, SAVED_BY_THE_FORM, {"smb_version": ""}, {"smb_version": "auto"},
                                   {"extra__datasync_smb__smb_version": None}, {"smb_version": " Auto "}])
def test_unset_or_auto_version_negotiates(monkeypatch, extra):
    assert _config(monkeypatch, extra).dialect is None


@pytest.mark.parametrize("version", SMB_VERSIONS)
def test_each_offered_version_pins_its_dialect(monkeypatch, version):
    assert _config(monkeypatch, {"smb_version": version}).dialect == DIALECTS[version]


def test_an_unknown_version_names_the_connection_and_the_choices(monkeypatch):
    with pytest.raises(SmbConnectionError) as info:
        _config(monkeypatch, {"smb_version": "4.0"})
    text = str(info.value)
    assert "smb_form_test" in text and "'4.0'" in text and all(v in text for v in SMB_VERSIONS)


def test_auto_connects_to_a_real_server(samba, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SMB_FORM_AUTO", json.dumps(
        {"conn_type": "datasync_smb", "host": "127.0.0.1", "port": samba.port, "login": samba.user,
         "password": samba.password, "extra": {"smb_version": None}}))
    ok, message = SmbShareHook("smb_form_auto").test_connection()
    assert ok, message


# -- the form in a real browser -----------------------------------------------------------------------------
# Airflow's api-server (all users admins, so no login page) on 127.0.0.1 and headless Chromium driven over
# the DevTools protocol (websockets, which Airflow's uvicorn brings): what a user sees in "SMB version",
# and what the form saves for Auto.

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1400,1000"]
WAIT_SECONDS = 120  # a bound for a shared, loaded machine, never an assertion on speed


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process) -> None:
    import os
    import signal
    import subprocess

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def _wait_for(check, what: str):
    import time

    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture(scope="module")
def api_server(airflow_db, tmp_path_factory):
    import os
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    port = _free_port()
    env = {**os.environ, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
           "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}
    log = tmp_path_factory.mktemp("api-server") / "api-server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "api-server", "--host", "127.0.0.1",
                                    "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            return urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5).status == 200
        except OSError:
            return False

    try:
        _wait_for(up, "the api-server")
        yield base
    finally:
        _stop(process)


class Browser:
    """Just enough of the DevTools protocol: evaluate JavaScript, type, press keys, click."""

    def __init__(self, ws) -> None:
        self.ws, self.next_id = ws, 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message.get("result", {})

    def js(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def key(self, name: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=name, code=name, windowsVirtualKeyCode=code)

    def click(self, selector_js: str) -> None:
        """A real mouse click at the middle of the element ``selector_js`` evaluates to."""
        x, y = self.js(f"(() => {{ const e = {selector_js}; e.scrollIntoView({{block: 'center'}}); "
                       "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


@pytest.fixture
def browser(tmp_path):
    import shutil
    import subprocess
    import urllib.request

    from websockets.sync.client import connect

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("the browser test needs Chromium: apt-get install -y chromium", pytrace=False)
    profile = tmp_path / "chromium-profile"
    process = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        port = _wait_for(lambda: port_file.exists() and port_file.read_text().split("\n")[0], "Chromium's port")
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
        url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        with connect(url, max_size=None, open_timeout=WAIT_SECONDS) as ws:
            yield Browser(ws)
    finally:
        _stop(process)


def test_the_form_in_a_browser_shows_auto_and_saves_null(api_server, browser):
    import urllib.request

    from airflow.sdk import Connection

    from airflow_datasync.hooks.smb import SmbConnectionConfig

    dialog = "document.querySelector('[role=dialog]')"
    browser.call("Page.navigate", url=f"{api_server}/connections")
    add = "[...document.querySelectorAll('button')].find(b => b.innerText.trim() == 'Add Connection')"
    _wait_for(lambda: browser.js(f"!!({add})"), "the connections page")
    browser.js(f"{add}.click()")
    _wait_for(lambda: browser.js(f"!!{dialog}?.querySelector('input[role=combobox]')"), "the Add Connection dialog")
    browser.js(f"{dialog}.querySelector('input[role=combobox]').focus()")
    browser.call("Input.insertText", text="SMB share (airflow")
    _wait_for(lambda: browser.js("[...document.querySelectorAll('[role=option]')].length == 1"), "the type's option")
    browser.key("Enter", 13)
    extra = f"[...{dialog}.querySelectorAll('*')].find(e => !e.children.length && e.textContent.trim() == 'Extra Fields')"
    _wait_for(lambda: browser.js(f"!!({extra})"), "the SMB connection's fields")
    browser.click(extra)
    field = "document.getElementById('element_smb_version')"
    shown = _wait_for(lambda: browser.js(f"{field}?.checkVisibility() && {field}.innerText.trim()"), "SMB version")
    assert shown == "Auto (negotiate the highest)"

    browser.js(f"{field}.querySelector('input').focus()")
    browser.key("ArrowDown", 40)
    options = _wait_for(lambda: browser.js("[...document.querySelectorAll('[role=option]')].map(o => o.innerText)"),
                        "the SMB version choices")
    assert options == ["Auto (negotiate the highest)", *(f"SMB {v}" for v in SMB_VERSIONS)]
    browser.key("Enter", 13)  # Auto

    browser.js(f"{dialog}.querySelector('input[name=connection_id]').focus()")
    browser.call("Input.insertText", text="smb_form_browser")
    browser.click(f"[...{dialog}.querySelectorAll('button')].find(b => b.innerText.trim() == 'Save')")
    _wait_for(lambda: browser.js("document.body.innerText.includes('successfully created')"), "the saved connection")

    saved = json.load(urllib.request.urlopen(f"{api_server}/api/v2/connections/smb_form_browser"))
    extra_saved = json.loads(saved["extra"])
    assert saved["conn_type"] == "datasync_smb" and extra_saved["smb_version"] is None
    config = SmbConnectionConfig.from_connection(Connection(conn_id="smb_form_browser", conn_type="datasync_smb",
                                                            extra=saved["extra"]))
    assert config.dialect is None and config.auth_protocol == "negotiate" and config.require_signing
