"""TRANSFERRING: copy one shard of the manifest with a bounded pool of concurrent copies.

Per file: stat the source, stream it to a temporary name at the destination while hashing, stat the
source again and refuse to publish the copy if the file changed meanwhile, then rename into place with
the metadata the options ask for. Each finished entry is appended to the shard's journal, so a retried
or cleared task skips what it already did (after checking that the destination still matches).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import posixpath
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync import checksum
from airflow_datasync.errors import PermanentShardError, ShardFailedError, is_retryable
from airflow_datasync.locations.base import (
    DIR,
    FILE,
    S3_TAGS,
    SMB_CREATION_NS,
    SMB_SECURITY_DESCRIPTOR,
    SMB_SECURITY_FLAGS,
    SYMLINK,
    Location,
    LocationError,
    Metadata,
    StatResult,
    Written,
)
from airflow_datasync.manifest import RESULT_SCHEMA, ExecutionDir, Journal, utcnow
from airflow_datasync.options import OptionsError, TaskOptions
from airflow_datasync.owners import OwnerMap
from airflow_datasync.phases.copy_processes import copy_in_processes, process_count
from airflow_datasync.phases.launch import opened
from airflow_datasync.phases.leftovers import UploadRecords, clean_shard_start, shard_tag
from airflow_datasync.phases.threads import run_pulled
from airflow_datasync.plan import without_ownership
from airflow_datasync.progress import RateLimiter, ShardProgress
from airflow_datasync.units import entries

log = logging.getLogger("airflow_datasync")


class SourceChangedError(Exception):
    """The source entry is not what PREPARING saw. ``retryable``: a file still being written may settle."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def metadata_for(row: dict[str, Any] | StatResult, options: TaskOptions, owners: OwnerMap | None = None) -> Metadata:
    """The metadata to write for a source entry (a manifest row or a stat), without extras (see
    :func:`with_extras`); ``owners`` maps its uid/gid to the destination's for Uid/Gid NAME and BOTH
    (without it, the ids are written as read)."""
    get = row.get if isinstance(row, dict) else (lambda k: getattr(row, k))
    meta = Metadata(
        mtime_ns=get("mtime_ns") if options.Mtime == "PRESERVE" else None,
        atime_ns=get("atime_ns") if options.Atime == "BEST_EFFORT" else None,
        mode=get("mode") if options.PosixPermissions == "PRESERVE" else None,
        uid=get("uid") if options.Uid != "NONE" else None,
        gid=get("gid") if options.Gid != "NONE" else None,
    )
    return owners.apply(meta, row) if owners is not None else meta


def copied_extras(src: Location, dst: Location, options: TaskOptions) -> frozenset[str]:
    """The extras keys a copy from ``src`` to ``dst`` carries: those the source reads and the destination
    writes, less those an option turns off (creation time goes with Mtime, security descriptors with
    SecurityDescriptorCopyFlags, object tags with ObjectTags)."""
    keys = src.capabilities.extras_read & dst.capabilities.extras_write
    if options.Mtime != "PRESERVE":
        keys -= {SMB_CREATION_NS}
    if options.SecurityDescriptorCopyFlags == "NONE":
        keys -= {SMB_SECURITY_DESCRIPTOR, SMB_SECURITY_FLAGS}
    if options.ObjectTags != "PRESERVE":
        keys -= {S3_TAGS}
    return keys


def extras_request(keys: frozenset[str], options: TaskOptions) -> dict[str, Any]:
    """What :meth:`Location.read_extras` is asked for ``keys``: the SecurityDescriptorCopyFlags value for
    the security descriptor (it says which parts to read), True for the others."""
    return {key: options.SecurityDescriptorCopyFlags if key in (SMB_SECURITY_DESCRIPTOR, SMB_SECURITY_FLAGS) else True
            for key in keys}


def with_extras(src: Location, path: str, meta: Metadata, stat: StatResult, keys: frozenset[str],
                options: TaskOptions, *, on_request: bool = True) -> Metadata:
    """``meta`` with the extras named in ``keys``: from the source's ``stat``, and (``on_request``) those
    that cost a request of their own from :meth:`Location.read_extras`."""
    if not keys:
        return meta
    extras = {key: value for key, value in stat.extras.items() if key in keys}
    requested = keys & src.capabilities.extras_on_request
    if on_request and requested:
        extras.update(src.read_extras(path, extras_request(requested, options)))
    return dataclasses.replace(meta, extras=extras) if extras else meta


