"""VERIFYING: compare checksums of what the source held with what the destination holds now.

ONLY_FILES_TRANSFERRED re-reads each file written by this execution at the destination and compares it
with the checksum computed while reading the source during the copy. POINT_IN_TIME_CONSISTENT lists
both sides again and checks every entry in scope: presence, type, size, mtime (when kept), symlink
targets, and the checksums of both sides. NONE skips the phase. Mismatches fail the execution and are
listed by path in ``verify.parquet`` and the report.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync import checksum, plan
from airflow_datasync.locations.base import FILE, LISTING_SCHEMA, Location, LocationError, ScanHints
from airflow_datasync.manifest import MANIFEST_SCHEMA, VERIFY_SCHEMA, ExecutionDir, utcnow
from airflow_datasync.options import TaskOptions
from airflow_datasync.phases import hardlinks
from airflow_datasync.phases.finalize import dry_run_summary
from airflow_datasync.phases.hints import execution_hints
from airflow_datasync.phases.launch import opened
from airflow_datasync.phases.outcome import transfer_outcome
from airflow_datasync.phases.transfer import run_parallel
from airflow_datasync.phases.verify_listings import by_etag_md5s, split_by_listings
from airflow_datasync.progress import Progress
from airflow_datasync.units import entries

log = logging.getLogger("airflow_datasync")

#: Source files hashed per task of a verify thread (see :func:`_source_md5s`).
_MD5_BATCH = 256


def _hash(location: Location, path: str) -> str:
    """The store's own checksum when it keeps one (S3: a HEAD), else a streaming read."""
    native = location.native_checksum(path) if location.capabilities.native_checksums else None
    if native is not None:
        return native
    with location.open_read(path) as fh:
        return checksum.file_checksum(fh)


def _md5(location: Location, path: str) -> str:
    with location.open_read(path) as fh:
        return checksum.file_checksum(fh, hashlib.md5(usedforsecurity=False))


def _why(exc: BaseException) -> str:
    """A local OSError's own words; a backend's vocabulary error already names the location and path."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _row(path, status, src=None, dst=None, error=None, algo=checksum.ALGO) -> dict[str, Any]:
    return {"path": path, "verify_status": status, "checksum_algo": algo if (src or dst) else None,
            "src_checksum": src, "dst_checksum": dst, "verify_error": error}


def _check_transferred(src: Location, dst: Location, row: dict[str, Any], progress: Progress) -> dict[str, Any]:
    path = row["path"]
    if row["src_checksum"] is None:
        # A server-side copy of an object that S3 stores without a checksum: read the source now.
        try:
            row = {**row, "src_checksum": _hash(src, path)}
        except (OSError, LocationError) as exc:  # a backend's vocabulary error, or a local OSError
            return _row(path, "ERROR", None, None, f"{path}: cannot read the source to verify: {exc}")
    try:
        actual = _hash(dst, path)
    except FileNotFoundError:
        return _row(path, "MISSING", row["src_checksum"], None, f"{path}: missing at the destination")
    except (OSError, LocationError) as exc:  # a backend's vocabulary error, or a local OSError
        return _row(path, "ERROR", row["src_checksum"], None, f"{path}: cannot read the destination: {_why(exc)}")
    finally:
        progress.add(1, row.get("bytes_written") or 0)
    if actual != row["src_checksum"]:
        return _row(path, "MISMATCH", row["src_checksum"], actual,
                    f"{path}: destination checksum {actual} differs from source checksum {row['src_checksum']}")
    return _row(path, "VERIFIED", row["src_checksum"], actual)


def _by_listed_md5s(dst: Location, todo: list[dict[str, Any]], progress: Progress
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Verify from listings the objects whose store computed an MD5 of the stored bytes (an S3 single-PUT
    ETag, Azure's Content-MD5): one equal to the MD5 we computed from the source proves the content, at one
    LIST per page of objects instead of a request each. Everything else (multipart, no MD5, a mismatch) goes
    on to :func:`_check_transferred`, which compares CRC64NVME checksums."""
    if not dst.capabilities.listed_md5s or not any(r.get("src_md5") for r in todo):
        return [], todo
    md5s = dst.list_md5s()
    if md5s is None:
        return [], todo
    done, rest = [], []
    for r in todo:
        if r.get("src_md5") and md5s.get(r["path"]) == r["src_md5"]:
            done.append(_row(r["path"], "VERIFIED", r["src_md5"], md5s[r["path"]], algo="md5-etag"))
            progress.add(1, r.get("bytes_written") or 0)
        else:
            rest.append(r)
    return done, rest


