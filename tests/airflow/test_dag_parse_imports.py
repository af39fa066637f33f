"""Parsing a DAG file that uses our operators imports no engine: the DAG processor parses every file again
and again, and each task process parses its DAG file before it runs, so pyarrow, numpy and the S3/SMB
clients are loaded by the execute() that needs them, never by the parse. Counted in a real interpreter that
parses the example DAGs with Airflow's own DagBag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": {k: str(v)[-300:] for k, v in bag.import_errors.items()},
                  "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""

#: What only execute() needs: the engine's Arrow stack, the AWS SDK, the SMB and Azure clients.
ENGINE_STACKS = {"pyarrow", "numpy", "botocore", "boto3", "awscrt", "smbprotocol", "smbclient", "azure"}


def parse(path: Path, tmp_path: Path) -> dict:
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path / "airflow-home"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    proc = subprocess.run([sys.executable, "-c", PROBE, str(path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_parsing_the_sync_dags_imports_no_engine_stack(tmp_path):
    for path, dag_id in ((ROOT / "dags" / "example_datasync_migration.py", "example_datasync_migration"),
                         (ROOT / "bench" / "dags" / "bench_datasync_e2e.py", "bench_datasync_e2e")):
        parsed = parse(path, tmp_path)
        assert parsed["errors"] == {} and dag_id in parsed["dags"], parsed["errors"]
        assert sorted(ENGINE_STACKS & set(parsed["modules"])) == [], path.name


def test_the_transfer_retry_rule_names_the_class_the_engine_raises():
    """The rule is a dotted path (Airflow imports it at parse time): it must stay the engine's class."""
    from airflow_datasync.operators.group import TRANSFER_RETRY_POLICY
    from airflow_datasync.phases.transfer import PermanentShardError

    paths = [rule.exception for rule in TRANSFER_RETRY_POLICY.rules]
    assert "airflow_datasync.errors.PermanentShardError" in paths
    from airflow_datasync import errors

    assert errors.PermanentShardError is PermanentShardError