def _same(a: StatResult | None, size: int | None, mtime_ns: int | None) -> bool:
    return a is not None and a.size == size and (mtime_ns is None or a.mtime_ns == mtime_ns)


class ShardCopier:
    def __init__(self, src: Location, dst: Location, options: TaskOptions, tag: str, journal: Journal,
                 limiter: RateLimiter, progress: ShardProgress) -> None:
        self.src, self.dst, self.options, self.tag = src, dst, options, tag
        self.journal, self.limiter, self.progress = journal, limiter, progress
        self.owners = OwnerMap(src, dst, options)  # Uid/Gid NAME/BOTH; a no-op otherwise
        self.extras = copied_extras(src, dst, options)
        self.server_copy = dst.capabilities.server_side_copy and dst.can_copy_from(src)
        #: Both sides hold holes: a sparse source file is read by its data ranges and stays sparse.
        self.sparse = src.capabilities.sparse_files and dst.capabilities.sparse_files

    def run_one(self, row: dict[str, Any], done: dict[str, Any]) -> dict[str, Any]:
        path, action, kind = row["path"], row["action"], row["type"]
        result = {"path": path, "type": kind, "action": action, "status": "SUCCESS", "bytes_written": 0, "retryable": False,
                  "checksum_algo": None, "src_checksum": None, "src_md5": None, "dst_etag": None, "resumed": False,
                  "error": None, "warning": None}
        streamed = [0]  # bytes of this entry the progress already counted as they streamed
        self.progress.begin(path)
        try:
            prior = done.get(path)
            if prior is not None:
                if self._still_done(prior):
                    result.update(bytes_written=prior.get("bytes", 0), checksum_algo=prior.get("algo"),
                                  src_checksum=prior.get("checksum"), src_md5=prior.get("md5"),
                                  dst_etag=prior.get("etag"), resumed=True)
                    self.progress.resumed(path)  # counted as done when the shard started
                    return result
                self.progress.uncount(prior.get("bytes") or 0)
            written: Written | None = None
            if action == "mkdir":
                if row.get("dst_type") == FILE and self.options.OverwriteMode == "ALWAYS":
                    # A file became a directory at the source: the file in its place goes, as an overwrite
                    # would replace it (else no later run could ever create the directory). A symlink in
                    # the way stays refused: someone planted it, and writes never pass through one.
                    self.dst.delete(path, is_dir=False)
                written = self.dst.mkdir(path, metadata_for(row, self.options, self.owners))
            elif action == "meta":
                warnings = self.dst.set_metadata(path, metadata_for(row, self.options, self.owners), is_dir=kind == DIR)
                result["warning"] = "; ".join(warnings) or None
            elif kind == SYMLINK:
                before = self._stat_source(path, SYMLINK)
                meta = with_extras(self.src, path, metadata_for(before, self.options, self.owners), before,
                                   self.extras, self.options, on_request=False)
                written = self.dst.symlink(path, before.link_target or "", meta, tag=self.tag)
            elif kind == FILE:
                copied, written = self._copy_file(path, row, streamed)
                result.update(copied)
            else:
                raise LocationError(f"cannot copy entry of type {kind!r}")
        except (OSError, LocationError, SourceChangedError) as exc:
            result.update(status="FAILED", error=_describe(exc, path), retryable=_retryable(exc))
            self.progress.end(path)  # bytes streamed before the failure stay counted: they did move
            return result
        if written is not None and written.etag:
            result["dst_etag"] = written.etag
        # What a retry checks at the destination before trusting this line: the size written and the mtime
        # set (known without another stat, which would cost a request per file on an object store).
        is_data = kind == FILE and action == "copy"
        self.journal.append({"path": path, "bytes": result["bytes_written"], "algo": result["checksum_algo"],
                             "checksum": result["src_checksum"], "md5": result["src_md5"], "etag": result["dst_etag"],
                             "size": result["bytes_written"] if is_data else None,
                             "mtime_ns": result.get("mtime_written", row.get("mtime_ns"))
                             if is_data and self.options.Mtime == "PRESERVE" else None})
        self.progress.end(path, (result["bytes_written"] or 0) - streamed[0])
        return result

    def _still_done(self, prior: dict[str, Any]) -> bool:
        if prior.get("size") is None:  # a directory: it is enough that it exists
            return self.dst.stat(prior["path"]) is not None
        return _same(self.dst.stat(prior["path"]), prior["size"], prior["mtime_ns"])

    def _stat_source(self, path: str, kind: str) -> StatResult:
        return self._checked_source(self.src.stat(path), kind)

    @staticmethod
    def _checked_source(s: StatResult | None, kind: str) -> StatResult:
        if s is None:
            raise SourceChangedError("vanished from the source after PREPARING")
        if s.type != kind:
            raise SourceChangedError(f"changed type at the source ({kind} → {s.type}) after PREPARING")
        return s

    def _copy_file(self, path: str, row: dict[str, Any], streamed: list[int]) -> tuple[dict[str, Any], Written]:
        """Copy one file; returns its result fields and what the destination says it wrote."""
        # An object store's listing names one version of each object (its ETag): the copy reads exactly
        # that version (If-Match), so neither a stat before nor one after is needed. File systems are
        # stat'ed before and after instead, and a file that changed in between is not published.
        pinned = self.src.capabilities.versioned_reads and bool(row.get("etag"))
        if pinned:
            before = StatResult(FILE, row["size"], row["mtime_ns"], row.get("atime_ns"), row.get("mode"), row.get("uid"),
                                row.get("gid"), etag=row["etag"])
            opened = None
        elif self.server_copy:  # no bytes pass through us: the entry is only looked at
            before, opened = self._stat_source(path, FILE), None
        else:
            opened = self.src.open_for_copy(path)  # the entry as opened, and a way to tell it once read
            before = self._checked_source(opened.before, FILE)
        seen: list[StatResult] = []

        def meta_for(stat: StatResult, *, on_request: bool = True) -> Metadata:
            seen.append(stat)
            return with_extras(self.src, path, metadata_for(stat, self.options, self.owners), stat, self.extras,
                               self.options, on_request=on_request)

        def read_as(result: dict[str, Any]) -> dict[str, Any]:
            st = seen[-1] if seen else before
            return {**result, "src_mtime_ns": st.mtime_ns, "src_atime_ns": st.atime_ns, "src_mode": st.mode,
                    "src_uid": st.uid, "src_gid": st.gid}

        overwrite = self.options.OverwriteMode == "ALWAYS"
        if self.server_copy:
            # The server copies (conditional on the ETag seen here); no bytes pass through us. Extras that
            # cost a request of their own (object tags) the server carries over itself.
            self.limiter.acquire(before.size)
            by_server = self.extras & self.src.capabilities.extras_on_request
            written = self.dst.copy_object(self.src, path, lambda stat: meta_for(stat, on_request=False),
                                           expect_etag=before.etag, overwrite=overwrite, extras=by_server)
            # A single-part source ETag is the MD5 of its bytes; the server-side copy keeps those bytes.
            return read_as({"bytes_written": written.size, "checksum_algo": checksum.ALGO if written.checksum else None,
                            "src_checksum": written.checksum, "src_md5": checksum.md5_of_etag(before.etag)}), written
        hasher = checksum.new_hasher()

        def check(written: int) -> None:
            if pinned:
                if written != before.size:
                    raise SourceChangedError(f"read {written} of {before.size} bytes of the listed version", retryable=True)
                return
            after = opened.after()
            if (after is None or after.size != before.size or after.mtime_ns != before.mtime_ns
                    or after.etag != before.etag or written != before.size):
                raise SourceChangedError(
                    f"changed during the copy (size {before.size} → {after.size if after else 'gone'}, "
                    f"{written} bytes read); not published, will be retried",
                    retryable=True,
                )

        def counted(n: int) -> None:
            self.limiter.acquire(n)
            streamed[0] += n
            self.progress.add_bytes(n)

        def skipped(n: int) -> None:  # a hole: its bytes count as written, but none moved, so no rate limit
            streamed[0] += n
            self.progress.add_bytes(n)

        md5 = hashlib.md5(usedforsecurity=False) if self.dst.stores_md5(before.size) else None
        if pinned:
            # A pinned read brings the version's own metadata (PREPARING may not have read it).
            fh, read_stat = self.src.open_version(path, before.etag)
        else:
            fh, read_stat = opened.fh, before
        with fh:
            meta = meta_for(read_stat)
            layout = self.src.sparse_layout(fh) if self.sparse else None
            if layout is None:  # the destination moves the bytes as it can (a file system: inside the kernel)
                written = self.dst.write_file(path, fh, meta, tag=self.tag, hasher=hasher, also=md5, on_chunk=counted,
                                              size=read_stat.size, before_commit=check, overwrite=overwrite)
            else:
                chunks = checksum.sparse_stream(fh, layout, hasher, on_chunk=counted, on_hole=skipped, also=md5)
                written = self.dst.write(path, chunks, meta, tag=self.tag, before_commit=check, overwrite=overwrite)
        return read_as({"bytes_written": written.size, "checksum_algo": checksum.ALGO,
                        "src_checksum": hasher.hexdigest(), "src_md5": md5.hexdigest() if md5 is not None else None,
                        "mtime_written": meta.mtime_ns}), written


