"""Arrow schemas, Parquet I/O and the on-disk layout of one execution in the manifest store.

An execution's files live under ``<store>/<task name>/<execution id>/``. Every file is written once,
under a temporary name and renamed into place, so readers never see half a file and a retried task
never rewrites another task's output. Mapped shard tasks each write only their own files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import posixpath
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from airflow_datasync.errors import LocationError, NotFoundError, PermissionDeniedError, from_oserror
from airflow_datasync.locations.base import LISTING_SCHEMA, TEMP_PREFIX
from airflow_datasync.uri import redact_uri

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
        #: Action ``link`` (preserve_hard_links): the path of the file this entry becomes another name of
        #: at the destination, in FINALIZE. Null otherwise (and in manifests written before the column).
        pa.field("hardlink_to", pa.string()),
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
        #: MD5 of the bytes sent in one PUT to an object store whose ETag is that MD5; lets VERIFYING
        #: check whole prefixes with LIST requests instead of a HEAD per object.
        pa.field("src_md5", pa.string()),
        #: Object stores: the ETag of the object written, so the next execution needs no HEAD for it.
        pa.field("dst_etag", pa.string()),
        #: The source's metadata as the copy read it (for object stores it may come with the GET, not from
        #: PREPARING): what the next execution knows about this version, and what the options applied.
        pa.field("src_mtime_ns", pa.int64()),
        pa.field("src_atime_ns", pa.int64()),
        pa.field("src_mode", pa.int32()),
        pa.field("src_uid", pa.int64()),
        pa.field("src_gid", pa.int64()),
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
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def new_execution_id() -> str:
    """``exec-<UTC time to the microsecond>-<random>``: ids sort in launch order, even within one second
    (a later execution finds the one before it by that order)."""
    return "exec-" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + secrets.token_hex(4)


def check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(f"{kind} {value!r} is invalid: use letters, digits, '_', '.', '-' (up to 128, not starting with a dot)")
    return value


def _atomic(path: str) -> str:
    return f"{path}.tmp-{os.getpid()}-{secrets.token_hex(3)}"


def _remove_stale_scratch(path: str) -> None:
    """Remove scratch directories ``<path>.tmp-<pid>-…`` left by attempts whose process is gone (a
    PREPARING killed half way); those of a process still running on this machine are left alone."""
    parent, base = os.path.split(path)
    prefix = f"{base}.tmp-"
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return
    for entry in names:
        pid = entry[len(prefix):].split("-", 1)[0]
        if entry.startswith(prefix) and not (pid.isdigit() and _running(int(pid))):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (this one included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, someone else's
    return True


class Store:
    """Where execution files live: a local directory (default) or an S3 prefix shared by many workers.

    Local files are written under a temporary name and renamed; S3 objects appear whole when their
    upload completes. Either way a reader never sees half a file.
    """

    def __init__(self, fs, local: bool) -> None:
        self.fs, self.local = fs, local

    @classmethod
    def for_uri(cls, uri: str, conn_id: str | None = None) -> Store:
        if uri.startswith("s3://"):
            return cls(_s3_filesystem(conn_id), local=False)
        return cls(pafs.LocalFileSystem(), local=True)

    @staticmethod
    def path_of(uri: str) -> str:
        if uri.startswith("s3://"):
            return uri[len("s3://"):].rstrip("/")
        return os.path.abspath(uri.removeprefix("file://"))

    def write_bytes(self, path: str, data: bytes) -> None:
        if self.local:
            tmp = _atomic(path)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        else:
            with self.fs.open_output_stream(path) as out:
                out.write(data)

    def read_bytes(self, path: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(path) as fh:
                return fh.read()
        except FileNotFoundError:  # the S3 store raises NotFoundError, a FileNotFoundError
            return None

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def listdir(self, path: str) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        return sorted(os.path.basename(i.path) for i in infos)

    def makedirs(self, path: str) -> None:
        if self.local:
            os.makedirs(path, exist_ok=True)

    def delete(self, path: str) -> None:
        """Remove the file ``path``; nothing to do where there is none."""
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            pass

    def check(self, path: str, *, create_parents: bool = False) -> None:
        """The store at ``path`` exists (a bucket is never created), can be listed, and takes a probe
        object, written and removed: what LAUNCHING asks before it touches a location. A missing local
        directory passes when its parent exists (``create_parents``: any ancestor) and is writable; it is
        created with the execution, so a misspelt or unmounted path is refused instead of filling another
        disk, and a launch refused later leaves none. Raises the error vocabulary
        (:class:`~airflow_datasync.errors.LocationError`), the store's path in the message."""
        if not self.local:
            self.fs.handler.check(path)
            return
        if not os.path.isdir(path):
            parent = os.path.dirname(path)
            while create_parents and not os.path.isdir(parent) and os.path.dirname(parent) != parent:
                parent = os.path.dirname(parent)
            if not os.path.isdir(parent):
                raise NotFoundError(f"{parent} does not exist, so no store directory is created in it (a "
                                    "misspelt or unmounted path?): create it, or fix the path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise PermissionDeniedError(f"{path} does not exist and {parent} is not writable by uid "
                                            f"{os.geteuid()}, so it cannot be created")
            return
        try:
            os.listdir(path)
            probe = os.path.join(path, f"{TEMP_PREFIX}probe-{os.getpid()}-{secrets.token_hex(3)}")
            with open(probe, "wb"):
                pass
            os.unlink(probe)
        except OSError as exc:
            raise from_oserror(exc, path) from None


