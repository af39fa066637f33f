"""A ManifestConfig run through the task group with Airflow running the DAG (dag.test()): the manifest
comes in the trigger form's ManifestConfig field, only the listed files arrive, the rest of the source is
neither listed nor copied."""

from __future__ import annotations

import pyarrow.parquet as pq

from tests.airflow.test_sync_dag import latest_report, load_dag, make_tree, states, tree


def test_manifest_config_from_the_form_transfers_only_the_listed_files(airflow_db, dags_folder, tmp_path):
    dag = load_dag(dags_folder, "datasync_params_test_dags.py", "datasync_test_params")
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, files=40)
    listed = ["dir0/sub0/file 0 ✓.txt", "dir1/sub1/file 13 ✓.txt", "zero.bin"]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(listed) + "\n", encoding="utf-8")
    config = {"Action": "TRANSFER", "Format": "CSV", "Source": {"Uri": str(manifest)}}
    run = dag.test(run_conf={"source": str(src), "destination": str(dst), "ManifestConfig": config})
    st = states(run)
    assert str(run.state) == "success", st
    files = sorted(p for p, v in tree(dst).items() if v != "dir")
    assert files == sorted(listed)
    assert all(tree(dst)[p] == (src / p).read_bytes() for p in listed)
    report = latest_report(airflow_db / "executions", "test-params")
    assert report["Status"] == "SUCCESS" and report["EstimatedFilesToTransfer"] == 7  # 3 files, 4 folders above
    rows = {r["path"]: r for r in pq.read_table(report["ReportUri"]).to_pylist()}
    assert not any(p.startswith("dir2/") for p in rows)  # never listed
