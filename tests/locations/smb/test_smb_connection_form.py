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
# The session's api-server and Chromium (tests/browser_env.py), logged in as admin (a viewer may not add a
# connection): what a user sees in "SMB version", and what the form saves for Auto.


def test_the_form_in_a_browser_shows_auto_and_saves_null(airflow_server, admin_page):
    from airflow.sdk import Connection
    from playwright.sync_api import expect

    from airflow_datasync.hooks.smb import SmbConnectionConfig

    page = admin_page
    page.goto(f"{airflow_server.base_url}/connections")
    page.get_by_role("button", name="Add Connection", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[role=combobox]").first.press_sequentially("SMB share (airflow")
    expect(page.get_by_role("option")).to_have_count(1)  # the type's option
    page.keyboard.press("Enter")
    dialog.get_by_text("Extra Fields", exact=True).click()
    field = page.locator("#element_smb_version")
    expect(field).to_be_visible()
    expect(field).to_have_text("Auto (negotiate the highest)")

    field.get_by_role("combobox").focus()
    page.keyboard.press("ArrowDown")
    choices = ["Auto (negotiate the highest)", *(f"SMB {v}" for v in SMB_VERSIONS)]
    expect(page.get_by_role("option")).to_have_text(choices)
    page.keyboard.press("Enter")  # Auto

    dialog.locator("input[name=connection_id]").fill("smb_form_browser")
    page.keyboard.press("Tab")  # the form validates on blur, and only a valid form enables Save
    dialog.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("body")).to_contain_text("successfully created")

    # Through the REST API, with the session cookie the login set.
    saved = page.request.get(f"{airflow_server.base_url}/api/v2/connections/smb_form_browser").json()
    extra_saved = json.loads(saved["extra"])
    assert saved["conn_type"] == "datasync_smb" and extra_saved["smb_version"] is None
    config = SmbConnectionConfig.from_connection(Connection(conn_id="smb_form_browser", conn_type="datasync_smb",
                                                            extra=saved["extra"]))
    assert config.dialect is None and config.auth_protocol == "negotiate" and config.require_signing
