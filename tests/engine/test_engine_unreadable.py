"""An unreadable source file fails alone: the run reports it by path and copies everything else.

Root reads mode-000 files anyway, so the engine runs in a subprocess as user nobody (65534)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

NOBODY = 65534
REPO_ROOT = str(Path(__file__).resolve().parents[2])

SCRIPT = """
import json, sys
from airflow_datasync.engine import run_execution
summary = run_execution(sys.argv[1], sys.argv[2], {}, store=sys.argv[3], task_name="unreadable")
print(json.dumps(summary))
"""


def _nobody_python(python_exe: str, python_env: dict) -> tuple[str, dict]:
    """An interpreter that user nobody can execute and that imports this engine and its dependencies.

    The venv's interpreter may live under /root (mode 0700), which nobody cannot traverse; then fall back
    to the system interpreter of the same major.minor version with the venv's site-packages on PYTHONPATH.
    """
    site_dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [(python_exe, python_env)]
    for exe in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if os.path.exists(exe):
            extra = os.pathsep.join([REPO_ROOT] + list(dict.fromkeys(site_dirs)))
            candidates.append((exe, {"PATH": "/usr/bin:/bin", "PYTHONPATH": extra, "LANG": "C.UTF-8"}))
    tried = []
    for exe, env in candidates:
        try:
            probe = subprocess.run([exe, "-c", "import airflow_datasync.engine"], env=env, user=NOBODY, group=NOBODY,
                                   extra_groups=[], capture_output=True, text=True, timeout=60, cwd="/")
        except OSError as exc:
            tried.append(f"{exe}: {exc}")
            continue
        if probe.returncode == 0:
            return exe, env
        tried.append(f"{exe}: {probe.stderr.strip().splitlines()[-1:]}")
    pytest.skip("no Python interpreter that user nobody can run with the engine importable: " + "; ".join(tried))


@pytest.fixture
def world_tmp():
    """pytest's tmp_path is mode 0700 (root only): nobody needs a world-traversable directory."""
    base = tempfile.mkdtemp(prefix="ds-unreadable-", dir="/tmp")
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to run the engine as user nobody (and mode 000 only blocks non-root)")
def test_unreadable_file_as_nobody(world_tmp, make_tree, python_exe, python_env):
    exe, env = _nobody_python(python_exe, python_env)
    src = make_tree(Path(world_tmp) / "src", {
        "ok.txt": "readable",
        "locked.txt": "you cannot read me",
        "d": {"inner.txt": "inner", "deeper": {"x.bin": b"\x00\x01"}},
        "link": ("link", "ok.txt"),
    })
    for dirpath, _dirs, files in os.walk(src):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    os.chmod(src / "locked.txt", 0o000)
    dst = src.parent / "dst"
    store = src.parent / "store"
    for p in (dst, store):
        p.mkdir()
        os.chown(p, NOBODY, NOBODY)

    env = dict(env, HOME=str(store))
    proc = subprocess.run([exe, "-c", SCRIPT, str(src), str(dst), str(store)], env=env, user=NOBODY,
                          group=NOBODY, extra_groups=[], capture_output=True, text=True, timeout=120, cwd=str(store))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])

    assert summary["Status"] == "ERROR"
    assert summary["FilesFailed"] >= 1
    assert "locked.txt" in summary["ErrorDetail"]
    assert "Permission denied" in summary["ErrorDetail"]
    # Everything else was copied, as nobody.
    assert (dst / "ok.txt").read_text() == "readable"
    assert (dst / "d" / "inner.txt").read_text() == "inner"
    assert (dst / "d" / "deeper" / "x.bin").read_bytes() == b"\x00\x01"
    assert os.readlink(dst / "link") == "ok.txt"
    assert not (dst / "locked.txt").exists()
    assert not [p for p in dst.rglob(".~ds-*")]
    assert os.stat(dst / "ok.txt").st_uid == NOBODY
    # The source is untouched (still mode 000, still its bytes).
    assert os.stat(src / "locked.txt").st_mode & 0o777 == 0
    assert (src / "locked.txt").read_text() == "you cannot read me"
    # Only locked.txt failed; the rest succeeded.
    assert summary["FilesTransferred"] == 7 - 1  # ok, locked(failed), d, d/inner, d/deeper, d/deeper/x.bin, link


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to run the engine as user nobody (and mode 000 only blocks non-root)")
def test_unlistable_directory_as_nobody(world_tmp, make_tree, python_exe, python_env):
    exe, env = _nobody_python(python_exe, python_env)
    src = make_tree(Path(world_tmp) / "src", {"ok.txt": "readable", "private": {"hidden.txt": "secret"}, "pub": {"p.txt": "p"}})
    for dirpath, _dirs, files in os.walk(src):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    os.chmod(src / "private", 0o000)
    dst, store = src.parent / "dst", src.parent / "store"
    for p in (dst, store):
        p.mkdir()
        os.chown(p, NOBODY, NOBODY)
    proc = subprocess.run([exe, "-c", SCRIPT, str(src), str(dst), str(store)], env=dict(env, HOME=str(store)), user=NOBODY,
                          group=NOBODY, extra_groups=[], capture_output=True, text=True, timeout=120, cwd=str(store))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["Status"] == "ERROR"
    assert summary["ErrorCode"] == "SourceErrors"
    assert "private" in summary["ErrorDetail"] and "Permission denied" in summary["ErrorDetail"]
    assert summary["FilesFailed"] >= 1
    assert (dst / "ok.txt").read_text() == "readable" and (dst / "pub" / "p.txt").read_text() == "p"
    assert not (dst / "private" / "hidden.txt").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to run the engine as user nobody")
def test_not_root_reruns_transfer_nothing_and_say_why_ownership_is_not_kept(world_tmp, make_tree, python_exe,
                                                                             python_env):
    """Files owned by root, synced by user nobody: chown is impossible, so Uid/Gid are neither applied
    (no refused chown per file) nor compared (a re-run would otherwise plan an update of every file)."""
    exe, env = _nobody_python(python_exe, python_env)
    src = make_tree(Path(world_tmp) / "src", {"a.txt": "a", "d": {"b.txt": "b"}})
    for dirpath, _dirs, files in os.walk(src):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    dst, store = src.parent / "dst", src.parent / "store"
    for p in (dst, store):
        p.mkdir()
        os.chown(p, NOBODY, NOBODY)
    summaries = []
    for _ in range(2):
        proc = subprocess.run([exe, "-c", SCRIPT, str(src), str(dst), str(store)], env=dict(env, HOME=str(store)),
                              user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True, timeout=120,
                              cwd=str(store))
        assert proc.returncode == 0, proc.stderr[-3000:]
        summaries.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    first, second = summaries
    assert first["Status"] == second["Status"] == "SUCCESS", summaries
    assert first["FilesTransferred"] == 3 and second["FilesTransferred"] == 0, second
    assert any("ownership is neither kept nor compared" in w for w in second["Warnings"])
    assert os.stat(dst / "a.txt").st_uid == NOBODY and (dst / "d" / "b.txt").read_text() == "b"
    # Modes and times are still kept.
    assert os.stat(dst / "a.txt").st_mtime_ns == os.stat(src / "a.txt").st_mtime_ns
