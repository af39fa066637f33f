"""Install into an existing Airflow, as the README's "Install into an existing Airflow" says: build the
wheel, install it with Airflow into a fresh venv under the project's locked versions (standing in for
Airflow's constraints file, which is not reachable here), and ask that venv's Airflow what it registered.

The wheel is built from a copy of the checkout with a template and a static file added under
``airflow_datasync/plugin/``: every file under the package ships, not only ``.py`` files, so the UI's
templates and assets reach an installed Airflow. uv comes from PATH or ``.tools/bin/uv`` as in the Makefile;
its cache makes the install a matter of seconds once ``make setup`` has run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "airflow_datasync"
#: Non-Python files a plugin UI would ship; the test adds them to its copy of the checkout.
PROBES = {"plugin/templates/_wheel_probe.html": "<p>{{ probe }}</p>\n", "plugin/static/_wheel_probe.js": "// probe\n"}


def uv() -> str:
    """uv as the Makefile finds it: on PATH, else ``.tools/bin/uv`` (which ``make`` installs when missing)."""
    found = shutil.which("uv") or (str(ROOT / ".tools/bin/uv") if (ROOT / ".tools/bin/uv").exists() else None)
    if found is None:
        subprocess.run(["make", ".tools/bin/uv"], cwd=ROOT, check=True, capture_output=True)
        found = str(ROOT / ".tools/bin/uv")
    return found


def run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    return done.stdout


def source_files(package_dir: Path) -> set[str]:
    return {str(p.relative_to(package_dir.parent)) for p in package_dir.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def checkout_copy(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("checkout")
    for top in ROOT.iterdir():  # pyproject.toml, README.md, .gitignore (hatch honours it), any license file
        if top.is_file():
            shutil.copy(top, copy / top.name)
    shutil.copytree(ROOT / PACKAGE, copy / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for rel, text in PROBES.items():
        (copy / PACKAGE / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / PACKAGE / rel).write_text(text)
    return copy


@pytest.fixture(scope="module")
def wheel(checkout_copy: Path) -> Path:
    out = checkout_copy / "dist"
    run([uv(), "build", "--wheel", "--out-dir", str(out)], cwd=checkout_copy)
    (built,) = out.glob(f"{PACKAGE}-*.whl")
    return built


@pytest.fixture(scope="module")
def airflow_venv(wheel: Path, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A fresh venv holding Airflow 3.3.2 and the wheel, and the environment to run its ``airflow`` in."""
    work = tmp_path_factory.mktemp("install")
    constraints = work / "constraints.txt"
    constraints.write_text(run([uv(), "export", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project"], cwd=ROOT))
    venv = work / "venv"
    run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=work)
    python = venv / "bin" / "python"
    # Hard links from uv's cache (same filesystem) instead of the Makefile's copies: seconds, not a minute.
    install_env = {**os.environ, "UV_LINK_MODE": "hardlink"}
    version = next(line.split("==")[1] for line in constraints.read_text().splitlines()
                   if line.startswith("apache-airflow=="))
    run([uv(), "pip", "install", "--quiet", "--python", str(python), f"apache-airflow=={version}", str(wheel),
         "--constraint", str(constraints)], cwd=work, env=install_env)
    home = work / "airflow-home"
    home.mkdir()
    # Only what a user's shell would have: none of this session's AIRFLOW_* settings, no checkout on sys.path.
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(work)), "LANG": "C.UTF-8",
           "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    return venv, env


def test_wheel_ships_every_package_and_data_file(wheel: Path, checkout_copy: Path):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    shipped = {n for n in names if n.startswith(f"{PACKAGE}/")}
    assert shipped == source_files(checkout_copy / PACKAGE)
    assert {f"{PACKAGE}/{rel}" for rel in PROBES} <= shipped
    packages = {str(p.parent.relative_to(checkout_copy)) for p in (checkout_copy / PACKAGE).rglob("__init__.py")}
    assert {f"{p}/__init__.py" for p in packages} <= shipped
    assert not any(n.endswith(".pyc") or "__pycache__" in n for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(entry_points).decode()
    assert "[apache_airflow_provider]" in text and "[airflow.plugins]" in text and "airflow-datasync = " in text


def test_installed_airflow_sees_provider_connection_type_and_data_files(airflow_venv):
    venv, env = airflow_venv
    probe = r"""
import json, importlib.resources, airflow_datasync
from airflow.providers_manager import ProvidersManager
pm = ProvidersManager()
info = pm.providers.get("airflow-datasync")
widgets = {k: v.field for k, v in pm.connection_form_widgets.items() if k.startswith("extra__datasync_smb__")}
hooks = {m.connection_type: m.hook_class_name for m in pm.iter_connection_type_hook_ui_metadata()}
files = importlib.resources.files("airflow_datasync.plugin")
print(json.dumps({"module": airflow_datasync.__file__, "version": info and info.version,
                  "hook": hooks.get("datasync_smb"), "widgets": sorted(widgets),
                  "smb_version": widgets.get("extra__datasync_smb__smb_version"),
                  "template": files.joinpath("templates/_wheel_probe.html").read_text()}))
"""
    out = json.loads(run([str(venv / "bin" / "python"), "-c", probe], cwd=venv, env=env).strip().splitlines()[-1])
    assert out["module"].startswith(str(venv)), out["module"]  # the installed wheel, not the checkout
    assert out["version"] == __import__("airflow_datasync").__version__
    assert out["hook"] == "airflow_datasync.hooks.smb.SmbShareHook"
    assert {f"extra__datasync_smb__{f}" for f in ("domain", "smb_version", "require_signing", "encrypt",
                                                   "auth_protocol")} == set(out["widgets"])
    assert out["smb_version"]["schema"]["values_display"]["null"]
    assert out["template"] == PROBES["plugin/templates/_wheel_probe.html"]


def test_installed_airflow_lists_the_plugin_and_the_provider(airflow_venv):
    venv, env = airflow_venv
    plugins = json.loads(run([str(venv / "bin" / "airflow"), "plugins", "--output", "json"], cwd=venv, env=env))
    (ours,) = [p for p in plugins if p["name"] == "datasync_native"]
    assert ours["source"].startswith("airflow-datasync==")
    providers = json.loads(run([str(venv / "bin" / "airflow"), "providers", "list", "--output", "json"], cwd=venv, env=env))
    assert "airflow-datasync" in {p["package_name"] for p in providers}


def test_provider_info_is_valid_for_airflow_and_links_nowhere_made_up():
    """Airflow validates provider info against its runtime schema at discovery; external-doc-url is
    optional there, and the project has no public site, so the info names no URL at all."""
    import jsonschema
    from airflow.providers_manager import _create_provider_info_schema_validator

    from airflow_datasync.provider import get_provider_info

    info = get_provider_info()
    _create_provider_info_schema_validator().validate(info)
    assert "http" not in json.dumps(info)
    with pytest.raises(jsonschema.ValidationError):  # the validator is live: a wrong shape is refused
        _create_provider_info_schema_validator().validate({**info, "integrations": "not a list"})
