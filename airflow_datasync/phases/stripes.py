"""Striped files: one huge file copied in byte ranges by separate TRANSFERRING tasks, on any workers.

PREPARING (:func:`plan_stripes`) picks the files to copy of at least ``stripe_threshold_bytes``, cuts each
into ranges of ``stripe_bytes`` and gives every range a shard number of its own, after the shards of the
plan; it starts each file's ranged write at the destination once (a temporary of the full size, or an S3
multipart upload) and records the plan in ``stripes.json``. The shard descriptors it returns hold one
per range (a shard whose only work was striped files gets none).

TRANSFERRING of a range shard (:func:`transfer_range`) reads its bytes of the source and writes them at
their offset (S3: the parts its offset owns), then records what it wrote in ``stripes/range-NNNNN.json``:
a retried range whose record exists does nothing, one without copies only its own range again.

FINALIZE starts with :func:`commit_stripes`: a file whose every range is recorded and whose source did not
change is published whole, its CRC64NVME combined from the ranges' (no byte read again; for S3 the
full-object checksum the server checks), its metadata applied; any other is dropped (its temporary
removed, its upload aborted) and reported FAILED. Its result lands in ``shards/stripe-NNNNN.parquet``,
which FINALIZE, VERIFYING and the report read with the shards' own results.

An upload is recorded (``shards/shard-<first range>.uploads``) with no host, so that the leftovers
machinery judges its writer by the file's heartbeat (``progress/shard-<first range>.json``, rewritten by
each range task as it copies and closed by the final step): an execution abandoned midway has its upload
aborted by a later execution once the heartbeat is stale.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime
from typing import IO, Any

import pyarrow as pa

from airflow_datasync import checksum
from airflow_datasync.errors import PermanentShardError, ShardFailedError, is_retryable
from airflow_datasync.locations.base import (
    FILE,
    Hole,
    Location,
    LocationError,
    Metadata,
    NotFoundError,
    StatResult,
    Written,
)
from airflow_datasync.locations.ranges import MAX_PART_BYTES, MAX_PARTS, RangedWrite, RangeWritten, whole_crc
from airflow_datasync.manifest import RESULT_SCHEMA, ExecutionDir, utcnow
from airflow_datasync.options import TaskOptions
from airflow_datasync.owners import OwnerMap
from airflow_datasync.phases.leftovers import UploadRecords, shard_tag
from airflow_datasync.phases.transfer import copied_extras, metadata_for, with_extras
from airflow_datasync.plan import without_ownership
from airflow_datasync.progress import RateLimiter
from airflow_datasync.units import counted

log = logging.getLogger("airflow_datasync")

_ROW_FIELDS = ["path", "size", "mtime_ns", "atime_ns", "mode", "uid", "gid", "etag", "shard"]
#: How often a range task rewrites its file's heartbeat while it copies: well within
#: ``leftovers.STALE_PROGRESS_S``, so that a range taking longer than that (a GiB under BytesPerSecond)
#: never has its upload taken for an abandoned one by another execution's clean-up.
HEARTBEAT_S = 60


def _plan_file(execution: ExecutionDir) -> str:
    return execution.file("stripes.json")


def _range_record(execution: ExecutionDir, shard: int) -> str:
    return execution.file(f"stripes/range-{shard:05d}.json")


def _result_file(execution: ExecutionDir, file_id: int) -> str:
    return execution.file(f"shards/stripe-{file_id:05d}.parquet")


class StripePlan:
    """``stripes.json``: the striped files, their ranges and ranged writes, by range shard."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.files: list[dict[str, Any]] = data.get("files") or []
        self._ranges = {r["shard"]: (f, r) for f in self.files for r in f["ranges"]}
        self._by_shard: dict[int, set[str]] = {}
        for f in self.files:
            self._by_shard.setdefault(f["shard"], set()).add(f["path"])

    def range_of(self, shard: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(file, range) of a range shard, None for any other shard."""
        return self._ranges.get(shard)

    def striped_in(self, shard: int) -> set[str]:
        """Paths of the manifest's shard ``shard`` that its ranges copy instead."""
        return self._by_shard.get(shard, set())


def load(execution: ExecutionDir) -> StripePlan | None:
    """The execution's stripe plan, None where PREPARING striped nothing."""
    data = execution.read_json(_plan_file(execution))
    return StripePlan(data) if data else None


def without_striped(plan: StripePlan | None, shard: int, rows: pa.Table) -> pa.Table:
    """A shard's manifest rows less the striped files its range shards copy."""
    paths = plan.striped_in(shard) if plan is not None else None
    if not paths:
        return rows
    import pyarrow.compute as pc

    return rows.filter(pc.invert(pc.is_in(rows["path"], pa.array(sorted(paths), pa.string()))))


# -- PREPARING ---------------------------------------------------------------------------------------
def _descriptors(execution: ExecutionDir, shards: list[dict[str, Any]], files: list[dict[str, Any]],
                 dropped: Collection[int]) -> list[dict[str, Any]]:
    """The shard descriptors TRANSFERRING is mapped over: ``shards`` (the plan's) less the striped ``files``
    they held and less the ``dropped`` ones that held nothing else, then one per range."""
    kept = []
    for d in shards:
        if d["shard"] in dropped:
            continue
        gone = [f for f in files if f["shard"] == d["shard"]]
        kept.append({**d, "files": d["files"] - len(gone), "bytes": max(0, d["bytes"] - sum(f["size"] for f in gone))})
    ranges = [{**execution.ref(), "shard": r["shard"], "files": 1, "bytes": r["length"],
               "stripe": {"path": f["path"], "offset": r["offset"], "of": len(f["ranges"])}}
              for f in files for r in f["ranges"]]
    return kept + ranges


def stored_descriptors(execution: ExecutionDir, shards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The descriptors a planned execution hands out again (a cleared PREPARING, a resumed execution):
    ``shards`` (from the stored manifest) less what its stored stripe plan gave to range shards, then those.
    Striped files FINALIZE dropped for want of a range are started again first (:func:`_restart_dropped`)."""
    plan = load(execution)
    if plan is None or not shards:
        return shards
    _restart_dropped(execution, plan)
    return _descriptors(execution, shards, plan.files, set(plan.data.get("dropped_shards") or []))


def _restart_dropped(execution: ExecutionDir, plan: StripePlan) -> None:
    """Carry on the striped files FINALIZE dropped because a range never arrived (out of retries), as a
    resume carries on a failed shard: a new ranged write (the old one was removed with the drop), every
    range of the file to copy again, no result until FINALIZE publishes it. Files dropped for another
    reason (every range there, but the source changed or the destination refused the file) keep their
    result: copying them again could not change it. A file that cannot start again (its source changed
    since PREPARING) keeps its result too."""
    dropped = [f for f in plan.files if f["write"] is not None and _result_status(execution, f) == "FAILED"
               and not all(execution.store.exists(_range_record(execution, r["shard"])) for r in f["ranges"])]
    if not dropped:
        return
    from airflow_datasync.phases.launch import opened  # only when there is something to start again

    with opened(execution) as (_record, src, dst, options):
        options = without_ownership(options, dst)
        for f in dropped:
            try:
                f["write"] = _begin(execution, src, dst, options, f).to_dict()
            except (OSError, LocationError) as exc:
                log.warning("PREPARING %s: %s: not started again (%s); the next execution copies it",
                            execution.execution_id, f["path"], exc)
                _heartbeat(execution, f, "FAILED")
                continue
            execution.write_json(_plan_file(execution), plan.data)  # the new write, before its ranges go
            for r in f["ranges"]:  # written into the write that was dropped
                execution.store.delete(_range_record(execution, r["shard"]))
            execution.store.delete(_result_file(execution, f["id"]))
            log.info("PREPARING %s: %s started again (a range was missing when FINALIZE ran): %s to copy",
                     execution.execution_id, f["path"], counted(len(f["ranges"]), "range"))


def _stripe_for(size: int, stripe: int) -> int:
    """``stripe``, enlarged (in whole MiB) where ``size`` would need more than S3's 10,000 parts."""
    if -(-size // stripe) <= MAX_PARTS:
        return stripe
    mib = 1024**2
    least = -(-size // MAX_PARTS)
    return -(-least // mib) * mib


def _huge_files(execution: ExecutionDir, threshold: int) -> list[dict[str, Any]]:
    """The manifest's files to copy of at least ``threshold`` bytes. Only row groups whose statistics say
    they hold such a size are read, one at a time: a plan without huge files costs the footer alone."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out: list[dict[str, Any]] = []
    if not execution.store.exists(execution.manifest):
        return out
    with execution.store.fs.open_input_file(execution.manifest) as fh:
        parquet = pq.ParquetFile(fh)
        size_column = parquet.schema_arrow.get_field_index("size")
        for group in range(parquet.metadata.num_row_groups):
            stats = parquet.metadata.row_group(group).column(size_column).statistics
            if stats is not None and stats.has_min_max and stats.max < threshold:
                continue
            rows = parquet.read_row_group(group, columns=[*_ROW_FIELDS, "action", "type"])
            keep = pc.and_(pc.and_(pc.equal(rows["action"], "copy"), pc.equal(rows["type"], FILE)),
                           pc.greater_equal(pc.fill_null(rows["size"], 0), threshold))
            out.extend(rows.filter(keep).select(_ROW_FIELDS).to_pylist())
    return out


def _still_huge(src: Location, rows: list[dict[str, Any]], threshold: int) -> list[tuple[dict[str, Any], StatResult]]:
    """The listed huge files that still are (one stat each), with that stat: every range task and FINALIZE
    compare the source with it. Any other (gone, no longer a file, shrunk, unreadable) is left to its
    shard, whose whole copy reports what became of it."""
    out = []
    for row in sorted(rows, key=lambda r: r["path"]):
        try:
            seen = src.stat(row["path"])
        except (OSError, LocationError):
            continue
        if seen is not None and seen.type == FILE and seen.size >= threshold:
            out.append((row, seen))
    return out


def _fitting_stripe(sizes: list[int], shards: int, stripe: int, limit: int) -> int | None:
    """``stripe``, doubled until ``shards`` plus the ranges of files of ``sizes`` are at most ``limit`` mapped
    tasks; None where even S3's largest part does not make them fit."""
    while True:
        if shards + sum(-(-size // _stripe_for(size, stripe)) for size in sizes) <= limit:
            return stripe
        if stripe * 2 > MAX_PART_BYTES:
            return None
        stripe *= 2


def plan_stripes(execution: ExecutionDir, src: Location, dst: Location, options: TaskOptions,
                 shards: list[dict[str, Any]], max_shards: int | None = None
                 ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """PREPARING's last step: stripe the files at or above ``stripe_threshold_bytes`` (where the destination
    writes ranges); return the shard descriptors to map TRANSFERRING over and the summary for prepare.json
    (None where nothing is striped). Shards and ranges together stay within the option ``max_shards`` and
    the argument ``max_shards`` (Airflow's ``[core] max_map_length``, which refuses a longer list).

    A file PREPARING cannot stripe after all (gone or emptied since the listing, or a destination that
    refuses to start its ranged write there, e.g. a file in the way of its folder) stays in its shard:
    copied whole, it succeeds or fails there as any file does, and PREPARING goes on."""
    threshold = options.stripe_threshold_bytes
    if not threshold or not shards or not dst.capabilities.ranged_writes:
        return shards, None
    huge = _still_huge(src, _huge_files(execution, threshold), threshold)
    if not huge:
        return shards, None
    limit = min(options.max_shards, max_shards or options.max_shards)
    striped = Counter(row["shard"] for row, _seen in huge)
    kept = sum(d["files"] > striped.get(d["shard"], 0) for d in shards)
    stripe = _fitting_stripe([seen.size for _row, seen in huge], kept, options.stripe_bytes, limit)
    if stripe is None:
        log.warning("PREPARING %s: %s would need more range tasks than max_shards=%d allows: copied whole instead",
                    execution.execution_id, counted(len(huge), "huge file"), limit)
        return shards, None
    files = _started(execution, src, dst, options, huge, stripe, max(d["shard"] for d in shards) + 1)
    if not files:
        return shards, None
    striped = Counter(f["shard"] for f in files)
    dropped = sorted(d["shard"] for d in shards if d["files"] <= striped.get(d["shard"], 0))
    execution.write_json(_plan_file(execution), {"threshold": threshold, "stripe_bytes": stripe, "files": files,
                                                 "dropped_shards": dropped, "planned_at": utcnow()})
    count = sum(len(f["ranges"]) for f in files)
    summary = {"files": len(files), "ranges": count, "bytes": sum(f["size"] for f in files), "stripe_bytes": stripe}
    log.info("PREPARING %s: %s striped into %s", execution.execution_id, counted(len(files), "file"),
             counted(count, "range"))
    return _descriptors(execution, shards, files, dropped), summary


def _started(execution: ExecutionDir, src: Location, dst: Location, options: TaskOptions,
             huge: list[tuple[dict[str, Any], StatResult]], stripe: int, first: int) -> list[dict[str, Any]]:
    """The striped files' entries of ``stripes.json``, ranges numbered from shard ``first``, each with its
    ranged write started at the destination (none in a dry run). A file whose write does not start is
    left out, and its numbers go to the next file."""
    options = without_ownership(options, dst)
    files: list[dict[str, Any]] = []
    for row, seen in huge:
        size, per = seen.size, _stripe_for(seen.size, stripe)
        f = {"id": len(files), "path": row["path"], "size": size, "shard": row["shard"],
             "source": {"size": size, "mtime_ns": seen.mtime_ns, "etag": seen.etag}, "stripe_bytes": per,
             "ranges": [{"shard": first + i, "offset": offset, "length": min(per, size - offset)}
                        for i, offset in enumerate(range(0, size, per))],
             "write": None}
        if not options.dry_run:
            try:
                f["write"] = _begin(execution, src, dst, options, f).to_dict()
            except (OSError, LocationError) as exc:
                log.warning("PREPARING %s: %s: its ranged write did not start (%s); its shard copies it whole",
                            execution.execution_id, row["path"], exc)
                execution.store.delete(execution.progress_file(first))  # no range task will report there
                continue
        files.append(f)
        first += len(f["ranges"])
    return files


def _meta(src: Location, dst: Location, options: TaskOptions, path: str, stat: StatResult) -> Metadata:
    """What the published file gets, from a stat of the source (as a whole-file copy takes it from its read)."""
    meta = metadata_for(stat, options, OwnerMap(src, dst, options))
    return with_extras(src, path, meta, stat, copied_extras(src, dst, options), options)


def _begin(execution: ExecutionDir, src: Location, dst: Location, options: TaskOptions,
           f: dict[str, Any]) -> RangedWrite:
    first = f["ranges"][0]["shard"]
    _heartbeat(execution, f, "RUNNING")  # before the upload exists: its record is judged by this
    dst.track_uploads(StripeUploadRecords(execution, first))
    try:
        stat = src.stat(f["path"])
        if not _same_source(stat, f["source"]):
            raise LocationError(f"{f['path']}: changed at the source while PREPARING planned its ranges")
        return dst.begin_ranged(f["path"], f["size"], f["stripe_bytes"], _meta(src, dst, options, f["path"], stat),
                                tag=shard_tag(execution, first))
    finally:
        dst.track_uploads(None)


class StripeUploadRecords(UploadRecords):
    """The uploads journal of a striped file, recorded without a host: its writers are many tasks, so the
    leftovers machinery judges them alive by the file's heartbeat, not by one process."""

    def __init__(self, execution: ExecutionDir, shard: int) -> None:
        super().__init__(execution, shard)
        self._host, self._pid = "", 0


def _heartbeat(execution: ExecutionDir, f: dict[str, Any], state: str) -> None:
    """The striped file's liveness, where the leftovers machinery looks for a shard's: a progress file (with
    a shard's keys, for the UI) under its first range's number, never a running task's count of bytes."""
    first = f["ranges"][0]["shard"]
    path = execution.progress_file(first)
    execution.store.makedirs(posixpath.dirname(path))
    execution.write_json(path, {
        "shard": first, "state": state, "try_number": None, "hostname": "", "files_done": 0, "files_total": 1,
        "bytes_done": 0, "bytes_total": f["size"], "current": [f["path"]] if state == "RUNNING" else [],
        "bytes_per_second": None, "files_per_second": None, "eta_seconds": None, "started_at": None,
        "updated_at": datetime.now(UTC).isoformat()})


def _result_status(execution: ExecutionDir, f: dict[str, Any]) -> str | None:
    """The striped file's status in its FINALIZE result, None before FINALIZE decided it."""
    path = _result_file(execution, f["id"])
    if not execution.store.exists(path):
        return None
    return execution.read_table(path, RESULT_SCHEMA)["status"][0].as_py()


# -- TRANSFERRING ------------------------------------------------------------------------------------
def _same_source(now: StatResult | None, seen: dict[str, Any]) -> bool:
    """Whether the source is still the version PREPARING planned (``seen``: its size, mtime and ETag then)."""
    if now is None or now.type != FILE or now.size != seen["size"]:
        return False
    if seen.get("etag") and now.etag:
        return now.etag == seen["etag"]
    return now.mtime_ns == seen["mtime_ns"]


def _range_chunks(src: Location, fh: IO[bytes], offset: int, length: int, sparse: bool,
                  limiter: RateLimiter) -> Iterator[bytes | Hole]:
    """``length`` bytes of ``fh`` from ``offset``; where both sides hold holes, the source's holes as
    :class:`Hole` markers (a sparse multi-GiB file stays cheap)."""
    end = offset + length
    layout = src.sparse_layout(fh) if sparse else None  # leaves fh at 0
    data = [(max(a, offset), min(b, end)) for a, b in layout.data if b > offset and a < end] if layout else [(offset, end)]
    pos = offset
    for start, stop in data:
        while pos < start:
            k = min(checksum.CHUNK, start - pos)
            yield Hole(k)
            pos += k
        if sparse:  # opened whole (a sparse_layout needs the file): go to where this range's data is
            fh.seek(start)
        pos = start
        while pos < stop:
            chunk = fh.read(min(checksum.CHUNK, stop - pos))
            if not chunk:
                return  # shorter than planned: the writer says so
            limiter.acquire(len(chunk))
            pos += len(chunk)
            yield chunk
    while pos < end:
        k = min(checksum.CHUNK, end - pos)
        yield Hole(k)
        pos += k


def _beating(chunks: Iterator[bytes | Hole], beat: Callable[[], None]) -> Iterator[bytes | Hole]:
    """``chunks``, calling ``beat`` every :data:`HEARTBEAT_S` seconds while they are taken."""
    last = time.monotonic()
    for chunk in chunks:
        yield chunk
        if time.monotonic() - last >= HEARTBEAT_S:
            beat()
            last = time.monotonic()


def transfer_range(execution: ExecutionDir, shard: int, src: Location, dst: Location, options: TaskOptions,
                   plan: StripePlan, bytes_per_second: int | None = None,
                   try_number: int | None = None) -> dict[str, Any]:
    """Copy one range of a striped file; a range already recorded is not copied again."""
    f, rng = plan.range_of(shard)
    record = _range_record(execution, shard)
    summary = {"shard": shard, "stripe_of": f["path"], "offset": rng["offset"], "length": rng["length"],
               "try_number": try_number, "started_at": utcnow()}
    if execution.store.exists(record):
        log.info("range shard %d (%s at %d): done by an earlier try", shard, f["path"], rng["offset"])
        return {**summary, "resumed": True, "bytes_written": 0}
    if f["write"] is None:
        raise PermanentShardError(f"range shard {shard}: {f['path']} has no ranged write (a dry run's plan)")
    _heartbeat(execution, f, "RUNNING")
    ranged = RangedWrite.from_dict(f["write"])
    limiter = RateLimiter(bytes_per_second if bytes_per_second is not None else options.BytesPerSecond)
    try:
        before = src.stat(f["path"])
        if not _same_source(before, f["source"]):
            raise PermanentShardError(f"range shard {shard}: {f['path']} changed at the source since PREPARING; "
                                      "the next execution copies it again")
        sparse = src.capabilities.sparse_files and dst.capabilities.sparse_files
        with (src.open_read(f["path"]) if sparse else src.open_range(f["path"], rng["offset"], rng["length"])) as fh:
            chunks = _range_chunks(src, fh, rng["offset"], rng["length"], sparse, limiter)
            written = dst.write_range(ranged, rng["offset"], _beating(chunks, lambda: _heartbeat(execution, f, "RUNNING")),
                                      durable=options.sync_writes)
        if not _same_source(src.stat(f["path"]), f["source"]):
            raise PermanentShardError(f"range shard {shard}: {f['path']} changed at the source during the copy; "
                                      "the next execution copies it again")
    except (OSError, LocationError) as exc:
        error = ShardFailedError if is_retryable(exc) else PermanentShardError
        raise error(f"range shard {shard} ({f['path']} at {rng['offset']}): {exc}") from exc
    execution.store.makedirs(posixpath.dirname(record))
    execution.write_json(record, {**written.to_dict(), "try_number": try_number, "at": utcnow()})
    _heartbeat(execution, f, "RUNNING")
    log.info("range shard %d: %s bytes of %s at %d", shard, f"{written.length:,}", f["path"], rng["offset"])
    return {**summary, "resumed": False, "bytes_written": written.length, "ended_at": utcnow()}


# -- FINALIZE ----------------------------------------------------------------------------------------
def commit_stripes(execution: ExecutionDir, src: Location, dst: Location, options: TaskOptions) -> dict[str, Any] | None:
    """Publish every striped file whose ranges are all copied, drop the others; their results join the
    shards'. Idempotent: a file with a result already (an earlier try of FINALIZE) is left as it is."""
    plan = load(execution)
    if plan is None or options.dry_run:
        return None
    options = without_ownership(options, dst)
    t0 = time.monotonic()
    committed = failed = 0
    dropped = set(plan.data.get("dropped_shards") or [])
    by_shard: dict[int, list[dict[str, Any]]] = {}
    for f in plan.files:
        path = _result_file(execution, f["id"])
        if execution.store.exists(path):
            if f["shard"] in dropped:  # an earlier try's result: its shard's summary may still be missing
                by_shard.setdefault(f["shard"], []).extend(execution.read_table(path, RESULT_SCHEMA).to_pylist())
            continue
        result = _commit_one(execution, src, dst, options, f)
        execution.write_table(path, pa.Table.from_pylist([result], schema=RESULT_SCHEMA), RESULT_SCHEMA)
        by_shard.setdefault(f["shard"], []).append(result)
        committed += result["status"] == "SUCCESS"
        failed += result["status"] == "FAILED"
    for shard in sorted(dropped):  # a shard with no task of its own reports here
        results = by_shard.get(shard)
        if results is None:
            continue
        nbytes = sum(r["bytes_written"] or 0 for r in results)
        execution.write_json(execution.shard_file(shard, "json"), {
            "shard": shard, "try_number": None, "started_at": plan.data.get("planned_at"), "ended_at": utcnow(),
            "duration_ms": None, "entries": len(results), "succeeded": sum(r["status"] == "SUCCESS" for r in results),
            "failed": sum(r["status"] == "FAILED" for r in results), "resumed": 0, "bytes_written": nbytes,
            "bytes_total": nbytes, "leftovers_removed": 0, "leftover_bytes_removed": 0})
    if committed or failed:
        log.info("FINALIZE %s: %s committed, %d dropped (ranges missing or source changed)",
                 execution.execution_id, counted(committed, "striped file"), failed)
    return {"committed": committed, "failed": failed, "duration_ms": int((time.monotonic() - t0) * 1000)}


def _published_already(dst: Location, f: dict[str, Any], stat: StatResult, options: TaskOptions) -> Written | None:
    there = dst.stat(f["path"])
    if there is None or there.type != FILE or there.size != f["size"]:
        return None
    if options.Mtime == "PRESERVE" and abs(there.mtime_ns - stat.mtime_ns) >= dst.capabilities.mtime_resolution_ns:
        return None
    return Written(there.size, there.etag)


def _commit_one(execution: ExecutionDir, src: Location, dst: Location, options: TaskOptions,
                f: dict[str, Any]) -> dict[str, Any]:
    first = f["ranges"][0]["shard"]
    result = {"path": f["path"], "type": FILE, "action": "copy", "status": "FAILED", "bytes_written": 0,
              "resumed": False}
    ranged = RangedWrite.from_dict(f["write"])
    done: list[RangeWritten] = []
    for rng in f["ranges"]:
        rec = execution.read_json(_range_record(execution, rng["shard"]))
        if rec is not None:
            done.append(RangeWritten.from_dict(rec))
    dst.track_uploads(StripeUploadRecords(execution, first))
    try:
        missing = len(f["ranges"]) - len(done)
        stat = src.stat(f["path"])
        if missing:
            error = f"{f['path']}: {missing} of {counted(len(f['ranges']), 'range')} not copied; not published"
        elif not _same_source(stat, f["source"]):
            error = f"{f['path']}: changed at the source during the striped copy; not published"
        else:
            meta = _meta(src, dst, options, f["path"], stat)
            try:
                written = dst.commit_ranged(ranged, done, meta, overwrite=options.OverwriteMode == "ALWAYS")
            except NotFoundError:
                # No temporary or upload left: an earlier try of FINALIZE published it and died before
                # recording so, if the file at the final name is this one.
                written = _published_already(dst, f, stat, options)
                if written is None:
                    raise
            if options.sync_writes:  # the rename and metadata, before the result that records the file done
                dst.sync()
            crc = written.checksum or f"{whole_crc(done):016x}"
            result.update(status="SUCCESS", bytes_written=written.size, checksum_algo=checksum.ALGO, src_checksum=crc,
                          dst_etag=written.etag, src_mtime_ns=stat.mtime_ns, src_atime_ns=stat.atime_ns,
                          src_mode=stat.mode, src_uid=stat.uid, src_gid=stat.gid)
            _heartbeat(execution, f, "SUCCESS")
            return result
        result["error"] = error
    except (OSError, LocationError) as exc:
        result["error"] = f"{f['path']}: {exc}"
    finally:
        if result["status"] != "SUCCESS":
            try:
                dst.abort_ranged(ranged)
            except (OSError, LocationError) as exc:  # the next execution's clean-up removes it
                log.warning("%s: striped write not dropped: %s", f["path"], exc)
            _heartbeat(execution, f, "FAILED")
        dst.track_uploads(None)
    return result
