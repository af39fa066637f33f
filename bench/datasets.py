"""Deterministic benchmark datasets, generated once under the bench work dir and reused.

Each dataset directory carries a ``.bench-dataset.json`` stamp (its parameters, file count, bytes); a
directory whose stamp matches the requested parameters is reused, anything else is regenerated. Names,
contents and mtimes depend only on the parameters, so two machines generate byte-identical trees.
The stamp lives next to the tree (``<name>.json``), not inside it, so no tool copies it.
"""

from __future__ import annotations

import json
import os
import shutil
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: Every generated file gets this mtime (2026-01-01T00:00:00Z) so that listings are reproducible.
FIXED_MTIME_NS = 1_767_225_600 * 1_000_000_000


@dataclass
class Dataset:
    name: str
    path: Path
    files: int
    bytes: int
    params: dict

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _reuse(name: str, path: Path, params: dict) -> Dataset | None:
    stamp = _stamp_path(path)
    if not (stamp.exists() and path.is_dir()):
        return None
    try:
        data = json.loads(stamp.read_text())
    except ValueError:
        return None
    if data.get("params") != params:
        return None
    return Dataset(name, path, data["files"], data["bytes"], params)


def _finish(name: str, path: Path, params: dict, files: int, nbytes: int, t0: float) -> Dataset:
    _stamp_path(path).write_text(json.dumps({"params": params, "files": files, "bytes": nbytes}, indent=1))
    print(f"  dataset {name}: {files:,} files, {nbytes / 1e6:,.1f} MB generated in {time.monotonic() - t0:.1f} s",
          flush=True)
    return Dataset(name, path, files, nbytes, params)


def _fresh(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    _stamp_path(path).unlink(missing_ok=True)
    path.mkdir(parents=True)


def empty_tree(root: Path) -> Dataset:
    """An empty folder: a run over it pays only an execution's fixed cost (issue 16)."""
    path = root / "empty"
    if path.is_dir() and any(path.iterdir()):
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return Dataset("empty", path, 0, 0, {"kind": "empty"})


def small_files(root: Path, count: int = 5000, size: int = 4096, per_dir: int = 100, seed: int = 5) -> Dataset:
    """``count`` files of ``size`` random bytes, ``per_dir`` per folder (d000/f00000.bin …)."""
    name = f"small-{count}x{size}"
    path = root / name
    params = {"kind": "small", "count": count, "size": size, "per_dir": per_dir, "seed": seed}
    if (found := _reuse(name, path, params)) is not None:
        return found
    t0 = time.monotonic()
    _fresh(path)
    rng = np.random.default_rng(seed)
    blob = rng.bytes(count * size)
    for i in range(count):
        d = path / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            d.mkdir()
        f = d / f"f{i:05d}.bin"
        f.write_bytes(blob[i * size:(i + 1) * size])
        os.utime(f, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS + i))
    return _finish(name, path, params, count, count * size, t0)


def big_files(root: Path, count: int = 2, mib: int = 500, seed: int = 11) -> Dataset:
    """``count`` incompressible files of ``mib`` MiB each."""
    name = f"big-{count}x{mib}MiB"
    path = root / name
    params = {"kind": "big", "count": count, "mib": mib, "seed": seed}
    if (found := _reuse(name, path, params)) is not None:
        return found
    t0 = time.monotonic()
    _fresh(path)
    rng = np.random.default_rng(seed)
    for i in range(count):
        f = path / f"big-{i}.bin"
        with open(f, "wb") as fh:
            for _ in range(mib // 16):
                fh.write(rng.bytes(16 << 20))
            if mib % 16:
                fh.write(rng.bytes((mib % 16) << 20))
        os.utime(f, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
    return _finish(name, path, params, count, count * (mib << 20), t0)


def stdlib_tree(root: Path) -> Dataset:
    """A copy of the interpreter's standard library directory: a real mixed tree (sizes from 0 B to a few
    MB, deep folders, text and binary). ``site-packages`` and ``__pycache__`` are left out: they differ
    between machines and over time."""
    src = Path(sysconfig.get_paths()["stdlib"])
    name = "stdlib"
    path = root / name
    params = {"kind": "stdlib", "source": str(src), "python": sysconfig.get_python_version()}
    if (found := _reuse(name, path, params)) is not None:
        return found
    t0 = time.monotonic()
    shutil.rmtree(path, ignore_errors=True)
    _stamp_path(path).unlink(missing_ok=True)
    shutil.copytree(src, path, symlinks=True,
                    ignore=shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc"))
    files = nbytes = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            st = os.lstat(os.path.join(dirpath, n))
            files += 1
            nbytes += st.st_size if not os.path.islink(os.path.join(dirpath, n)) else 0
    return _finish(name, path, params, files, nbytes, t0)


def many_files(root: Path, count: int, per_dir: int = 1000, max_size: int = 64, seed: int = 17) -> Dataset:
    """``count`` zero-to-small files (0..max_size bytes), ``per_dir`` per folder: a PREPARING workload."""
    name = f"many-{count}"
    path = root / name
    params = {"kind": "many", "count": count, "per_dir": per_dir, "max_size": max_size, "seed": seed}
    if (found := _reuse(name, path, params)) is not None:
        return found
    t0 = time.monotonic()
    _fresh(path)
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, max_size + 1, size=count)
    sizes[::4] = 0  # a quarter of them empty
    payload = rng.bytes(max_size)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    nbytes = int(sizes.sum())
    for i in range(count):
        if i % per_dir == 0:
            d = os.path.join(path, f"d{i // per_dir:04d}")
            os.mkdir(d)
        fd = os.open(os.path.join(d, f"f{i:07d}"), flags, 0o644)
        try:
            n = int(sizes[i])
            if n:
                os.write(fd, payload[:n])
            os.utime(fd, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
        finally:
            os.close(fd)
    return _finish(name, path, params, count, nbytes, t0)