def _check_content(src: Location, dst: Location, row: dict[str, Any], progress: Progress, counted: set[str]
                   ) -> dict[str, Any]:
    """The content check of a file the listings agree on (see :func:`verify_listings.split_by_listings`) and
    :func:`verify_listings.by_etag_md5s` did not verify: a mismatch of MD5s, or checksums to compare.
    ``counted``: the paths whose read the progress already counts."""
    path = row["path"]
    if path not in counted:
        progress.add(1, row["size"] or 0)
    dst_md5 = checksum.md5_of_etag(row["dst_etag"])
    if dst_md5 is not None:
        # The destination's listed ETag is the server's MD5 of its bytes: compare it with the source's MD5
        # (its own listed ETag on an object store, the one this execution's copy took, else read) instead of
        # a HEAD per object.
        try:
            # A source that lists no MD5 as its ETag is read for one, unless it keeps a checksum of its own
            # (an S3 multipart object's CRC64NVME): comparing those costs a HEAD, not a whole read.
            src_md5 = row.get("src_md5") or checksum.md5_of_etag(row["etag"]) or row["copied_md5"]
            if src_md5 is None and not src.capabilities.native_checksums:
                src_md5 = _md5(src, path)
        except (OSError, LocationError) as exc:  # a backend's vocabulary error, or a local OSError
            return _row(path, "ERROR", error=f"{path}: cannot read: {_why(exc)}")
        if src_md5 == dst_md5:
            return _row(path, "VERIFIED", src_md5, dst_md5, algo="md5-etag")
    try:
        a, b = row["copied_checksum"] or _hash(src, path), _hash(dst, path)
    except (OSError, LocationError) as exc:  # a backend's vocabulary error, or a local OSError
        return _row(path, "ERROR", error=f"{path}: cannot read: {_why(exc)}")
    if a != b:
        return _row(path, "MISMATCH", a, b, f"{path}: checksum {a} at the source, {b} at the destination")
    return _row(path, "VERIFIED", a, b)