def _s3_filesystem(conn_id: str | None) -> pafs.FileSystem:
    """The S3 backend's own view of a store (same connection settings, CA bundle and transport)."""
    from airflow_datasync.locations.s3 import store_filesystem

    return store_filesystem(conn_id)


def write_json(path: str, data: dict[str, Any], store: Store | None = None) -> None:
    (store or _LOCAL).write_bytes(path, json.dumps(data, indent=2, default=str).encode())


def read_json(path: str, store: Store | None = None) -> dict[str, Any] | None:
    data = (store or _LOCAL).read_bytes(path)
    return None if data is None else json.loads(data)


class ParquetSink:
    """Write batches to a Parquet file in row groups; the file appears only on :meth:`close`.

    Rows go to a local temporary file first (memory stays flat), which is renamed into place or, for an
    S3 store, uploaded in one go at the end.
    """

    def __init__(self, path: str, schema: pa.Schema, store: Store | None = None) -> None:
        self.path, self.schema, self.store = path, schema, store or _LOCAL
        if self.store.local:
            self._tmp = _atomic(path)
        else:
            fd, self._tmp = tempfile.mkstemp(prefix="datasync-", suffix=".parquet")
            os.close(fd)
        self._writer = pq.ParquetWriter(self._tmp, schema, compression="zstd")
        self.rows = 0

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        if data.num_rows:
            table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
            self._writer.write_table(table.cast(self.schema), row_group_size=ROW_GROUP_SIZE)
            self.rows += data.num_rows

    def close(self) -> None:
        self._writer.close()
        if self.store.local:
            os.replace(self._tmp, self.path)
            return
        try:
            with open(self._tmp, "rb") as src, self.store.fs.open_output_stream(self.path) as out:
                shutil.copyfileobj(src, out, 8 << 20)
        finally:
            os.unlink(self._tmp)

    def abort(self) -> None:
        self._writer.close()
        os.unlink(self._tmp)

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        self.abort() if exc_type else self.close()


def write_table(path: str, table: pa.Table, schema: pa.Schema, store: Store | None = None) -> None:
    with ParquetSink(path, schema, store) as sink:
        sink.write(table)


def read_table(path: str, schema: pa.Schema | None = None, filters=None, store: Store | None = None) -> pa.Table:
    """A Parquet file of the store as a table (``schema``: conformed to it; ``filters``: rows matching them).

    A file stored with the schema asked for and nothing to filter (none asked, or no rows) is read as the one
    file it is; only other reads go through ``pq.read_table``, whose dataset machinery (``pyarrow.dataset``
    and its imports) is then loaded: a run that plans nothing never loads it."""
    store = store or _LOCAL
    if not store.exists(path):
        return schema.empty_table() if schema is not None else pa.table({})
    # Filtered: the footer is read first only on a local disk, where that costs no request.
    if filters is None or store.local:
        with store.fs.open_input_file(path) as fh:
            stored = pq.ParquetFile(fh)
            if (schema is None or stored.schema_arrow.equals(schema)) and (
                    filters is None or stored.metadata.num_rows == 0):
                return stored.read()
    return pq.read_table(path, filters=filters, schema=schema, filesystem=store.fs)


class ScratchSink:
    """A local Arrow IPC file that the writing process reads back itself (:func:`read_scratch`), such as
    PREPARING's partitions: lz4 IPC writes several times faster than zstd Parquet and no other reader
    needs Parquet."""

    _OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")

    def __init__(self, path: str, schema: pa.Schema) -> None:
        self.schema = schema
        self._writer = pa.ipc.new_file(path, schema, options=self._OPTIONS)

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        if data.num_rows:
            self._writer.write(data.cast(self.schema))

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> ScratchSink:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def read_scratch(path: str) -> pa.Table:
    # Read into memory, not memory-mapped: a mapped file would live as long as the table and its pages
    # count as this process's memory all the same.
    with pa.OSFile(path) as fh:
        return pa.ipc.open_file(fh).read_all()


