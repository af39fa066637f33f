"""The pair matrix: every source backend × every destination backend, through ``engine.run_execution``
(the CLI's path), on the session's real servers.

Per pair, on a tree of seven entries (a nested directory, an empty file, a 1 MiB file): the copy keeps
what both sides keep, a re-run transfers nothing, the copy back to a fresh root of the source's kind
round-trips it, PreserveDeletedFiles=REMOVE deletes only what left the source, POINT_IN_TIME_CONSISTENT
and ONLY_FILES_TRANSFERRED each catch one byte changed at the destination, and no secret of either connection reaches a record or a log.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.locations.base import FILE, LISTING_SCHEMA, Location, Metadata

PIT = {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}
#: Modification times with every nanosecond digit set, so that each side's resolution shows.
BASE_NS = 1_700_000_000_123_456_789
DIRS = ("nested", "nested/deeper")
FILES: dict[str, bytes] = {
    "a.txt": b"alpha\n",
    "empty.bin": b"",
    "big.bin": random.Random(12).randbytes(1 << 20),
    "nested/b.txt": b"bravo\n" * 10,
    "nested/deeper/naïve café ✓ 50%+#.txt": b"charlie",  # what URL-encoding and name rules must pass
}


def seed(loc: Location) -> None:
    """The tree, written through the source backend itself (its writes are what the contract tests check)."""
    for path in DIRS:
        loc.mkdir(path)
    for i, (path, data) in enumerate(FILES.items()):
        meta = Metadata(mtime_ns=BASE_NS + i * 1_000_000_007, mode=0o640 + i % 2)
        chunks = [data[j:j + 256 * 1024] for j in range(0, len(data), 256 * 1024)] or [b""]
        loc.write(path, iter(chunks), meta, tag="seed")


def read_all(loc: Location, path: str) -> bytes:
    with loc.open_read(path) as fh:
        return fh.read()


def tree(loc: Location, resolution_ns: int, modes: bool) -> dict[str, tuple]:
    """Path → what both sides of a pair keep: type; for files also size, SHA-256, mtime at ``resolution_ns``
    and (where both keep POSIX metadata) the mode."""
    rows = pa.Table.from_batches(list(loc.scan()), schema=LISTING_SCHEMA).to_pylist()
    out: dict[str, tuple] = {}
    for row in rows:
        if row["type"] == FILE:
            digest = hashlib.sha256(read_all(loc, row["path"])).hexdigest()
            out[row["path"]] = (FILE, row["size"], digest, row["mtime_ns"] // resolution_ns,
                                row["mode"] if modes else None)
        else:
            out[row["path"]] = (row["type"],)
    return out


def store_bytes(store: Path) -> bytes:
    """Every record of the manifest store, Parquet decoded too (its pages are compressed)."""
    blob = b""
    for dirpath, _dirs, names in os.walk(store):
        for name in names:
            full = os.path.join(dirpath, name)
            blob += Path(full).read_bytes()
            if name.endswith(".parquet"):
                blob += repr(pq.read_table(full).to_pylist()).encode()
    return blob


def test_pair(source_backend, destination_backend, tmp_path, caplog):
    caplog.set_level("DEBUG")
    src_root, dst_root = source_backend.root("src"), destination_backend.root("dst")
    src_spec, dst_spec = LocationSpec(src_root.uri, src_root.conn_id), LocationSpec(dst_root.uri, dst_root.conn_id)
    store = tmp_path / "store"
    with src_root.open() as src, dst_root.open() as dst:
        src.check(writable=True)
        seed(src)
        s_caps, d_caps = src.capabilities, dst.capabilities
        resolution = max(s_caps.mtime_resolution_ns, d_caps.mtime_resolution_ns)
        modes = s_caps.posix_metadata and d_caps.posix_metadata
        source_tree = tree(src, resolution, modes)
        assert len(source_tree) == len(DIRS) + len(FILES), source_tree

        # The copy keeps what both sides keep, and POINT_IN_TIME_CONSISTENT finds nothing to object to.
        up = run_execution(src_spec, dst_spec, PIT, store=str(store))
        assert up["Status"] == "SUCCESS", up
        assert up["BytesWritten"] == sum(map(len, FILES.values())), up
        assert tree(dst, resolution, modes) == source_tree

        # A re-run is a no-op.
        again = run_execution(src_spec, dst_spec, PIT, store=str(store))
        assert again["Status"] == "SUCCESS", again
        assert again["FilesTransferred"] == 0 and again["BytesWritten"] == 0, again

        # Back to a fresh root of the source's kind: the round trip keeps what both kinds keep.
        back_root = source_backend.root("back")
        down = run_execution(dst_spec, LocationSpec(back_root.uri, back_root.conn_id), PIT, store=str(store))
        assert down["Status"] == "SUCCESS", down
        with back_root.open() as back:
            assert tree(back, resolution, modes) == source_tree

        # REMOVE deletes what left the source, and only that.
        src.delete("nested/b.txt", is_dir=False)
        removed = run_execution(src_spec, dst_spec, {**PIT, "PreserveDeletedFiles": "REMOVE"}, store=str(store))
        assert removed["Status"] == "SUCCESS", removed
        # (a file system's directory times changed with the delete: that is metadata, not bytes)
        assert removed["FilesDeleted"] == 1 and removed["BytesWritten"] == 0, removed
        expected = {path: entry for path, entry in source_tree.items() if path != "nested/b.txt"}
        assert tree(dst, resolution, modes) == expected

        # One byte changed at the destination, same size and mtime: PREPARING sees nothing to copy,
        # POINT_IN_TIME_CONSISTENT compares the checksums of both sides and fails the execution.
        victim = dst.stat("a.txt")
        assert victim is not None and victim.type == FILE
        dst.write("a.txt", iter([b"alphA\n"]), Metadata(mtime_ns=victim.mtime_ns, mode=victim.mode), tag="corrupt")
        caught = run_execution(src_spec, dst_spec, PIT, store=str(store))
        assert caught["Status"] == "ERROR" and caught["ErrorCode"] == "VerificationFailed", caught
        assert "a.txt" in caught["ErrorDetail"], caught

        # ONLY_FILES_TRANSFERRED: a file changed at the source is copied; one byte of it changed at the
        # destination between TRANSFERRING and VERIFYING fails the execution.
        src.write("a.txt", iter([b"ALPHA!\n"]), Metadata(mtime_ns=BASE_NS + 10**12), tag="change")
        execution = engine.launch(src_spec, dst_spec, {"VerifyMode": "ONLY_FILES_TRANSFERRED"}, store=str(store))
        for shard in engine.prepare(execution):
            engine.transfer(execution, shard["shard"])
        engine.finalize(execution)
        copied = dst.stat("a.txt")
        assert read_all(dst, "a.txt") == b"ALPHA!\n"
        dst.write("a.txt", iter([b"ALPHA?\n"]), Metadata(mtime_ns=copied.mtime_ns, mode=copied.mode), tag="corrupt")
        engine.verify(execution)
        transferred = engine.report(execution)
        assert transferred["Status"] == "ERROR" and transferred["ErrorCode"] == "VerificationFailed", transferred
        assert transferred["FilesTransferred"] == 1 and "a.txt" in transferred["ErrorDetail"], transferred

    # No secret of either connection in any record of any execution above, nor in a log line.
    records = store_bytes(store) + caplog.text.encode()
    for side in (source_backend, destination_backend):
        assert side.secrets() or side.conn_id is None, f"{side.name}: no secret found to look for"
    secrets = source_backend.secrets() + destination_backend.secrets()
    assert all(secret.encode() not in records for secret in secrets)
