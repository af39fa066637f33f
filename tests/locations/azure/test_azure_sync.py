"""Real executions through Azurite, for what is Azure's own: symlinks as marked blobs, blobs staged as
blocks, directory markers whose times FINALIZE keeps. The pair matrix (tests/locations/test_pairs.py)
covers copies, re-runs, deletes, verification and secrets of every pair with Azure."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from airflow_datasync.engine import LocationSpec, run_execution

PIT = {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}
BASE_NS = 1_700_000_000_123_456_789
MIB = 1 << 20


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "empty.bin": b"",
        "docs/readme ✓.md": b"# hello\n" * 100,
        "docs/deep/x.bin": os.urandom(70_000),
        "with space/50% off+plus#hash.txt": b"specials",
        "big.bin": os.urandom(2 * MIB + 4321),  # staged as blocks: block_size=1MiB below
    }
    for i, (rel, data) in enumerate(sorted(files.items())):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o640 if i % 2 else 0o604)
        os.utime(path, ns=(BASE_NS + i, BASE_NS + i * 1_000_000_007))
    (root / "empty-dir").mkdir()
    (root / "link").symlink_to("a.txt")
    return files


def tree(root: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel, st = str(path.relative_to(root)), path.lstat()
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_file():
            out[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_mode & 0o7777)
        else:
            out[rel] = ("dir", st.st_mode & 0o7777)
    return out


def test_local_to_azure_and_back_keeps_symlinks_staged_blocks_and_marker_times(azure_container, tmp_path):
    # (re-runs, verification and secrets of every pair with Azure are tests/locations/test_pairs.py's)
    src = tmp_path / "src"
    files = make_tree(src)
    store = str(tmp_path / "store")
    azure = LocationSpec(azure_container.uri("data?block_size=1MiB"), azure_container.conn_id)

    up = run_execution(str(src), azure, PIT, store=store)
    assert up["Status"] == "SUCCESS", up
    assert up["FilesVerified"] == up["FilesPrepared"] == len(files) + 1 + 4  # link; empty-dir, docs, docs/deep, with space
    names = sorted(b.name for b in azure_container.client.list_blobs())
    assert "data/empty-dir/" in names and "data/big.bin" in names and not any(".~ds-" in n for n in names)

    back = tmp_path / "back"
    down = run_execution(azure, str(back), PIT, store=store)
    assert down["Status"] == "SUCCESS", down
    src_tree, back_tree = tree(src), tree(back)
    assert {k: v for k, v in back_tree.items() if v[0] != "dir"} == {k: v for k, v in src_tree.items() if v[0] != "dir"}
    assert set(back_tree) == set(src_tree)

    # A changed and a deleted file: the next run copies one and (REMOVE) deletes one.
    (src / "a.txt").write_bytes(b"alpha changed\n")
    (src / "docs" / "readme ✓.md").unlink()
    third = run_execution(str(src), azure, {**PIT, "PreserveDeletedFiles": "REMOVE"}, store=store)
    assert third["Status"] == "SUCCESS", third
    # a.txt, and docs/'s marker: its mtime changed with the delete, and Azure keeps directory metadata
    assert third["FilesTransferred"] == 2 and third["FilesDeleted"] == 1
    assert int(azure_container.client.get_blob_client("data/docs/").get_blob_properties().metadata["ds_mtime_ns"]) == (
        (src / "docs").stat().st_mtime_ns)
    assert azure_container.client.get_blob_client("data/a.txt").download_blob().readall() == b"alpha changed\n"


def test_only_files_transferred_verifies_single_put_blobs_from_the_listed_content_md5(azure_container, tmp_path):
    # A blob of one Put Blob gets the Content-MD5 the service computed: VERIFYING compares it with the MD5
    # the copy computed while reading the source (one listing, no read back); a staged blob is read back.
    import pyarrow.parquet as pq

    src = tmp_path / "src"
    src.mkdir()
    (src / "small.txt").write_bytes(b"small" * 100)
    (src / "big.bin").write_bytes(os.urandom(MIB + 1))
    azure = LocationSpec(azure_container.uri("md5?block_size=1MiB"), azure_container.conn_id)
    summary = run_execution(str(src), azure, {"VerifyMode": "ONLY_FILES_TRANSFERRED"}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS" and summary["FilesVerified"] == 2, summary
    rows = {r["path"]: r for r in pq.read_table(Path(summary["ExecutionUri"]) / "verify.parquet").to_pylist()}
    assert rows["small.txt"]["checksum_algo"] == "md5-etag"
    assert rows["small.txt"]["dst_checksum"] == hashlib.md5(b"small" * 100).hexdigest()
    assert rows["big.bin"]["checksum_algo"] == "crc64nvme"
