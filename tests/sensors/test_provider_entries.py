"""The provider info lists the sensor and trigger modules, and each names a module that imports."""

from __future__ import annotations

import importlib

from airflow_datasync.provider import get_provider_info


def test_sensors_and_triggers_sections_name_importable_modules():
    info = get_provider_info()
    modules = {section: [m for entry in info[section] for m in entry["python-modules"]]
               for section in ("sensors", "triggers")}
    assert "airflow_datasync.sensors.location_quiet" in modules["sensors"]
    assert "airflow_datasync.triggers.execution" in modules["triggers"]
    # Both engines' sensors: two "sensors" keys in one dict literal would silently keep only the last.
    assert "airflow_datasync.sensors.aws_datasync" in modules["sensors"]
    assert "airflow_datasync.triggers.aws_datasync" in modules["triggers"]
    assert [e["integration-name"] for e in info["sensors"]] == ["airflow-datasync"]
    for names in modules.values():
        for name in names:
            importlib.import_module(name)
