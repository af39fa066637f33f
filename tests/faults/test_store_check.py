"""Defect 4: LAUNCHING checks the manifest store like a location (it exists, lists, takes a probe) before
anything is created at the destination, and a store bucket is never created.

A SeaweedFS of this module's own, with two identities (admin, and one allowed only Read and List), runs
the CLI in a subprocess as a user would: exit code 2, one ``error:`` line naming the store, no traceback,
no destination folder, nothing written in the store, the bucket list unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.figures import Figure, record
from tests.servers import start_seaweedfs

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY, ADMIN_SECRET = "store-admin-key", "store-admin-secret-Kp4"
READER_KEY, READER_SECRET = "store-reader-key", "store-reader-secret-Wm7"
BUCKET = "manifests"


@pytest.fixture(scope="module")
def store_s3(tmp_path_factory):
    config = tmp_path_factory.mktemp("s3conf") / "identities.json"
    config.write_text(json.dumps({"identities": [
        {"name": "admin", "credentials": [{"accessKey": ADMIN_KEY, "secretKey": ADMIN_SECRET}],
         "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
        {"name": "reader", "credentials": [{"accessKey": READER_KEY, "secretKey": READER_SECRET}],
         "actions": ["Read", "List"]},
    ]}))
    server = start_seaweedfs(ADMIN_KEY, ADMIN_SECRET, s3_config=config)
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def connection(server, login: str, password: str) -> str:
    conn = json.loads(server.connection_uri_json())
    return json.dumps({**conn, "login": login, "password": password})


def buckets(server) -> list[str]:
    return sorted(b["Name"] for b in server.client().list_buckets()["Buckets"])


def store_keys(server) -> list[str]:
    return [o["Key"] for o in server.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def run_cli(tmp_path: Path, store: str, conn: str) -> tuple[subprocess.CompletedProcess, Path]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_text("a")
    env = dict(os.environ, PYTHONPATH=str(ROOT), AIRFLOW_CONN_DATASYNC_STORE_CHECK=conn)
    done = subprocess.run([sys.executable, "-m", "airflow_datasync.cli", "run", str(src), str(dst), "--store", store,
                           "--store-conn-id", "datasync_store_check", "-q"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    return done, dst


CASES = {
    # case: (store bucket, login, password, error type's words in the message)
    "wrong-secret": (BUCKET, ADMIN_KEY, "not-the-secret-Qv2", "the secret key is wrong"),
    "misspelt-bucket": ("manifestz", ADMIN_KEY, ADMIN_SECRET, "the bucket does not exist"),
    "read-only": (BUCKET, READER_KEY, READER_SECRET, "the credentials lack permission"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_store_that_cannot_hold_the_execution_fails_launching_before_anything_is_created(store_s3, tmp_path, case):
    bucket, login, password, words = CASES[case]
    before = buckets(store_s3)
    started = time.monotonic()
    done, dst = run_cli(tmp_path, f"s3://{bucket}/runs", connection(store_s3, login, password))
    elapsed = time.monotonic() - started

    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: manifest store s3://{bucket}/runs (connection datasync_store_check): "), line
    assert words in line, line
    assert password not in done.stderr + done.stdout
    assert not dst.exists(), "the destination folder was created before the store was checked"
    assert buckets(store_s3) == before, "a bucket was created for the store"
    assert store_keys(store_s3) == [], "something was written in the store"
    record(Figure(case=f"store-check/{case}", group="Destination faults",
                  fault={"wrong-secret": "S3 manifest store with a wrong secret key",
                         "misspelt-bucket": "S3 manifest store in a bucket that does not exist",
                         "read-only": "S3 manifest store through a Read+List-only identity"}[case],
                  holds="LAUNCHING fails (CLI exit 2, one error line naming the store, no traceback) before the "
                        "destination folder is created; no bucket created; nothing written in the store",
                  runs=1, faults_injected=1, files_checked=3, converge_s=None,
                  notes=f"refused in {elapsed:.1f} s (CLI start included)"))


def test_the_reader_identity_reads(store_s3):
    """The read-only case is refused for writing, not for a misconfigured identity: it lists."""
    import boto3

    reader = boto3.client("s3", endpoint_url=store_s3.endpoint, aws_access_key_id=READER_KEY,
                          aws_secret_access_key=READER_SECRET, region_name=store_s3.region)
    assert reader.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_a_good_store_runs_and_leaves_no_probe(store_s3, tmp_path):
    done, dst = run_cli(tmp_path, f"s3://{BUCKET}/runs", connection(store_s3, ADMIN_KEY, ADMIN_SECRET))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (dst / "a.txt").read_text() == "a"
    keys = store_keys(store_s3)
    assert any(k.endswith("/report.json") for k in keys)
    assert not [k for k in keys if ".~ds-probe" in k]
    for key in keys:  # the next case starts from an empty store
        store_s3.client().delete_object(Bucket=BUCKET, Key=key)


def test_a_local_store_is_created_only_under_an_existing_parent(tmp_path):
    from airflow_datasync import engine
    from airflow_datasync.errors import NotFoundError, PermissionDeniedError

    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("f")
    with pytest.raises(NotFoundError, match=r"manifest store .*/no-such-mount/store: .*does not exist"):
        engine.launch(engine.LocationSpec(str(src)), engine.LocationSpec(str(tmp_path / "dst")),
                      store=str(tmp_path / "no-such-mount" / "store"))
    assert not (tmp_path / "dst").exists() and not (tmp_path / "no-such-mount").exists()

    made = engine.launch(engine.LocationSpec(str(src)), engine.LocationSpec(str(tmp_path / "dst")),
                         store=str(tmp_path / "store"))
    assert Path(made.root).is_dir() and not [p for p in (tmp_path / "store").iterdir() if p.name.startswith(".~ds")]

    if os.geteuid() == 0:
        return  # root writes through any mode bits: the read-only case below needs another user
    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o555)
    with pytest.raises(PermissionDeniedError, match="manifest store"):
        engine.launch(engine.LocationSpec(str(src)), engine.LocationSpec(str(tmp_path / "dst2")), store=str(read_only))
    assert not (tmp_path / "dst2").exists()


def test_a_store_secret_rotated_after_launching_fails_the_transfer_without_retries(store_s3, tmp_path, monkeypatch):
    """The store check passed at LAUNCHING; the secret changes before TRANSFERRING: the shard task's first
    read of the store is refused, and the transfer's retry policy fails it at once (not after its retries)."""
    from airflow.sdk import RetryAction

    from airflow_datasync import engine
    from airflow_datasync.errors import PermissionDeniedError
    from airflow_datasync.locations.s3 import settings as s3_settings
    from airflow_datasync.manifest import ExecutionDir
    from airflow_datasync.operators.group import TRANSFER_RETRY_POLICY

    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("f")
    monkeypatch.setenv("AIRFLOW_CONN_DATASYNC_ROTATED", connection(store_s3, ADMIN_KEY, ADMIN_SECRET))
    s3_settings._CACHE.clear()
    execution = engine.launch(engine.LocationSpec(str(src)), engine.LocationSpec(str(tmp_path / "dst")),
                              store=f"s3://{BUCKET}/rotated", store_conn_id="datasync_rotated")
    engine.prepare(execution)
    monkeypatch.setenv("AIRFLOW_CONN_DATASYNC_ROTATED", connection(store_s3, ADMIN_KEY, "rotated-Hv3"))
    s3_settings._CACHE.clear()  # a new task process reads the connection anew
    try:
        with pytest.raises(PermissionDeniedError) as refused:
            engine.transfer(ExecutionDir(execution.uri, execution.conn_id), 0)  # as the shard task opens it
    finally:
        s3_settings._CACHE.clear()
    decision = TRANSFER_RETRY_POLICY.evaluate(refused.value, try_number=1, max_tries=3)
    assert decision.action == RetryAction.FAIL, decision
    for key in store_keys(store_s3):
        store_s3.client().delete_object(Bucket=BUCKET, Key=key)