def iter_batches(path: str, store: Store | None = None, batch_size: int = ROW_GROUP_SIZE,
                 columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """A Parquet file's rows (of ``columns``, None: all) in batches of ``batch_size``, so that a file of
    millions of rows is read with one batch in memory at a time."""
    store = store or _LOCAL
    with store.fs.open_input_file(path) as fh:
        # One thread: decoding is not the cost of the callers, and reader threads each keep buffers.
        yield from pq.ParquetFile(fh).iter_batches(batch_size=batch_size, columns=columns, use_threads=False)


_LOCAL = Store(pafs.LocalFileSystem(), local=True)


class ExecutionDir:
    """One execution's files. ``uri`` (a directory or an ``s3://`` prefix) and the store's connection id
    are what travel in XCom; every phase reopens the same files from them."""

    def __init__(self, uri: str, conn_id: str | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.conn_id = conn_id
        self.store = Store.for_uri(self.uri, conn_id)
        self.root = Store.path_of(self.uri)

    def __repr__(self) -> str:
        return f"ExecutionDir({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExecutionDir) and (self.uri, self.conn_id) == (other.uri, other.conn_id)

    def __hash__(self) -> int:
        return hash((self.uri, self.conn_id))

    def ref(self) -> dict[str, Any]:
        """The small dict that identifies this execution in XCom."""
        return {"execution": self.uri, "store_conn_id": self.conn_id}

    @property
    def execution_id(self) -> str:
        return posixpath.basename(self.root)

    @property
    def task_name(self) -> str:
        return posixpath.basename(posixpath.dirname(self.root))

    def file(self, name: str) -> str:
        return f"{self.root}/{name}"

    def uri_of(self, path: str) -> str:
        """A file's path as a URI a user can open (``s3://…`` for an S3 store)."""
        return path if self.store.local else f"s3://{path}"

    launch = property(lambda self: self.file("launch.json"))
    source_listing = property(lambda self: self.file("source.parquet"))
    destination_listing = property(lambda self: self.file("destination.parquet"))
    manifest = property(lambda self: self.file("manifest.parquet"))
    prepare = property(lambda self: self.file("prepare.json"))
    #: PREPARING refused the plan as a whole (the deletion cap); there is then no prepare.json.
    prepare_refused = property(lambda self: self.file("prepare-refused.json"))
    finalize = property(lambda self: self.file("finalize.json"))
    verify = property(lambda self: self.file("verify.json"))
    verify_rows = property(lambda self: self.file("verify.parquet"))
    report = property(lambda self: self.file("report.json"))
    report_rows = property(lambda self: self.file("report.parquet"))
    delete_rows = property(lambda self: self.file("deletes.parquet"))
    link_rows = property(lambda self: self.file("links.parquet"))

    def shard_file(self, shard: int, suffix: str) -> str:
        return self.file(f"shards/shard-{shard:05d}.{suffix}")

    def progress_file(self, shard: int) -> str:
        """Live progress of a running shard (rewritten every few seconds; see progress.ShardProgress)."""
        return self.file(f"progress/shard-{shard:05d}.json")

    # -- I/O in this execution's store ---------------------------------------------------------------
    def write_json(self, path: str, data: dict[str, Any]) -> None:
        write_json(path, data, self.store)

    def read_json(self, path: str) -> dict[str, Any] | None:
        return read_json(path, self.store)

    def sink(self, path: str, schema: pa.Schema) -> ParquetSink:
        return ParquetSink(path, schema, self.store)

    def write_table(self, path: str, table: pa.Table, schema: pa.Schema) -> None:
        write_table(path, table, schema, self.store)

    def read_table(self, path: str, schema: pa.Schema | None = None, filters=None) -> pa.Table:
        return read_table(path, schema, filters, self.store)

    def iter_batches(self, path: str, batch_size: int = ROW_GROUP_SIZE,
                     columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        return iter_batches(path, self.store, batch_size, columns)

    @contextlib.contextmanager
    def scratch(self, name: str) -> Iterator[str]:
        """A local directory for files this process writes and reads back itself (PREPARING's partitions),
        removed on exit: inside the execution directory for a local store (a disk sized for manifests, not
        a small /tmp), else a local temporary directory, as uploading files no other worker reads would
        only cost time. Write its files with :class:`ScratchSink`, read them with :func:`read_scratch`."""
        if self.store.local:
            _remove_stale_scratch(self.file(name))
            path = _atomic(self.file(name))
            os.mkdir(path)
        else:
            path = tempfile.mkdtemp(prefix=f"datasync-{name}-")
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def shard_summaries(self) -> Iterator[dict[str, Any]]:
        for name in self.store.listdir(self.file("shards")):
            if name.endswith(".json"):
                data = self.read_json(self.file(f"shards/{name}"))
                if data is not None:
                    yield data

    def shard_results(self) -> pa.Table:
        names = [n for n in self.store.listdir(self.file("shards")) if n.endswith(".parquet")]
        tables = [self.read_table(self.file(f"shards/{n}"), RESULT_SCHEMA) for n in names]
        return pa.concat_tables(tables) if tables else RESULT_SCHEMA.empty_table()

    def journal(self, shard: int, part: int = 0) -> Journal:
        return Journal(self, shard, part)


#: One encoder for every journal line: ``json.dumps`` with options builds a new one per call, which was a
#: quarter of the interpreter time of copying 5,000 small files.
_LINE_ENCODER = json.JSONEncoder(ensure_ascii=False)


class Journal:
    """Append-only JSON lines of a shard's finished entries, read back by a retried or cleared task.

    Local store: one file, appended and flushed per entry (a torn last line from a kill is ignored).
    S3 store (no appends): numbered segment objects, uploaded every few seconds and at the end.

    Each process copying part of a shard writes its own ``part`` (0: ``shard-NNNNN.journal``, as before
    parts existed; n: ``shard-NNNNN.journal-pn``); :meth:`load` reads every part.
    """

    SEGMENT_SECONDS = 5.0

    def __init__(self, execution: ExecutionDir, shard: int, part: int = 0) -> None:
        self.execution, self.shard = execution, shard
        self.path = execution.shard_file(shard, "journal" if part == 0 else f"journal-p{part}")
        self._lock = threading.Lock()
        self._fh = None
        self._pending: list[str] = []
        self._last_upload = time.monotonic()

    def _files(self) -> list[str]:
        """Every part's file (local store) or segment (S3 store): names starting with part 0's name."""
        prefix = posixpath.basename(self.execution.shard_file(self.shard, "journal"))
        names = self.execution.store.listdir(self.execution.file("shards"))
        return [self.execution.file(f"shards/{n}") for n in sorted(names) if n.startswith(prefix)]

    def load(self) -> dict[str, dict[str, Any]]:
        store = self.execution.store
        blobs = [store.read_bytes(name) for name in self._files()]
        done: dict[str, dict[str, Any]] = {}
        for blob in blobs:
            for line in (blob or b"").decode("utf-8", "replace").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                done[rec["path"]] = rec
        return done

    def append(self, rec: dict[str, Any]) -> None:
        line = _LINE_ENCODER.encode(rec) + "\n"
        with self._lock:
            if self.execution.store.local:
                if self._fh is None:  # unbuffered: one write(2) per line, no text layer and flush per entry
                    self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open for the shard, closed by close()
                data = line.encode("utf-8")
                while data:
                    data = data[self._fh.write(data):]
                return
            self._pending.append(line)
            if time.monotonic() - self._last_upload >= self.SEGMENT_SECONDS:
                self._upload()

    def _upload(self) -> None:
        if self._pending:
            name = f"{self.path}.{time.time_ns():020d}-{secrets.token_hex(2)}"
            self.execution.store.write_bytes(name, "".join(self._pending).encode())
            self._pending.clear()
        self._last_upload = time.monotonic()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            self._upload()


def store_label(uri: str, conn_id: str | None) -> str:
    """How messages name a manifest store: its URI (never carrying credentials) and its connection."""
    where = f"manifest store {redact_uri(uri)}"
    return f"{where} (connection {conn_id})" if conn_id else where


def check_store(uri: str, conn_id: str | None = None, *, create_parents: bool = False) -> None:
    """:meth:`Store.check` of the store at ``uri``, its errors prefixed with :func:`store_label`, their
    vocabulary type kept (a retry policy decides by type)."""
    try:
        store = Store.for_uri(uri, conn_id)  # an S3 store's settings: a connection without credentials fails here
        store.check(Store.path_of(uri), create_parents=create_parents)
    except LocationError as exc:
        raise type(exc)(f"{store_label(uri, conn_id)}: {exc}") from None


def create_execution_dir(store: str, task_name: str, conn_id: str | None = None) -> ExecutionDir:
    """Allocate a fresh execution under a manifest store (a local directory or an ``s3://`` prefix)."""
    check_name("task name", task_name)
    if store.startswith("s3://"):
        uri = f"{store.rstrip('/')}/{task_name}/{new_execution_id()}"
        return ExecutionDir(uri, conn_id)
    base = Store.path_of(store)
    os.makedirs(os.path.join(base, task_name), exist_ok=True)
    while True:
        path = os.path.join(base, task_name, new_execution_id())
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        os.mkdir(os.path.join(path, "shards"))
        return ExecutionDir(path)
