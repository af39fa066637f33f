"""``airflow-datasync run``: with ``--json`` stdout holds the summary and nothing else, whatever Airflow,
the Amazon provider or a logging handler writes meanwhile; without it, the readable text report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_servers import S3_CONN_ID

ROOT = Path(__file__).resolve().parents[2]


def make_source(root: Path) -> Path:
    for rel in ("a.txt", "d/b.txt", "d/e/c.bin"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rel.encode() * 500)
    return root


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow_datasync.cli", "run", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("connection", ["plain", "through the Amazon provider's hook"])
def test_json_stdout_is_pure_json_with_an_airflow_connection(tmp_path, s3_server, bucket, connection):
    src = make_source(tmp_path / "src")
    conn = json.loads(s3_server.connection_uri_json())
    if connection != "plain":
        conn["extra"]["config_kwargs"] = {"tcp_keepalive": True}  # a botocore option only the hook reads
    env = dict(os.environ, AIRFLOW_CONN_DATASYNC_CLI_S3=json.dumps(conn), PYTHONPATH=str(ROOT))
    env.pop(f"AIRFLOW_CONN_{S3_CONN_ID.upper()}", None)

    out = run_cli(str(src), f"s3://{bucket}/cli", "--destination-conn-id", "datasync_cli_s3",
                  "--store", str(tmp_path / "store"), "--json", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)  # the whole of stdout, not its last line
    assert summary["Status"] == "SUCCESS" and summary["FilesTransferred"] == 5  # 3 files, 2 directories
    assert summary["DestinationLocation"] == f"s3://{bucket}/cli"
    # The progress lines were logged (-q is off), on stderr.
    assert "shard 0: starting, 5 entries" in out.stderr and "VERIFYING" in out.stderr
    assert conn["password"] not in out.stdout + out.stderr


#: A process where a logging handler is bound to stdout (as some Airflow logging configs install) and a
#: library print()s while the run lasts, as a real interpreter runs them (fd 1 is the process's stdout).
NOISY = """
import logging, sys
from airflow_datasync import cli, options
handler = logging.StreamHandler(sys.stdout)
logging.getLogger("airflow_datasync").addHandler(handler)
real_from_dict = options.TaskOptions.from_dict
def noisy_from_dict(*args, **kwargs):
    print("a library talking on stdout")
    return real_from_dict(*args, **kwargs)
options.TaskOptions.from_dict = noisy_from_dict
sys.exit(cli.main(sys.argv[1:]))
"""


def test_json_stdout_stays_clean_when_a_handler_and_a_print_use_stdout(tmp_path):
    src = make_source(tmp_path / "src")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", NOISY, "run", str(src), str(tmp_path / "dst"),
                          "--store", str(tmp_path / "store"), "--json"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["Status"] == "SUCCESS" and summary["FilesTransferred"] == 5
    assert "a library talking on stdout" in out.stderr
    assert "shard 0: starting" in out.stderr  # the stdout handler's lines, moved to stderr


def test_text_report_by_default(tmp_path):
    src = make_source(tmp_path / "src")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = run_cli(str(src), str(tmp_path / "dst"), "--store", str(tmp_path / "store"), "-q", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Entries transferred (files, directories, symlinks)  5" in out.stdout
    assert "None" not in out.stdout
    assert out.stderr == ""  # -q: no progress lines


def test_bad_option_with_json_prints_the_error_on_stderr_only(tmp_path):
    src = make_source(tmp_path / "src")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = run_cli(str(src), str(tmp_path / "dst"), "--store", str(tmp_path / "store"), "--json",
                  "-o", "VerifyMode=FULL", env=env)
    assert out.returncode == 2
    assert out.stdout == ""
    assert "VerifyMode" in out.stderr
