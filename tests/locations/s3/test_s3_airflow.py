"""A DAG run (``dag.test()``) from a local tree to S3 with the manifest store on S3 too: every phase is an
Airflow task, shards are mapped, the records live in the bucket, and a second run transfers nothing."""

from __future__ import annotations

import json

from tests.airflow.test_sync_dag import load_dag, make_tree, states, tree


def objects(s3, bucket: str, prefix: str) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix):]
            out[rel.rstrip("/")] = "dir" if rel.endswith("/") else s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def reports(s3, bucket: str, prefix: str) -> list[dict]:
    """report.json of every execution under the S3 store, oldest first (execution ids sort by time)."""
    keys = sorted(k for k in objects_keys(s3, bucket, prefix) if k.endswith("/report.json"))
    return [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]


def objects_keys(s3, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]


def test_dag_run_to_s3_with_the_manifest_store_on_s3(s3_server, s3, bucket, airflow_db, dags_folder, tmp_path):
    dag = load_dag(dags_folder, "datasync_s3_test_dags.py", "datasync_test_s3_sync")
    src = tmp_path / "src"
    make_tree(src, files=30)
    (src / "link").unlink()  # symlinks go to S3 as marked objects; keep the tree to files and directories
    conf = {"source": str(src), "destination": f"s3://{bucket}/data", "store": f"s3://{bucket}/manifests",
            "options": {"files_per_shard": 10, "VerifyMode": "POINT_IN_TIME_CONSISTENT"}}

    run = dag.test(run_conf=conf)
    st = states(run)
    assert str(run.state) == "success", st
    assert len(st["sync.transfer"]) >= 3 and set(st["sync.transfer"]) == {"success"}
    for phase in ("launch", "prepare", "finalize", "verify", "report"):
        assert st[f"sync.{phase}"] == ["success"], (phase, st)
    assert objects(s3, bucket, "data/") == tree(src)  # every file with its content, directories as key/ markers

    keys = objects_keys(s3, bucket, "manifests/")
    (first,) = reports(s3, bucket, "manifests/test-s3-sync/")
    base = f"manifests/test-s3-sync/{first['TaskExecutionId']}/"
    for name in ("launch.json", "manifest.parquet", "prepare.json", "finalize.json", "verify.json", "report.json",
                 "report.parquet", "shards/shard-00000.parquet", "shards/shard-00000.json"):
        assert base + name in keys, (name, sorted(keys))
    assert any(k.startswith(base + "shards/shard-00000.journal.") for k in keys)
    assert first["Status"] == "SUCCESS" and first["ShardCount"] == len(st["sync.transfer"])
    assert first["FilesTransferred"] == first["EstimatedFilesToTransfer"] == len(tree(src))
    assert first["FilesVerified"] == first["FilesPrepared"]
    assert first["ReportUri"] == f"s3://{bucket}/{base}report.parquet"
    assert not (airflow_db / "executions" / "test-s3-sync").exists()  # nothing went to the local default store
    launch = s3.get_object(Bucket=bucket, Key=base + "launch.json")["Body"].read()
    assert s3_server.secret_key.encode() not in launch

    rerun = dag.test(run_conf=conf)
    assert str(rerun.state) == "success", states(rerun)
    assert states(rerun)["sync.transfer"] == ["skipped"]  # no shards: nothing to copy
    first_again, second = reports(s3, bucket, "manifests/test-s3-sync/")
    assert first_again == first and second["TaskExecutionId"] != first["TaskExecutionId"]
    assert second["Status"] == "SUCCESS"
    assert second["FilesTransferred"] == 0 and second["BytesWritten"] == 0
    assert second["FilesSkipped"] == first["FilesPrepared"]
