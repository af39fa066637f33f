"""Secrets: for every backend with credentials (S3 access and secret key, with the S3 manifest store; SMB
password; Azure account key, SAS and connection string), real executions through the CLI in a subprocess
(connections from ``AIRFLOW_CONN_*``), including failing ones (a wrong secret, an unreachable server, a
secret changed between LAUNCHING and TRANSFERRING so that every file fails with a text of its own), and
one Airflow ``dag.test()`` run in a private AIRFLOW_HOME. Each secret, and its base64 and URL-encoded
forms, is searched for in: stdout and stderr, every file of every execution in the manifest store
(Parquet decoded too, JSON, journals, progress files, reports, launch records), the exception texts with
their causes, and for Airflow the task logs and every row of its metadata DB (XCom, task state). 0 hits."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.faults.figures import Figure, record
from tests.faults.secret_search import Sweep
from tests.servers import free_port

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]


def make_source(root: Path) -> Path:
    (root / "d").mkdir(parents=True)
    for rel in ("a.txt", "d/b.bin", "d/c.txt"):
        (root / rel).write_bytes(os.urandom(2048))
    return root


def cli(sweep: Sweep, place: str, conns: dict[str, dict], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update({f"AIRFLOW_CONN_{name.upper()}": json.dumps(conn) for name, conn in conns.items()})
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-m", "airflow_datasync.cli", "run", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    sweep.text(f"{place} stdout", done.stdout)
    sweep.text(f"{place} stderr", done.stderr)
    return done


def in_process(sweep: Sweep, place: str, conns: dict[str, dict], call) -> object:
    """``call()`` with ``conns`` set as AIRFLOW_CONN_* in this process (the S3 settings cache cleared),
    its log lines at INFO (what an Airflow task log holds) and any exception it raises searched."""
    import logging

    from airflow_datasync.locations.s3 import settings as s3_settings

    keys = {f"AIRFLOW_CONN_{name.upper()}": json.dumps(conn) for name, conn in conns.items()}
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    s3_settings._CACHE.clear()
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda rec: lines.append(logging.Formatter("%(name)s %(message)s").format(rec))  # type: ignore[method-assign]
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        return call()
    except Exception as exc:  # every failure is searched, whatever its type
        sweep.exception(f"{place} exception", exc)
        return exc
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        sweep.text(f"{place} log", "\n".join(lines))
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        s3_settings._CACHE.clear()


def finish(sweep: Sweep, case: str, fault: str, runs: int, notes: str) -> None:
    assert sweep.places > 10
    assert sweep.hits == [], "\n".join(sweep.hits)
    record(Figure(case=f"secrets/{case}", group="Secrets", fault=fault,
                  holds="no secret (raw, base64 or URL-encoded) in output, logs, exception texts, launch records, "
                        "manifests, journals, progress files or reports",
                  runs=runs, faults_injected=runs - 1, files_checked=sweep.places, notes=notes))


def test_s3_and_the_s3_manifest_store(s3_server, bucket, tmp_path):
    from airflow_datasync import engine

    src = make_source(tmp_path / "src")
    good = json.loads(s3_server.connection_uri_json())
    bad = {**good, "password": "wrong-s3-secret-Pq9Zt"}
    down = {**good, "extra": {**good["extra"], "endpoint_url": f"http://127.0.0.1:{free_port()}"}}
    conns = {"sweep_good": good, "sweep_bad": bad, "sweep_down": down}
    sweep = Sweep([good["password"], bad["password"]])
    store = f"s3://{bucket}/store"
    ok = cli(sweep, "good run", conns, str(src), f"s3://{bucket}/dst", "--destination-conn-id", "sweep_good",
             "--store", store, "--store-conn-id", "sweep_good")
    assert ok.returncode == 0, ok.stderr[-2000:]
    back = cli(sweep, "S3 source", conns, f"s3://{bucket}/dst", str(tmp_path / "back"), "--source-conn-id",
               "sweep_good", "--store", store, "--store-conn-id", "sweep_good")
    assert back.returncode == 0, back.stderr[-2000:]
    for place, args in {"wrong destination secret": ("--destination-conn-id", "sweep_bad", "--store-conn-id", "sweep_good"),
                        "wrong store secret": ("--destination-conn-id", "sweep_good", "--store-conn-id", "sweep_bad"),
                        "unreachable destination": ("--destination-conn-id", "sweep_down", "--store-conn-id", "sweep_good"),
                        "unreachable store": ("--destination-conn-id", "sweep_good", "--store-conn-id", "sweep_down")}.items():
        failed = cli(sweep, place, conns, str(src), f"s3://{bucket}/dst2", "--store", store, *args)
        assert failed.returncode == 2 and "error:" in failed.stderr, (place, failed.stderr[-2000:])
        err = in_process(sweep, f"{place} (in process)", conns, lambda a=args: engine.run_execution(
            engine.LocationSpec(str(src)), engine.LocationSpec(f"s3://{bucket}/dst2", a[1]), {},
            store=store, store_conn_id=a[3]))
        assert isinstance(err, Exception), place

    # The secret changes between LAUNCHING and TRANSFERRING: every file fails at the destination with a text.
    os.environ["AIRFLOW_CONN_SWEEP_MID"] = json.dumps(good)
    execution = in_process(sweep, "launch", conns, lambda: engine.launch(
        engine.LocationSpec(str(src)), engine.LocationSpec(f"s3://{bucket}/dst3", "sweep_mid"), {},
        store=store, store_conn_id="sweep_good"))
    in_process(sweep, "prepare", conns, lambda: engine.prepare(execution))
    os.environ["AIRFLOW_CONN_SWEEP_MID"] = json.dumps(bad)
    try:
        err = in_process(sweep, "transfer with a changed secret", conns, lambda: engine.transfer(execution, 0))
        assert type(err).__name__ == "PermanentShardError", err
        for phase in (engine.finalize, engine.verify, engine.report):
            in_process(sweep, phase.__name__, conns, lambda p=phase: p(execution))
    finally:
        os.environ.pop("AIRFLOW_CONN_SWEEP_MID", None)
    sweep.s3_prefix("manifest store", s3_server.client(), bucket, "store/")
    finish(sweep, "s3", "S3 runs with access/secret key (S3 source, destination and manifest store); a wrong "
           "secret and an unreachable endpoint for the destination and for the store; a secret changed "
           "between LAUNCHING and TRANSFERRING", runs=7, notes="the store's objects downloaded and searched")


def test_smb_password(samba, smb_folder, tmp_path):
    from airflow_datasync import engine

    src = make_source(tmp_path / "src")
    good = json.loads(os.environ["AIRFLOW_CONN_DATASYNC_SMB_TEST"])
    bad = {**good, "password": "wrong-smb-pass-Lk2x"}
    conns = {"sweep_good": good, "sweep_bad": bad}
    sweep = Sweep([good["password"], bad["password"]])
    store = tmp_path / "store"
    folder = smb_folder(create=False)
    ok = cli(sweep, "good run", conns, str(src), folder.uri, "--destination-conn-id", "sweep_good", "--store", str(store))
    assert ok.returncode == 0, ok.stderr[-2000:]
    back = cli(sweep, "SMB source", conns, folder.uri, str(tmp_path / "back"), "--source-conn-id", "sweep_good",
               "--store", str(store))
    assert back.returncode == 0, back.stderr[-2000:]
    dead = folder.uri.replace(f":{samba.port}/", f":{free_port()}/")  # the URI's port wins over the connection's
    for place, (uri, conn_id) in {"wrong password": (folder.uri, "sweep_bad"),
                                  "unreachable server": (dead, "sweep_good")}.items():
        failed = cli(sweep, place, conns, str(src), uri, "--destination-conn-id", conn_id, "--store", str(store))
        assert failed.returncode == 2, (place, failed.stderr[-2000:])
        err = in_process(sweep, f"{place} (in process)", conns, lambda u=uri, c=conn_id: engine.run_execution(
            engine.LocationSpec(str(src)), engine.LocationSpec(u, c), {}, store=str(store)))
        assert isinstance(err, Exception), place
    # A permission error on the share: a read-only source file copied onto a read-only destination file.
    (folder.disk / "d" / "b.bin").chmod(0o444)
    (folder.disk / "d").chmod(0o555)
    try:
        (src / "d" / "b.bin").write_bytes(os.urandom(4096))
        in_process(sweep, "permission denied at the destination", conns, lambda: engine.run_execution(
            engine.LocationSpec(str(src)), engine.LocationSpec(folder.uri, "sweep_good"), {}, store=str(store)))
    finally:
        (folder.disk / "d").chmod(0o755)
    sweep.tree("manifest store", store)
    finish(sweep, "smb", "SMB runs with a password (source and destination); a wrong password; an unreachable "
           "server; a write refused on the share", runs=5, notes="local manifest store searched file by file")


def test_azure_key_sas_and_connection_string(azurite, azure_container, tmp_path):
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    from airflow_datasync import engine

    src = make_source(tmp_path / "src")
    sas = generate_account_sas(azurite.account, azurite.key, ResourceTypes(service=True, container=True, object=True),
                               AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True,
                                                     create=True), expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    sig = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    key = json.loads(azurite.connection_json())
    conns = {
        "sweep_key": key,
        "sweep_string": {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string()}},
        "sweep_sas": {"conn_type": "wasb", "host": azurite.endpoint, "extra": {"sas_token": sas}},
        "sweep_bad": {**key, "password": base64.b64encode(os.urandom(64)).decode()},
        "sweep_down": {**key, "host": f"http://127.0.0.1:{free_port()}/{azurite.account}"},
    }
    sweep = Sweep([azurite.key, azurite.connection_string(), sas, sig, conns["sweep_bad"]["password"]])
    store = tmp_path / "store"
    for conn_id in ("sweep_key", "sweep_string", "sweep_sas"):
        ok = cli(sweep, f"good run {conn_id}", conns, str(src), azure_container.uri(conn_id), "--destination-conn-id",
                 conn_id, "--store", str(store))
        assert ok.returncode == 0, ok.stderr[-2000:]
    back = cli(sweep, "Azure source", conns, azure_container.uri("sweep_sas"), str(tmp_path / "back"),
               "--source-conn-id", "sweep_sas", "--store", str(store))
    assert back.returncode == 0, back.stderr[-2000:]
    for place, conn_id in {"wrong key": "sweep_bad", "unreachable account": "sweep_down"}.items():
        failed = cli(sweep, place, conns, str(src), azure_container.uri("x"), "--destination-conn-id", conn_id,
                     "--store", str(store))
        assert failed.returncode == 2, (place, failed.stderr[-2000:])
        err = in_process(sweep, f"{place} (in process)", conns, lambda c=conn_id: engine.run_execution(
            engine.LocationSpec(str(src)), engine.LocationSpec(azure_container.uri("x"), c), {}, store=str(store)))
        assert isinstance(err, Exception), place
    sweep.tree("manifest store", store)
    finish(sweep, "azure", "Azure runs with an account key, a connection string and an account SAS (source and "
           "destination); a wrong key; an unreachable account", runs=6,
           notes="the SAS searched whole and its signature alone")


#: The DAG, written into the private DAG folder (dag.test() runs only a DAG its bundle serialized).
DAG_FILE = textwrap.dedent('''
    import os
    import pendulum
    from airflow.sdk import DAG
    from airflow_datasync.operators import sync_task_group
    src, bucket, smb_uri = os.environ["SWEEP_SRC"], os.environ["SWEEP_BUCKET"], os.environ["SWEEP_SMB_URI"]
    with DAG("secret_sweep", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        sync_task_group("to_s3", source=src, destination=f"s3://{bucket}/af", destination_conn_id="sweep_good",
                        manifest_store=f"s3://{bucket}/af-store", manifest_store_conn_id="sweep_good")
        sync_task_group("to_smb", source=src, destination=smb_uri, destination_conn_id="sweep_smb")
        sync_task_group("wrong_secret", source=src, destination=f"s3://{bucket}/af-bad", destination_conn_id="sweep_bad")
        sync_task_group("wrong_store_secret", source=src, destination=f"s3://{bucket}/af-bad2",
                        destination_conn_id="sweep_good", manifest_store=f"s3://{bucket}/af-store",
                        manifest_store_conn_id="sweep_bad")
''')
DAG_TEST = textwrap.dedent('''
    import importlib.util, os, sys
    from airflow.utils import db
    db.resetdb()
    spec = importlib.util.spec_from_file_location("secret_sweep_dag", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = module.dag.test()
    print("RUN STATE", run.state)
''')


def test_airflow_dag_test_run(s3_server, bucket, samba, smb_folder, tmp_path):
    src = make_source(tmp_path / "src")
    home = tmp_path / "airflow-home"
    (home / "dags").mkdir(parents=True)
    good = json.loads(s3_server.connection_uri_json())
    bad = {**good, "password": "wrong-s3-secret-Af7Qw"}
    smb = json.loads(os.environ["AIRFLOW_CONN_DATASYNC_SMB_TEST"])
    sweep = Sweep([good["password"], bad["password"], smb["password"]])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW_DATASYNC_MANIFEST_STORE": str(home / "executions"),
                "PYTHONPATH": str(ROOT), "AIRFLOW_CONN_SWEEP_GOOD": json.dumps(good),
                "AIRFLOW_CONN_SWEEP_BAD": json.dumps(bad), "AIRFLOW_CONN_SWEEP_SMB": json.dumps(smb),
                "SWEEP_SRC": str(src), "SWEEP_BUCKET": bucket, "SWEEP_SMB_URI": smb_folder(create=False).uri})
    dag_file = home / "dags" / "secret_sweep_dag.py"
    dag_file.write_text(DAG_FILE)
    done = subprocess.run([sys.executable, "-c", DAG_TEST, str(dag_file)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert "RUN STATE failed" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]  # the wrong-secret groups
    sweep.text("dag.test stdout", done.stdout)
    sweep.text("dag.test stderr", done.stderr)
    out = done.stdout + done.stderr
    assert "LAUNCHING failed" in out  # the failing groups produced their texts
    # The wrong store secret fails its launch task cleanly, naming the store, before the destination is touched.
    assert f"LAUNCHING failed: manifest store s3://{bucket}/af-store (connection sweep_bad): " in out
    assert "Contents" not in s3_server.client().list_objects_v2(Bucket=bucket, Prefix="af-bad2/")
    sweep.tree("AIRFLOW_HOME", home)  # task logs, the metadata DB's rows (XCom, task state), the local store
    sweep.s3_prefix("S3 manifest store", s3_server.client(), bucket, "af-store/")
    assert list((home / "executions").rglob("report.json")), "the SMB group's execution is in the local store"
    finish(sweep, "airflow", "an Airflow dag.test() run of four sync groups: to S3 with an S3 manifest store, to SMB, "
           "a wrong destination secret, a wrong store secret", runs=4,
           notes="AIRFLOW_HOME searched whole: logs and every row of the metadata DB (XCom, task state store)")
