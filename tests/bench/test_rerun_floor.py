"""bench/rerun_floor.py (the floor docs/benchmarks.md quotes for the SMB re-run) lists both sides of a tree our
engine synced, finds nothing to copy, and finds a file changed since; it imports nothing of ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from airflow_datasync.engine import LocationSpec, run_execution
from tests.engine.conftest import REPO_ROOT


def floor(src, folder, samba) -> dict:
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "SMB_USER": samba.user, "SMB_PASSWORD": samba.password}
    code = ("import json, runpy, sys\n"
            "sys.argv = sys.argv[1:]\n"
            "try:\n"
            "    runpy.run_module('bench.rerun_floor', run_name='__main__')\n"
            "except SystemExit as end:\n"
            "    assert not end.code, end.code\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('airflow_datasync', 'pyarrow', 'numpy')))))")
    out = subprocess.run([sys.executable, "-c", code, "rerun_floor", str(src), folder.uri],
                         env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    result, modules = out.stdout.strip().splitlines()
    assert json.loads(modules) == []  # the floor holds no engine, no pyarrow, no numpy
    return json.loads(result)


def test_the_floor_finds_what_the_engine_would(tmp_path, smb_folder, samba):
    src = tmp_path / "src"
    for d in range(3):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(20):
            (src / f"d{d}" / f"f{i}.bin").write_bytes(os.urandom(100 + i))
    folder = smb_folder()
    out = run_execution(str(src), LocationSpec(folder.uri, folder.conn_id), {}, store=str(tmp_path / "store"))
    assert out["Status"] == "SUCCESS", out
    first = floor(src, folder, samba)
    assert (first["local_files"], first["smb_files"], first["to_copy"]) == (60, 60, 0)
    assert set(first["cpu_s_after"]) == {"interpreter", "import smbprotocol", "session", "both listings", "compare"}
    (src / "d1" / "f3.bin").write_bytes(b"changed")
    assert floor(src, folder, samba)["to_copy"] == 1
