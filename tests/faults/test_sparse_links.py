"""Source faults a copy must not misrepresent: sparse files (holes must stay holes and still verify) and
hard links (names of one file must be counted, and with preserve_hard_links stay one file). Quick cases."""

from __future__ import annotations

import hashlib
import json
import os
import time

from airflow_datasync.engine import run_execution
from airflow_datasync.locations.local import sparse_layout
from tests.faults.figures import Figure, record

MiB = 1 << 20


def _sparse(path, size: int, data_at: list[int]) -> None:
    with open(path, "wb") as fh:
        for offset in data_at:
            fh.seek(offset)
            fh.write(os.urandom(MiB))
        fh.truncate(size)


def _sha(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


def _leftovers(root) -> int:
    return sum(1 for _d, _s, files in os.walk(root) for f in files if f.startswith(".~ds-"))


def test_sparse_local_to_local(tmp_path):
    src, dst, store = tmp_path / "src", tmp_path / "dst", tmp_path / "store"
    src.mkdir()
    cases = {"sparse.img": (32 * MiB, [0, 31 * MiB]), "tail-hole.img": (16 * MiB, [0]), "all-hole.img": (8 * MiB, []),
             "dense.bin": (2 * MiB, [0, MiB])}
    for name, (size, data_at) in cases.items():
        _sparse(src / name, size, data_at)
    fd = os.open(src / "sparse.img", os.O_RDONLY)
    sparse_here = sparse_layout(fd) is not None
    os.close(fd)
    t0 = time.monotonic()
    summary = run_execution(str(src), str(dst), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}, store=str(store))
    converge = time.monotonic() - t0
    assert summary["Status"] == "SUCCESS", summary["ErrorDetail"]
    corrupt = sum(_sha(src / n) != _sha(dst / n) for n in cases)
    partial = sum(os.path.getsize(src / n) != os.path.getsize(dst / n) for n in cases)
    assert corrupt == partial == 0 and summary["FilesVerified"] == len(cases)
    blocks = {n: (os.stat(src / n).st_blocks, os.stat(dst / n).st_blocks) for n in cases}
    if sparse_here:
        assert all(d <= s + 256 for s, d in blocks.values()), blocks  # 256 × 512 B: an extent's rounding
    assert blocks["dense.bin"][1] * 512 >= 2 * MiB
    assert _leftovers(dst) == 0
    logical = sum(size for size, _ in cases.values())
    allocated_src = sum(s for s, _ in blocks.values()) * 512
    allocated_dst = sum(d for _, d in blocks.values()) * 512
    record(Figure(
        case="sparse/local-to-local", group="Source faults",
        fault="sparse source files (a 30 MiB hole between data, a hole to the end, all hole) and a dense one",
        holds="bytes identical, sizes equal, POINT_IN_TIME_CONSISTENT verify passes, destination blocks ≈ source "
              "blocks (holes kept), the dense file stays allocated, no temporaries",
        runs=1, faults_injected=3, files_checked=len(cases), lost=0, corrupt=corrupt, partial=partial,
        leftovers=_leftovers(dst), converge_s=round(converge, 2),
        notes=f"{logical // MiB} MiB logical, {allocated_src // MiB} MiB allocated at the source, "
              f"{allocated_dst // MiB} MiB at the destination" + ("" if sparse_here else "; file system keeps no holes"),
    ))


def test_hardlinks_local_to_local(tmp_path):
    src, store = tmp_path / "src", tmp_path / "store"
    (src / "d").mkdir(parents=True)
    groups = 3
    for g in range(groups):
        (src / f"f{g}").write_bytes(os.urandom(4096))
        os.link(src / f"f{g}", src / "d" / f"f{g}-a")
        os.link(src / f"f{g}", src / "d" / f"f{g}-b")
    (src / "plain").write_text("one name")
    names = [f"f{g}" for g in range(groups)] + [f"d/f{g}-{s}" for g in range(groups) for s in "ab"] + ["plain"]

    # Default: independent copies, and the report says how many.
    copies = tmp_path / "copies"
    summary = run_execution(str(src), str(copies), store=str(store))
    assert summary["Status"] == "SUCCESS", summary["ErrorDetail"]
    assert len({os.stat(copies / n).st_ino for n in names}) == len(names)
    assert f"{groups * 3} files in {groups} hard-link groups copied as independent files " \
           "(set preserve_hard_links to keep them as links)" in summary["Warnings"]

    # preserve_hard_links: one file per group, every name linked, verify checks the names; a re-run is a no-op.
    linked = tmp_path / "linked"
    t0 = time.monotonic()
    kept = run_execution(str(src), str(linked), {"preserve_hard_links": True, "VerifyMode": "POINT_IN_TIME_CONSISTENT"},
                         store=str(store))
    converge = time.monotonic() - t0
    assert kept["Status"] == "SUCCESS", kept["ErrorDetail"]
    for g in range(groups):
        assert len({os.stat(linked / n).st_ino for n in (f"f{g}", f"d/f{g}-a", f"d/f{g}-b")}) == 1
    corrupt = sum(_sha(src / n) != _sha(linked / n) for n in names)
    assert corrupt == 0 and kept["BytesWritten"] == groups * 4096 + len("one name")
    with open(os.path.join(kept["ExecutionUri"], "prepare.json")) as fh:
        prepare = json.load(fh)
    assert prepare["hard_links"] == {"files": groups * 3, "groups": groups, "preserved": True}
    again = run_execution(str(src), str(linked), {"preserve_hard_links": True}, store=str(store))
    assert again["Status"] == "SUCCESS" and again["FilesTransferred"] == 0
    assert _leftovers(linked) == _leftovers(copies) == 0
    record(Figure(
        case="hardlinks/local-to-local", group="Source faults",
        fault=f"{groups} files with 3 names each (hard links) beside a plain file",
        holds="default: independent copies, counted in the report; preserve_hard_links: each file copied once, "
              "its names one file at the destination, verify passes, a re-run transfers nothing, no temporaries",
        runs=3, faults_injected=groups, files_checked=2 * len(names), lost=0, corrupt=corrupt, partial=0,
        leftovers=0, converge_s=round(converge, 2),
        notes="DataSync keeps hard links between NFS-like file systems; here opt-in (preserve_hard_links)",
    ))
