"""``airflow-datasync list`` and ``prune`` on executions the real engine wrote."""

from __future__ import annotations

import json

from airflow_datasync.cli import main
from tests.catalog.builders import make_tree, run_sync, run_with_failed_file, start_running


def test_list_prints_newest_first_filters_and_json(tmp_path, capsys):
    store = tmp_path / "store"
    ok = run_sync(make_tree(tmp_path / "src"), tmp_path / "dst", store, task_name="nightly")
    bad = run_with_failed_file(tmp_path, store, task_name="nightly",
                               airflow={"dag_id": "migrate", "run_id": "manual__1", "task_id": "sync.launch",
                                        "group_id": "sync", "map_index": -1, "try_number": 1})
    assert main(["list", "--store", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["EXECUTION", "TASK", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == [bad.execution_id, ok.execution_id]
    assert "ERROR" in lines[1] and "migrate / manual__1" in lines[1] and "(no DAG)" in lines[2]

    assert main(["list", "--store", str(store), "--status", "success", "--json"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert [i["execution_id"] for i in page["items"]] == [ok.execution_id] and page["total"] == 1

    assert main(["list", "--store", str(store), "--limit", "1"]) == 0
    assert "(1 of 2; --limit shows more)" in capsys.readouterr().out
    assert main(["list", "--store", str(store), "--task-name", "other"]) == 0
    assert "no executions" in capsys.readouterr().out


def test_prune_dry_run_then_removes_but_never_a_running_execution(tmp_path, capsys):
    store = tmp_path / "store"
    src = make_tree(tmp_path / "src", files=2)
    old = [run_sync(src, tmp_path / f"dst{i}", store, task_name="nightly") for i in range(3)]
    running = start_running(tmp_path, store, task_name="nightly")

    assert main(["prune", "--store", str(store), "--keep-last", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert all(f"would remove nightly/{ex.execution_id}" in out for ex in old)
    assert running.execution_id not in out
    assert out.splitlines()[-1].startswith("3 executions would be removed from ")
    assert len(list((store / "nightly").iterdir())) == 4

    assert main(["prune", "--store", str(store), "--keep-last", "3"]) == 0  # the running one counts among the 3
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"removed nightly/{old[0].execution_id} (launched ") and lines[1].startswith("1 execution removed")
    assert sorted(p.name for p in (store / "nightly").iterdir()) == sorted(
        [old[1].execution_id, old[2].execution_id, running.execution_id])

    assert main(["prune", "--store", str(store), "--older-than", "0s", "--json"]) == 0
    assert {r["execution_id"] for r in json.loads(capsys.readouterr().out)} == {old[1].execution_id, old[2].execution_id}
    assert [p.name for p in (store / "nightly").iterdir()] == [running.execution_id]


def test_prune_needs_a_rule(tmp_path, capsys):
    assert main(["prune", "--store", str(tmp_path)]) == 2
    assert "--keep-last" in capsys.readouterr().err
    assert main(["prune", "--store", str(tmp_path), "--older-than", "soon"]) == 2
    assert "use a number and a unit" in capsys.readouterr().err


def test_list_and_prune_an_s3_manifest_store(tmp_path, capsys, s3_server):
    from tests.fixtures_servers import S3_CONN_ID

    s3_server.client().create_bucket(Bucket="cli-prune")
    store = "s3://cli-prune/manifests"
    src = make_tree(tmp_path / "src", files=2)
    made = [run_sync(src, tmp_path / f"dst{i}", store, task_name="to-s3", store_conn_id=S3_CONN_ID) for i in range(2)]
    capsys.readouterr()  # the runs' log lines
    assert main(["list", "--store", store, "--store-conn-id", S3_CONN_ID, "--json"]) == 0
    assert [i["execution_id"] for i in json.loads(capsys.readouterr().out)["items"]] == [
        made[1].execution_id, made[0].execution_id]
    assert main(["prune", "--store", store, "--store-conn-id", S3_CONN_ID, "--keep-last", "1"]) == 0
    assert f"removed to-s3/{made[0].execution_id}" in capsys.readouterr().out
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket="cli-prune").get("Contents", [])]
    assert keys and not [k for k in keys if made[0].execution_id in k]
    assert [k for k in keys if made[1].execution_id in k]
