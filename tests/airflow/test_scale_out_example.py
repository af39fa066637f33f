"""The compose stack's DAG (dags/example_datasync_scale_out.py) runs for real against SeaweedFS and Samba.

Its settings come from the environment with the stack's values as defaults; here they point at the test
servers. The DAG seeds the source prefix, then syncs it to another prefix and to an SMB share with the
manifest store on S3: nothing an execution hands over is on a local disk, which is what lets its shards
run on workers that share nothing."""

from __future__ import annotations

import json
import os

from tests.airflow.test_sync_dag import load_dag, states
from tests.fixtures_servers import SMB_CONN_ID


def test_scale_out_example_dag_syncs_s3_to_s3_and_smb_with_the_store_on_s3(
        airflow_db, dags_folder, s3_server, s3, bucket, samba, smb_folder, monkeypatch):
    folder = smb_folder()
    monkeypatch.setenv("AIRFLOW_CONN_DATASYNC_S3", s3_server.connection_uri_json())
    monkeypatch.setenv("AIRFLOW_CONN_DATASYNC_SMB", os.environ[f"AIRFLOW_CONN_{SMB_CONN_ID.upper()}"])
    monkeypatch.setenv("AIRFLOW_DATASYNC_SCALE_OUT_BUCKET", bucket)
    monkeypatch.setenv("AIRFLOW_DATASYNC_SCALE_OUT_SMB", f"{folder.uri}/mirror")
    dag = load_dag(dags_folder, "example_datasync_scale_out.py", "example_datasync_scale_out")
    assert {t.queue for t in dag.task_group.children["to_smb"].children.values()} == {"smb"}

    run = dag.test()
    assert str(run.state) == "success", states(run)

    def keys(prefix: str) -> dict[str, int]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {o["Key"][len(prefix):]: o["Size"] for page in pages for o in page.get("Contents", [])}

    source = keys("source/")
    assert len(source) == 200
    assert keys("mirror/") == source
    on_share = {str(p.relative_to(folder.disk / "mirror")): p.stat().st_size
                for p in (folder.disk / "mirror").rglob("*") if p.is_file()}
    assert on_share == source
    # Both executions are recorded on S3 only, each cut into several shards (mapped tasks any worker runs).
    for task_name in ("scale-out-s3", "scale-out-smb"):
        store = keys(f"executions/{task_name}/")
        reports = [k for k in store if k.endswith("/report.json")]
        assert len(reports) == 1, sorted(store)
        report = json.loads(s3.get_object(Bucket=bucket, Key=f"executions/{task_name}/{reports[0]}")["Body"].read())
        assert report["Status"] == "SUCCESS" and report["FilesTransferred"] == 200, report
        assert sum(k.startswith(reports[0].split("/")[0] + "/shards/") and k.endswith(".json") for k in store) >= 4

    # A second run finds the source seeded and everything in sync.
    again = dag.test()
    assert str(again.state) == "success", states(again)
    assert len(keys("source/")) == 200