def run_parallel(fn: Callable[[Any], Any], items: list[Any], workers: int, name: str) -> list[Any]:
    """``[fn(x) for x in items]`` on up to ``workers`` threads, results in order.

    Threads pull the next item from one shared iterator: no future or queue entry per item, which on
    thousands of small files costs more interpreter time than the copies' own Python. The first
    exception a call raises stops the other threads from taking more items and is raised here.
    """
    if len(items) <= 1 or workers <= 1:
        return [fn(x) for x in items]
    results: list[Any] = [None] * len(items)
    pending = iter(enumerate(items))
    lock = threading.Lock()

    def take() -> tuple[int, Any] | None:
        with lock:
            return next(pending, None)

    def run(item: tuple[int, Any]) -> None:
        results[item[0]] = fn(item[1])

    run_pulled(run, take, min(workers, len(items)), name)
    return results


def run_by_depth(fn: Callable[[dict[str, Any]], Any], rows: list[dict[str, Any]], workers: int, name: str, *,
                 deepest_first: bool = False) -> list[Any]:
    """:func:`run_parallel` one level of path depth at a time (shallowest first, so parents exist before
    their children, or deepest first); the rows of one level run in parallel. Results in the order run."""
    def depth(row: dict[str, Any]) -> int:
        return row["path"].count("/")

    results: list[Any] = []
    for _depth, level in itertools.groupby(sorted(rows, key=depth, reverse=deepest_first), key=depth):
        results.extend(run_parallel(fn, list(level), workers, name))
    return results


