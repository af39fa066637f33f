"""The SMB connection type in Airflow: provider registration, the hook, and a DAG run with an SMB destination."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from airflow_datasync.hooks.smb import SmbShareHook
from airflow_datasync.provider import get_provider_info


def test_provider_registers_the_connection_type():
    info = get_provider_info()
    (conn,) = [c for c in info["connection-types"] if c["connection-type"] == "datasync_smb"]
    assert conn["hook-class-name"] == "airflow_datasync.hooks.smb.SmbShareHook"
    assert conn["ui-field-behaviour"]["hidden-fields"] == ["schema"]
    assert set(conn["conn-fields"]) == {"domain", "smb_version", "require_signing", "encrypt", "auth_protocol"}
    assert {"integration-name": "airflow-datasync", "python-modules": ["airflow_datasync.hooks.smb"]} in info["hooks"]


def test_hook_reads_a_json_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SMB_HOOK_TEST", json.dumps({
        "conn_type": "datasync_smb", "host": "files.example.com", "login": "svc", "password": "p@ss",
        "extra": {"domain": "CORP", "smb_version": "3.0.2", "encrypt": "true", "require_signing": "false",
                  "auth_protocol": "NTLM"}}))
    config = SmbShareHook("smb_hook_test").get_config()
    assert (config.host, config.port, config.username) == ("files.example.com", 445, "CORP\\svc")
    assert (config.dialect, config.encrypt, config.require_signing, config.auth_protocol) == (0x0302, True, False, "ntlm")
    assert "p@ss" not in repr(config)
    assert SmbShareHook.conn_name_attr == "smb_conn_id" and SmbShareHook.default_conn_name == "datasync_smb_default"


def _load_dag(dags_folder: Path):
    spec = importlib.util.spec_from_file_location("datasync_smb_test_dags", dags_folder / "datasync_smb_test_dags.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.test_smb_sync_dag


def test_dag_run_with_smb_destination(samba, smb_folder, airflow_db, dags_folder, tmp_path):
    src = tmp_path / "src"
    for i in range(12):
        p = src / f"d{i % 3}" / f"f{i}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(bytes([i]) * (i * 1000))
    dst = smb_folder()
    conf = {"source": str(src), "destination": dst.uri, "options": {"files_per_shard": 6}}
    dag = _load_dag(dags_folder)

    run = dag.test(run_conf=conf)
    states = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, []).append(str(ti.state))
    assert str(run.state) == "success", states
    assert len(states["sync.transfer"]) >= 2
    digest = lambda root: {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                           for p in root.rglob("*") if p.is_file()}
    assert digest(dst.disk) == digest(src)
    runs = sorted((airflow_db / "executions" / "test-smb-sync").iterdir())
    report = json.loads((runs[-1] / "report.json").read_text())
    assert report["Status"] == "SUCCESS" and report["FilesVerified"] == 12
    assert samba.password not in (runs[-1] / "launch.json").read_text()
