"""Arrow schemas, Parquet I/O and the on-disk layout of one execution in the manifest store.

An execution's files live under ``<store>/<task name>/<execution id>/``. Every file is written once,
under a temporary name and renamed into place, so readers never see half a file and a retried task
never rewrites another task's output. Mapped shard tasks each write only their own files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_datasync.locations.base import LISTING_SCHEMA

#: The plan: one row per source entry (and per destination entry to delete). Documented in docs/manifest.md.
MANIFEST_SCHEMA = pa.schema(
    list(LISTING_SCHEMA)
    + [
        pa.field("dst_type", pa.string()),
        pa.field("dst_size", pa.int64()),
        pa.field("dst_mtime_ns", pa.int64()),
        pa.field("action", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("shard", pa.int32(), nullable=False),
    ]
)

#: Per-file results of one shard of TRANSFERRING.
RESULT_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("type", pa.string()),
        pa.field("action", pa.string()),
        pa.field("status", pa.string()),  # SUCCESS | FAILED
        pa.field("bytes_written", pa.int64()),
        pa.field("checksum_algo", pa.string()),
        pa.field("src_checksum", pa.string()),
        pa.field("resumed", pa.bool_()),
        pa.field("error", pa.string()),
        pa.field("warning", pa.string()),
    ]
)

#: Per-file results of VERIFYING.
VERIFY_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("verify_status", pa.string()),  # VERIFIED | MISMATCH | MISSING | ERROR
        pa.field("checksum_algo", pa.string()),
        pa.field("src_checksum", pa.string()),
        pa.field("dst_checksum", pa.string()),
        pa.field("verify_error", pa.string()),
    ]
)

ROW_GROUP_SIZE = 64 * 1024
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def utcnow() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def new_execution_id() -> str:
    return "exec-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)


def check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(f"{kind} {value!r} is invalid: use letters, digits, '_', '.', '-' (up to 128, not starting with a dot)")
    return value


def _atomic(path: str) -> str:
    return f"{path}.tmp-{os.getpid()}-{secrets.token_hex(3)}"


def write_json(path: str, data: dict[str, Any]) -> None:
    tmp = _atomic(path)
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


class ParquetSink:
    """Write batches to a Parquet file in row groups; the file appears only on :meth:`close`."""

    def __init__(self, path: str, schema: pa.Schema) -> None:
        self.path, self.schema = path, schema
        self._tmp = _atomic(path)
        self._writer = pq.ParquetWriter(self._tmp, schema, compression="zstd")
        self.rows = 0

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        if data.num_rows:
            table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
            self._writer.write_table(table.cast(self.schema), row_group_size=ROW_GROUP_SIZE)
            self.rows += data.num_rows

    def close(self) -> None:
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        os.unlink(self._tmp)

    def __enter__(self) -> "ParquetSink":
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        self.abort() if exc_type else self.close()


def write_table(path: str, table: pa.Table, schema: pa.Schema) -> None:
    with ParquetSink(path, schema) as sink:
        sink.write(table)


def read_table(path: str, schema: pa.Schema | None = None, filters=None) -> pa.Table:
    if not os.path.exists(path):
        return schema.empty_table() if schema is not None else pa.table({})
    return pq.read_table(path, filters=filters, schema=schema)


@dataclass(frozen=True)
class ExecutionDir:
    """Paths of one execution's files. ``uri`` (the directory) is what travels in XCom."""

    uri: str

    @property
    def execution_id(self) -> str:
        return os.path.basename(self.uri.rstrip("/"))

    @property
    def task_name(self) -> str:
        return os.path.basename(os.path.dirname(self.uri.rstrip("/")))

    def file(self, name: str) -> str:
        return os.path.join(self.uri, name)

    launch = property(lambda self: self.file("launch.json"))
    source_listing = property(lambda self: self.file("source.parquet"))
    destination_listing = property(lambda self: self.file("destination.parquet"))
    manifest = property(lambda self: self.file("manifest.parquet"))
    prepare = property(lambda self: self.file("prepare.json"))
    finalize = property(lambda self: self.file("finalize.json"))
    verify = property(lambda self: self.file("verify.json"))
    verify_rows = property(lambda self: self.file("verify.parquet"))
    report = property(lambda self: self.file("report.json"))
    report_rows = property(lambda self: self.file("report.parquet"))
    delete_rows = property(lambda self: self.file("deletes.parquet"))

    def shard_file(self, shard: int, suffix: str) -> str:
        return os.path.join(self.uri, "shards", f"shard-{shard:05d}.{suffix}")

    def shard_summaries(self) -> Iterator[dict[str, Any]]:
        folder = os.path.join(self.uri, "shards")
        if not os.path.isdir(folder):
            return
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json"):
                data = read_json(os.path.join(folder, name))
                if data is not None:
                    yield data

    def shard_results(self) -> pa.Table:
        folder = os.path.join(self.uri, "shards")
        paths = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".parquet")) if os.path.isdir(folder) else []
        tables = [pq.read_table(p, schema=RESULT_SCHEMA) for p in paths]
        return pa.concat_tables(tables) if tables else RESULT_SCHEMA.empty_table()


def create_execution_dir(store: str, task_name: str) -> ExecutionDir:
    """Allocate a fresh execution directory under a local manifest store."""
    check_name("task name", task_name)
    store = os.path.abspath(store.removeprefix("file://"))
    os.makedirs(os.path.join(store, task_name), exist_ok=True)
    while True:
        path = os.path.join(store, task_name, new_execution_id())
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        os.mkdir(os.path.join(path, "shards"))
        return ExecutionDir(path)


def batches(table: pa.Table, size: int) -> Iterable[pa.Table]:
    for start in range(0, table.num_rows, size):
        yield table.slice(start, size)