def _retryable(exc: BaseException) -> bool:
    """Whether a retry of the shard may succeed for this entry: the vocabulary says (a transient error, an
    errno outside errors.ERRNO_TABLE); a file still being written at the source may settle."""
    if isinstance(exc, SourceChangedError):
        return exc.retryable
    return is_retryable(exc)


def _describe(exc: BaseException, path: str) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{path}: {exc.strerror} (errno {exc.errno})"
    return f"{path}: {exc}"


def transfer_shard(execution: ExecutionDir, shard: int, src: Location, dst: Location, options: TaskOptions,
                   bytes_per_second: int | None = None, try_number: int | None = None) -> dict[str, Any]:
    """Copy every entry of ``shard``; write its results and summary; raise if any entry failed.

    While it runs, ``progress/shard-NNNNN.json`` tells how far it got (see :class:`ShardProgress`).
    ``try_number`` (Airflow's, None outside Airflow) is recorded in the progress file and the summary.
    """
    options = without_ownership(options, dst)
    started = utcnow()
    t0 = time.monotonic()
    rows = execution.read_table(execution.manifest, filters=[("shard", "=", shard)])
    rows = rows.filter(pc.is_in(rows["action"], pa.array(["copy", "mkdir", "meta"])))
    from airflow_datasync.phases import stripes  # it builds on this module

    rows = stripes.without_striped(stripes.load(execution), shard, rows)  # their range shards copy them
    journal = execution.journal(shard)
    done = journal.load()
    limiter = RateLimiter(bytes_per_second if bytes_per_second is not None else options.BytesPerSecond)
    dst.prepare_writes(durable=options.sync_writes)
    records = rows.select(["path", "type", "action", "size", "mtime_ns", "atime_ns", "mode", "uid", "gid",
                           "etag", "dst_type"]).to_pylist()
    # A progress file means an earlier try started: its temporaries and uploads are dead (Airflow runs one
    # try at a time), so they go before this try writes; a first try has nothing to look for.
    earlier_try = execution.store.exists(execution.progress_file(shard))
    cleaned = clean_shard_start(execution, shard, dst, records) if earlier_try else None
    dst.track_uploads(UploadRecords(execution, shard))
    progress = _shard_progress(execution, shard, records, done, try_number)
    copier = ShardCopier(src, dst, options, shard_tag(execution, shard), journal, limiter, progress)
    # Directories first, shallowest level first (files need their parents), each level in parallel; then
    # everything else in parallel.
    workers = options.workers(src, dst)
    dirs = [r for r in records if r["action"] == "mkdir"]
    others = [r for r in records if r["action"] != "mkdir"]
    results: list[dict[str, Any]] = []
    state = "FAILED"  # unless every entry succeeds and the records are written
    progress.start()
    try:
        try:
            results.extend(run_by_depth(lambda r: copier.run_one(r, done), dirs, workers, f"shard{shard}"))
            # At least a thread and an entry for each process.
            processes = min(process_count(options.transfer_processes, len(others), src, dst), workers, len(others))
            if processes > 1:
                log.info("shard %d: copying %s in %d processes", shard, entries(len(others)), processes)
                results.extend(copy_in_processes(copier.run_one, others, done, execution=execution, shard=shard,
                                                 tag=copier.tag, options=options, workers=workers,
                                                 processes=processes, progress=progress, limiter=limiter))
            else:  # small files on a local disk: one thread (see Capabilities.small_file_concurrency)
                threads = options.small_file_workers(workers, [r["size"] for r in others if r["type"] == FILE], src, dst)
                results.extend(run_parallel(lambda r: copier.run_one(r, done), others, threads, f"shard{shard}"))
            if options.sync_writes:
                dst.sync()
        finally:
            journal.close()
        table = pa.Table.from_pylist(results, schema=RESULT_SCHEMA)  # keys outside the schema are left out
        execution.write_table(execution.shard_file(shard, "parquet"), table, RESULT_SCHEMA)
        failed = [r for r in results if r["status"] == "FAILED"]
        summary = {
            "shard": shard, "try_number": try_number, "started_at": started, "ended_at": utcnow(),
            "duration_ms": int((time.monotonic() - t0) * 1000),
            "entries": len(results), "succeeded": len(results) - len(failed), "failed": len(failed),
            "resumed": sum(1 for r in results if r["resumed"]),
            "bytes_written": sum(r["bytes_written"] or 0 for r in results if not r["resumed"]),
            "bytes_total": sum(r["bytes_written"] or 0 for r in results),
            "leftovers_removed": cleaned.removed if cleaned else 0,
            "leftover_bytes_removed": cleaned.bytes if cleaned else 0,
        }
        execution.write_json(execution.shard_file(shard, "json"), summary)
        if not failed:
            state = "SUCCESS"
    finally:
        progress.finish(state)
    if failed:
        names = "; ".join(r["error"] for r in failed[:5])
        error = ShardFailedError if any(r["retryable"] for r in failed) else PermanentShardError
        raise error(f"shard {shard}: {len(failed)} of {entries(len(results))} failed: {names}"
                               + (" …" if len(failed) > 5 else ""))
    return summary


