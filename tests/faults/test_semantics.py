"""Fault cases of helper "semantics" (quick, in ``make test``), each recording its figure after its assertions.

- Hostile names: ``a\\b.txt`` (a backslash is an ordinary character on POSIX and in S3 keys) through the
  engine for each pair: copied and verified where the destination holds it under that very name, else
  refused per entry in PREPARING with the destination's rule, nothing created, the other files copied.
- Destination faults: one file that cannot be copied (a directory in the way) with REMOVE.
- Source faults: an emptied source (an unmounted export) with REMOVE, refused by the deletion cap.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa
import pytest

from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.locations import open_location
from airflow_datasync.locations.base import LISTING_SCHEMA
from airflow_datasync.phases.deletion_cap import DeletionCapError
from tests.faults.figures import Figure, record
from tests.fixtures_servers import PERMISSIVE_S3_CONN_ID, S3_CONN_ID

BACKSLASH = "a\\b.txt"
NESTED = "d\\x/c\\d.txt"
OTHERS = {"plain.txt": b"plain", "sub/other.txt": b"other"}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def make_tree(root: Path, spec: dict) -> Path:
    """``spec``: name → bytes/str (a file) or dict (a directory)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, value in spec.items():
        if isinstance(value, dict):
            make_tree(root / name, value)
        else:
            (root / name).write_bytes(value.encode() if isinstance(value, str) else value)
    return root


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _write_local(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in {BACKSLASH: b"one name", NESTED: b"nested", **OTHERS}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _listed(uri: str, conn_id: str | None) -> dict[str, bytes | None]:
    with open_location(uri, conn_id) as loc:
        table = pa.Table.from_batches(list(loc.scan()), schema=LISTING_SCHEMA)
        out = {}
        for row in table.to_pylist():
            if row["type"] == "file":
                with loc.open_read(row["path"]) as fh:
                    out[row["path"]] = fh.read()
            else:
                out[row["path"]] = None
        return out


def _files(listing: dict[str, bytes | None]) -> dict[str, bytes]:
    return {k: v for k, v in listing.items() if v is not None}


def _held(src: tuple[str, str | None], dst: tuple[str, str | None], store: Path, pair: str, notes: str = "") -> None:
    t0 = time.monotonic()
    summary = run_execution(LocationSpec(*src), LocationSpec(*dst), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"},
                            store=str(store))
    assert summary["Status"] == "SUCCESS", summary["ErrorDetail"]
    expected = {BACKSLASH: b"one name", NESTED: b"nested", **OTHERS}
    assert _files(_listed(*dst)) == expected
    again = run_execution(LocationSpec(*src), LocationSpec(*dst), {}, store=str(store))
    assert again["Status"] == "SUCCESS" and again["FilesTransferred"] == 0  # a re-run is a no-op: same names
    record(Figure(case=f"names/backslash-{pair}", group="Hostile names",
                  fault="names holding a backslash (a\\b.txt, d\\x/c\\d.txt) at the source",
                  holds="copied under the very same name, verified (POINT_IN_TIME_CONSISTENT), re-run copies nothing",
                  runs=2, faults_injected=2, files_checked=len(expected), converge_s=round(time.monotonic() - t0, 2),
                  notes=notes))


def _refused(src: tuple[str, str | None], dst: tuple[str, str | None], store: Path, pair: str, rule: str,
             notes: str = "") -> None:
    summary = run_execution(LocationSpec(*src), LocationSpec(*dst), {}, store=str(store))
    assert summary["Status"] == "ERROR" and summary["ErrorCode"] == "SourceErrors"
    assert summary["FilesFailedDetail"]["Prepare"] >= 2 and summary["FilesFailedDetail"]["Transfer"] == 0
    assert rule in summary["ErrorDetail"], summary["ErrorDetail"]
    listed = _listed(*dst)
    assert _files(listed) == OTHERS  # the others copied, no mangled name (a/b.txt) created
    assert not any("\\" in p or p.startswith(("a/", "d/")) or p in ("a", "d") for p in listed), listed
    record(Figure(case=f"names/backslash-{pair}", group="Hostile names",
                  fault="names holding a backslash (a\\b.txt, d\\x/c\\d.txt) at the source",
                  holds="refused per entry in PREPARING with the destination's rule, nothing created, never "
                        "mangled; other files copied",
                  runs=1, faults_injected=2, files_checked=len(OTHERS) + 2, notes=notes))


def test_backslash_local_to_local(tmp_path, store):
    src = _write_local(tmp_path / "src")
    _held((str(src), None), (str(tmp_path / "dst"), None), store, "local-local")


def test_backslash_local_to_s3_that_keeps_it(tmp_path, store, permissive_s3):
    permissive_s3.client().create_bucket(Bucket="keeps-backslash")
    src = _write_local(tmp_path / "src")
    _held((str(src), None), ("s3://keeps-backslash/dst", PERMISSIVE_S3_CONN_ID), store, "local-s3",
          notes="moto, which keeps keys as AWS S3 does")


def test_backslash_s3_to_local(tmp_path, store, permissive_s3):
    client = permissive_s3.client()
    client.create_bucket(Bucket="backslash-source")
    for rel, data in {BACKSLASH: b"one name", NESTED: b"nested", **OTHERS}.items():
        client.put_object(Bucket="backslash-source", Key=f"src/{rel}", Body=data)
    _held(("s3://backslash-source/src", PERMISSIVE_S3_CONN_ID), (str(tmp_path / "dst"), None), store, "s3-local",
          notes="moto as the S3 source (SeaweedFS cannot hold such keys)")


def test_backslash_local_to_seaweedfs_is_refused(tmp_path, store, bucket):
    src = _write_local(tmp_path / "src")
    _refused((str(src), None), (f"s3://{bucket}/dst", S3_CONN_ID), store, "local-seaweedfs",
             "stores a backslash in a key as '/'", notes="SeaweedFS normalises '\\' to '/'; found by a probe")


def test_backslash_local_to_azure_is_refused(tmp_path, store, azure_container):
    src = _write_local(tmp_path / "src")
    _refused((str(src), None), (azure_container.uri("dst"), azure_container.conn_id), store, "local-azure",
             "Azure Blob Storage takes for '/'", notes="Azurite")


def test_backslash_local_to_smb_is_refused(tmp_path, store, smb_folder):
    src = _write_local(tmp_path / "src")
    folder = smb_folder()
    _refused((str(src), None), (folder.uri, folder.conn_id), store, "local-smb", "Windows forbids")
    assert sorted(p.name for p in folder.disk.iterdir()) == ["plain.txt", "sub"]


def test_one_file_that_cannot_be_copied(tmp_path, store):
    src = make_tree(tmp_path / "src", {f"d{i}": {f"f{j}.txt": f"{i}-{j}" * 50 for j in range(10)} for i in range(3)})
    dst = make_tree(tmp_path / "dst", {"d1": {"f3.txt": {"in the way": "keep"}}, "stale": {"x.txt": "old", "y.txt": "old"}})
    t0 = time.monotonic()
    summary = run_execution(str(src), str(dst), {"PreserveDeletedFiles": "REMOVE", "files_per_shard": 8}, store=str(store))
    assert summary["Status"] == "ERROR" and summary["FilesFailedDetail"]["Transfer"] == 1
    assert summary["DeletionsSkipped"] == 4 and "4 deletions skipped because 1 copy failed" in summary["ErrorDetail"]
    checked = lost = corrupt = 0
    for p in src.rglob("*.txt"):
        rel = p.relative_to(src)
        if str(rel) == "d1/f3.txt":
            continue
        checked += 1
        target = dst / rel
        lost += not target.is_file()
        corrupt += target.is_file() and target.read_bytes() != p.read_bytes()
    assert (lost, corrupt) == (0, 0) and summary["FilesVerified"] == checked == 29
    assert (dst / "stale" / "x.txt").exists() and (dst / "d1" / "f3.txt" / "in the way").exists()
    leftovers = [p for p in dst.rglob(".~ds-*")]
    assert leftovers == []
    (dst / "d1" / "f3.txt" / "in the way").unlink()
    (dst / "d1" / "f3.txt").rmdir()
    fixed = run_execution(str(src), str(dst), {"PreserveDeletedFiles": "REMOVE"}, store=str(store))
    assert fixed["Status"] == "SUCCESS" and fixed["FilesDeleted"] == 3 and not (dst / "stale").exists()
    record(Figure(case="failures/one-file-fails", group="Destination faults",
                  fault="a directory in the way of one file of 30 (permanent), PreserveDeletedFiles=REMOVE",
                  holds="the other 29 copied and verified, finalize and verify ran, no deletion, the report says "
                        "why, status ERROR; the run after the fix deletes and succeeds",
                  runs=2, faults_injected=1, files_checked=checked, lost=lost, corrupt=corrupt, leftovers=len(leftovers),
                  converge_s=round(time.monotonic() - t0, 2)))


def test_emptied_source_is_refused(tmp_path, store):
    src = make_tree(tmp_path / "src", {f"f{i}.txt": f"file {i}" for i in range(50)})
    dst = tmp_path / "dst"
    assert run_execution(str(src), str(dst), {"PreserveDeletedFiles": "REMOVE"}, store=str(store))["Status"] == "SUCCESS"
    before = snapshot(dst)
    for p in src.iterdir():  # the export unmounted: the mount point is an empty directory
        p.unlink()
    with pytest.raises(DeletionCapError):
        run_execution(str(src), str(dst), {"PreserveDeletedFiles": "REMOVE"}, store=str(store))
    after = snapshot(dst)
    lost = sum(1 for rel in before if rel not in after)
    assert after == before and lost == 0
    record(Figure(case="deletion-cap/empty-source", group="Source faults",
                  fault="source emptied (an unmounted NFS export) before a PreserveDeletedFiles=REMOVE run",
                  holds="refused in PREPARING (DeletionCapExceeded) before any copy or deletion; destination intact",
                  runs=2, faults_injected=1, files_checked=len(before), lost=lost,
                  notes=f"{len(os.listdir(dst))} entries kept"))