def _source_md5s(src: Location, paths: list[str], sizes: list[int | None], workers: int, progress: Progress
                 ) -> list[str | None]:
    """The MD5 of each source file of ``paths`` (None where it cannot be read: the per-file check reads
    it again to word why), read on ``workers`` threads a batch at a time (:meth:`Location.read_md5s`): per
    file, only the read and the hash run, not a task and a verify row."""
    def batch(part: tuple[list[str], list[int | None]]) -> list[str | None]:
        out = src.read_md5s(part[0])
        progress.add(len(out), sum(n or 0 for n in part[1]))
        return out

    size = max(16, min(_MD5_BATCH, -(-len(paths) // max(1, workers))))
    parts = [(paths[i:i + size], sizes[i:i + size]) for i in range(0, len(paths), size)]
    return [md5 for part in run_parallel(batch, parts, workers, "verify") for md5 in part]


def _check_links(dst: Location, pairs: list[tuple[str, str]], rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` by path, where a name of ``pairs`` that is not its leader's file at the destination turns
    its row into a MISMATCH (or adds one); without ``rows``, a row per pair."""
    wrong = hardlinks.unlinked(dst, pairs)
    for path, _leader in pairs:
        if path in wrong:
            rows[path] = _row(path, "MISMATCH", error=wrong[path])
        elif path not in rows:
            rows[path] = _row(path, "VERIFIED")
    return list(rows.values())


def verify_execution(execution: ExecutionDir, src: Location, dst: Location, options: TaskOptions,
                     hints: dict[str, ScanHints | None] | None = None) -> dict[str, Any]:
    """``hints``: per side, what this execution already knows per path and ETag (its own PREPARING listings
    and the objects it wrote), so the second listing of POINT_IN_TIME_CONSISTENT needs no HEAD per object."""
    t0, started = time.monotonic(), utcnow()
    if options.VerifyMode == "NONE":
        rows: list[dict[str, Any]] = []
    elif options.VerifyMode == "ONLY_FILES_TRANSFERRED":
        results = execution.shard_results()
        # Only the columns the checks read become Python objects (a dict of all 17 per file cost a fifth of
        # the phase on small files).
        todo = results.filter(pc.and_(pc.and_(pc.equal(results["status"], "SUCCESS"), pc.equal(results["action"], "copy")),
                                      pc.equal(results["type"], FILE))).select(
            ["path", "bytes_written", "src_checksum", "src_md5"]).to_pylist()
        progress = Progress("verifying transferred files", len(todo), sum(r["bytes_written"] or 0 for r in todo))
        rows, todo = _by_listed_md5s(dst, todo, progress)
        workers = options.small_file_workers(options.verify_workers(src, dst), [r["bytes_written"] for r in todo], src, dst)
        rows += run_parallel(lambda r: _check_transferred(src, dst, r, progress), todo, workers, "verify")
        rows += _check_links(dst, hardlinks.kept_pairs(execution), {})
        progress.log()
    if options.VerifyMode == "POINT_IN_TIME_CONSISTENT":
        table = _point_in_time(execution, src, dst, options, hints or {}, _not_verified(execution))
    else:
        table = pa.Table.from_pylist(rows, schema=VERIFY_SCHEMA)
    execution.write_table(execution.verify_rows, table, VERIFY_SCHEMA)
    bad = table.filter(pc.not_equal(table["verify_status"], "VERIFIED")).to_pylist()
    summary = {"mode": options.VerifyMode, "started_at": started, "ended_at": utcnow(),
               "duration_ms": int((time.monotonic() - t0) * 1000), "verified": table.num_rows - len(bad),
               "failed": len(bad), "examples": [r["verify_error"] for r in bad[:10]]}
    execution.write_json(execution.verify, summary)
    if bad:
        log.error("VERIFYING %s: %d of %s %s not match, e.g. %s", execution.execution_id, len(bad), entries(table.num_rows),
                  "does" if len(bad) == 1 else "do", bad[0]["verify_error"])
    else:
        log.info("VERIFYING %s: %s verified (%s)", execution.execution_id, entries(table.num_rows), options.VerifyMode)
    return summary


def _not_verified(execution: ExecutionDir) -> pa.Array:
    """Paths a full comparison leaves out: entries that did not transfer (their copy failed, or their shard
    never reported: the report counts them as transfer failures, not verify failures) and the deletions
    FINALIZE skipped for that reason (the report says so)."""
    manifest = execution.read_table(execution.manifest, MANIFEST_SCHEMA)
    shard_count = (execution.read_json(execution.prepare) or {}).get("shard_count", 0)
    not_transferred = transfer_outcome(execution, manifest, shard_count).not_transferred
    if not (execution.read_json(execution.finalize) or {}).get("deletions_skipped"):
        return not_transferred
    deletes = manifest.filter(pc.equal(manifest["action"], "delete"))["path"].combine_chunks().cast(pa.string())
    return pa.concat_arrays([not_transferred, deletes])


def _second_listing(execution: ExecutionDir, name: str, scan: Iterator[pa.RecordBatch]) -> pa.Table:
    """POINT_IN_TIME_CONSISTENT's listing of one side (``scan``, started by the caller), kept as
    ``verify-<side>.parquet`` and returned as written (not read back)."""
    batches = []
    with execution.sink(execution.file(f"verify-{name}.parquet"), LISTING_SCHEMA) as sink:
        for batch in scan:
            sink.write(batch)
            batches.append(batch)
    return pa.Table.from_batches(batches).cast(LISTING_SCHEMA) if batches else LISTING_SCHEMA.empty_table()


def _point_in_time(execution: ExecutionDir, src: Location, dst: Location, options: TaskOptions,
                   hints: dict[str, ScanHints | None], not_verified: pa.Array) -> pa.Table:
    listings = {}
    if options.ManifestConfig is not None:
        # With a manifest, both locations are compared on the listed files (and their folders) only.
        from airflow_datasync.manifest_list import listings_for

        found = listings_for(execution.read_json(execution.launch), src, dst, options)
        listings = {name: plan.apply_filters(table, options) for name, table in zip(("source", "destination"), found)}
    else:
        # Both sides at once: one side's listing waits on its server while the other's runs. Both scans start
        # here, on this thread, as PREPARING's do (SMB lists on the session this thread opened in LAUNCHING).
        sides = [(name, loc.scan(hints=hints.get(name))) for name, loc in (("source", src), ("destination", dst))]
        tables = run_parallel(lambda side: _second_listing(execution, *side), sides, 2, "verify-list")
        listings = {name: plan.apply_filters(table, options) for (name, _scan), table in zip(sides, tables)}
    source, destination, _ = plan.comparable(listings["source"], listings["destination"], options, src, dst)
    source = source.filter(pc.and_(pc.is_null(source["error"]), pc.not_equal(source["type"], "other")))
    if len(not_verified):
        source = source.filter(pc.invert(pc.is_in(source["path"], value_set=not_verified)))
        destination = destination.filter(pc.invert(pc.is_in(destination["path"], value_set=not_verified)))
    dest = destination.select(["path", "type", "size", "mtime_ns", "link_target", "etag"])
    dest = dest.rename_columns(["path", "dst_type", "dst_size", "dst_mtime_ns", "dst_link_target", "dst_etag"])
    joined = source.join(dest, keys="path", join_type="left outer")
    # The listings decide most entries in Arrow; Python runs per file only to compare contents.
    rows, files, decided_bytes = split_by_listings(joined, execution.shard_results(),
                                                   compare_mtime=options.Mtime == "PRESERVE")
    progress = Progress("verifying all entries", joined.num_rows)
    progress.add(len(rows), decided_bytes)
    workers, read = options.verify_workers(src, dst), set()

    def read_md5s(paths: list[str], sizes: list[int | None]) -> list[str | None]:
        read.update(paths)
        return _source_md5s(src, paths, sizes, workers, progress)

    # Files whose MD5s agree are decided in Arrow; Python runs per file only for the others.
    verified, files = by_etag_md5s(files, None if src.capabilities.native_checksums else read_md5s)
    unread = verified.filter(pc.invert(pc.is_in(verified["path"], pa.array(read, pa.string())))) if read else verified
    progress.add(unread.num_rows, pc.sum(unread["size"]).as_py() or 0)
    content = files.to_pylist()
    rows += run_parallel(lambda r: _check_content(src, dst, r, progress, read), content,
                         options.small_file_workers(workers, [r["size"] for r in content], src, dst), "verify")
    n = verified.num_rows
    table = pa.concat_tables([
        pa.Table.from_pylist(rows, schema=VERIFY_SCHEMA),
        pa.table({"path": verified["path"], "verify_status": pa.repeat(pa.scalar("VERIFIED"), n),
                  "checksum_algo": pa.repeat(pa.scalar("md5-etag"), n), "src_checksum": verified["src_checksum"],
                  "dst_checksum": verified["dst_checksum"], "verify_error": pa.nulls(n, pa.string())},
                 schema=VERIFY_SCHEMA)])
    table = table.take(pc.sort_indices(table["path"]))
    if options.preserve_hard_links and dst.capabilities.hard_links:  # every name of a source file is one file there
        table = pa.Table.from_pylist(_check_links(dst, hardlinks.group_pairs(source),
                                                  {r["path"]: r for r in table.to_pylist()}), schema=VERIFY_SCHEMA)
    if options.PreserveDeletedFiles == "REMOVE":
        extra = dest.filter(pc.invert(pc.is_in(dest["path"], source["path"])))
        table = pa.concat_tables([table, pa.Table.from_pylist(
            [_row(p, "MISMATCH", error=f"{p}: at the destination but not in the source (PreserveDeletedFiles=REMOVE)")
             for p in extra["path"].to_pylist()], schema=VERIFY_SCHEMA)])
    progress.log()
    return table


def verify(execution: ExecutionDir) -> dict[str, Any]:
    """VERIFYING of the execution, as its VerifyMode asks; a dry run verifies nothing."""
    with opened(execution) as (_record, src, dst, options):
        if options.dry_run:
            return {**dry_run_summary("verify", "nothing was transferred, so nothing to verify"), "failed": 0,
                    "examples": []}
        hints = {}
        if options.VerifyMode == "POINT_IN_TIME_CONSISTENT":
            # The second listing re-reads metadata this execution already has, for every ETag still unchanged.
            hints = {side: execution_hints(execution, side) for side, loc in (("source", src), ("destination", dst))
                     if loc.capabilities.scan_hints}
        return verify_execution(execution, src, dst, options, hints)
