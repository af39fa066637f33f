"""``[datasync] manifest_stores`` is declared by the provider, so Airflow's own CLI lists and explains it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from airflow_datasync.provider import CONFIG

AIRFLOW = str(Path(sys.executable).parent / "airflow")


def _airflow(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__DATASYNC__MANIFEST_STORES"}
    return subprocess.run([AIRFLOW, *args], env=env, check=True, capture_output=True, text=True).stdout


def test_airflow_config_list_shows_the_setting_with_its_description_and_default():
    out = _airflow("config", "list", "--section", "datasync", "--include-descriptions", "--include-examples",
                   "--show-values")
    option = CONFIG["datasync"]["options"]["manifest_stores"]
    assert "[datasync]" in out
    assert f"# {option['description']}" in out
    assert f"# Example: manifest_stores = {option['example']}" in out
    assert "\nmanifest_stores = \n" in out  # the default: empty, the engine's default store


def test_the_default_means_the_engines_default_store(monkeypatch):
    from airflow_datasync import engine
    from airflow_datasync.catalog import StoreRef
    from airflow_datasync.plugin import settings

    assert _airflow("config", "get-value", "datasync", "manifest_stores").strip() == ""
    monkeypatch.delenv("AIRFLOW__DATASYNC__MANIFEST_STORES", raising=False)
    assert settings.manifest_stores() == [StoreRef(engine.DEFAULT_STORE)]