def _shard_progress(execution: ExecutionDir, shard: int, records: list[dict[str, Any]], done: dict[str, Any],
                    try_number: int | None) -> ShardProgress:
    """The shard's live progress, counting what its journal already holds as done (a retry resumes)."""
    total_bytes = sum(r["size"] or 0 for r in records if r["action"] == "copy" and r["type"] == FILE)
    resumed = [done[r["path"]] for r in records if r["path"] in done]
    path = execution.progress_file(shard)
    made_dir: list[bool] = []

    def write(snapshot: dict[str, Any]) -> None:
        if not made_dir:  # a local store's progress/ directory, made on first write (S3 has no directories)
            execution.store.makedirs(posixpath.dirname(path))
            made_dir.append(True)
        execution.write_json(path, snapshot)

    return ShardProgress(shard, len(records), total_bytes, write, try_number=try_number,
                         done_items=len(resumed), done_bytes=sum(p.get("bytes") or 0 for p in resumed))


def transfer(execution: ExecutionDir, shard: int, *, bytes_per_second: int | None = None,
             try_number: int | None = None) -> dict[str, Any]:
    """TRANSFERRING of one shard; ``try_number`` (Airflow's) goes into its summary and progress file."""
    with opened(execution) as (_record, src, dst, options):
        if options.dry_run:  # PREPARING hands out no shards for a dry run; never write for one that got here
            raise OptionsError(f"execution {execution.execution_id} is a dry run: TRANSFERRING writes nothing")
        from airflow_datasync.phases import stripes  # it builds on this module

        plan = stripes.load(execution)
        if plan is not None and plan.range_of(shard) is not None:  # one range of a striped file
            return stripes.transfer_range(execution, shard, src, dst, options, plan, bytes_per_second, try_number)
        return transfer_shard(execution, shard, src, dst, options, bytes_per_second, try_number)
