"""What a short ``airflow-datasync run`` loads and starts: a local → local run imports none of the S3, SMB
and Azure client stacks nor Airflow (they are most of a "nothing to do" run's fixed cost when loaded), and a
re-run with nothing to copy starts no copy process. Counted in a real CLI process, never timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Runs the real CLI (``python -m airflow_datasync.cli``) and, at its exit, writes the top-level packages it
#: imported and the processes it started to the file named by the first argument.
PROBE = """
import atexit, json, os, runpy, subprocess, sys
out, sys.argv = sys.argv[1], ["airflow-datasync", *sys.argv[2:]]
started = []
_popen_init = subprocess.Popen.__init__
def _counting_init(self, args, *a, **k):
    started.append(args if isinstance(args, str) else " ".join(map(str, args)))
    _popen_init(self, args, *a, **k)
subprocess.Popen.__init__ = _counting_init
atexit.register(lambda: open(out, "w").write(json.dumps({"modules": sorted(sys.modules), "started": started, "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS")})))
runpy.run_module("airflow_datasync.cli", run_name="__main__")
"""

#: The stacks a run pays for only when one of its locations (or the store) needs them.
HEAVY = ("boto3", "botocore", "awscrt", "s3transfer", "smbprotocol", "smbclient", "spnego", "cryptography",
         "azure", "airflow", "sqlalchemy", "pendulum", "re2")


#: What a run with nothing to plan has no use for (PREPARING's join loads them when there is something).
NOT_FOR_NOTHING = ("pyarrow.dataset", "pyarrow.acero", "pyarrow._acero", "numpy.ma")


def run_probe(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[dict, dict]:
    out = tmp_path / "probe.json"
    proc = subprocess.run([sys.executable, "-c", PROBE, str(out), "run", *args, "--json", "-q"], cwd=ROOT,
                          env=env or dict(os.environ), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout), json.loads(out.read_text())


def imported(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(packages))


def test_a_local_run_over_an_empty_tree_imports_no_client_stack_nor_airflow(tmp_path):
    (tmp_path / "src").mkdir()
    unset = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    summary, probe = run_probe(tmp_path, str(tmp_path / "src"), str(tmp_path / "dst"),
                               "--store", str(tmp_path / "store"), env=unset)
    assert summary["Status"] == "SUCCESS" and summary["ShardCount"] == 0
    assert imported(probe["modules"], HEAVY) == []
    assert probe["started"] == []
    # Nothing to join or filter: neither Arrow's dataset and join engines nor numpy's masked arrays load.
    assert [m for m in probe["modules"] if m in NOT_FOR_NOTHING] == []
    assert probe["openblas_threads"] == "1"  # cli.main sets it before anything loads numpy


def test_a_local_run_that_copies_imports_no_client_stack_nor_airflow(tmp_path):
    for i in range(20):
        (tmp_path / "src" / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / f"d{i % 3}" / f"f{i}.txt").write_bytes(b"x" * (100 * i))
    summary, probe = run_probe(tmp_path, str(tmp_path / "src"), str(tmp_path / "dst"),
                               "--store", str(tmp_path / "store"), "-o", "VerifyMode=POINT_IN_TIME_CONSISTENT")
    assert summary["Status"] == "SUCCESS" and summary["FilesTransferred"] == 23  # 20 files, 3 directories
    # awscrt only for its CRC64NVME (checksum.py), loaded with the first file hashed: none of the S3 stack.
    assert imported(probe["modules"], HEAVY) == ["awscrt"]
    assert not [m for m in probe["modules"] if m.startswith("awscrt.") and m != "awscrt.checksums"]


def test_an_smb_rerun_with_nothing_to_copy_starts_no_copy_process_and_no_airflow(tmp_path, smb_folder):
    src = tmp_path / "src"
    for i in range(1200):  # above the size at which a shard is split over copy processes
        (src / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 4}" / f"f{i}.txt").write_bytes(b"%d" % i)
    folder = smb_folder()
    args = (str(src), folder.uri, "--destination-conn-id", folder.conn_id, "--store", str(tmp_path / "store"))
    first, _ = run_probe(tmp_path, *args)
    assert first["Status"] == "SUCCESS" and first["FilesTransferred"] == 1204  # and 4 directories

    again, probe = run_probe(tmp_path, *args)
    assert again["Status"] == "SUCCESS" and (again["FilesTransferred"], again["ShardCount"]) == (0, 0)
    assert probe["started"] == []  # no copy process: nothing to copy
    assert imported(probe["modules"], HEAVY) == ["cryptography", "smbclient", "smbprotocol", "spnego"]
