"""The phases of one task execution, free of Airflow: LAUNCHING → PREPARING → TRANSFERRING → VERIFYING → report.

Each phase reads what the previous ones wrote in the execution directory and writes its own files, so
the phases can run in different processes (Airflow tasks on different workers) or in one Python call
(:func:`run_execution`, used by the CLI and by tests).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync import plan as planning
from airflow_datasync.locations import Location, LocationError, open_location
from airflow_datasync.locations.base import DIR, LISTING_SCHEMA, DirectoryNotEmptyError, Metadata, ScanHints
from airflow_datasync.manifest import (
    MANIFEST_SCHEMA,
    RESULT_SCHEMA,
    ExecutionDir,
    ParquetSink,
    ScratchSink,
    create_execution_dir,
    read_scratch,
    utcnow,
)
from airflow_datasync.options import OptionsError, TaskOptions
from airflow_datasync.owners import OwnerMap
from airflow_datasync.progress import Progress
from airflow_datasync.transfer import copied_extras, metadata_for, run_by_depth, transfer_shard, with_extras
from airflow_datasync.uri import redact_uri
from airflow_datasync.units import counted, entries

log = logging.getLogger("airflow_datasync")

DEFAULT_STORE = os.environ.get("AIRFLOW_DATASYNC_MANIFEST_STORE") or os.path.join(
    os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "datasync", "executions"
)


@dataclass(frozen=True)
class LocationSpec:
    """A URI plus an optional Airflow connection id (credentials never live in the URI)."""

    uri: str
    conn_id: str | None = None

    def __post_init__(self) -> None:
        if redact_uri(self.uri) != self.uri and ":" in self.uri.split("://", 1)[1].split("@", 1)[0]:
            raise LocationError(f"{redact_uri(self.uri)}: put credentials in an Airflow connection (conn_id), "
                                "not in the URI; a password in a URI would end up in logs and records.")

    def open(self) -> Location:
        return open_location(self.uri, self.conn_id)

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "conn_id": self.conn_id}  # __post_init__ refused any password in it


def _load(execution: ExecutionDir) -> tuple[dict[str, Any], Location, Location, TaskOptions]:
    record = execution.read_json(execution.launch)
    if record is None:
        raise FileNotFoundError(f"{execution.uri}: no launch.json; is this an execution directory?")
    options = TaskOptions.from_dict(record["options_dict"])
    src = LocationSpec(record["source"]["uri"], record["source"]["conn_id"]).open()
    dst = LocationSpec(record["destination"]["uri"], record["destination"]["conn_id"]).open()
    return record, src, dst, options


# -- LAUNCHING -------------------------------------------------------------------------------------
def launch(source: LocationSpec, destination: LocationSpec, options: TaskOptions | dict | None = None, *,
           task_name: str = "datasync", store: str | None = None, store_conn_id: str | None = None,
           airflow: dict[str, Any] | None = None) -> ExecutionDir:
    """Validate both locations and the options, allocate an execution and write its record.

    ``airflow`` names the task instance that launched it (``dag_id``, ``run_id``, ``task_id``, ``group_id``,
    ``map_index``, ``try_number``): the UI shows an execution only to users who may read that DAG.

    A dry run (``options.dry_run``) checks the destination without writing to it: no missing folder is
    created and no probe written; a missing folder a real run would create counts as an empty one."""
    if not isinstance(options, TaskOptions):
        options = TaskOptions.from_dict(options)
    src, dst = source.open(), destination.open()
    src.check(writable=False)
    # Before dst.check(), which may create a missing destination folder (it must never appear inside the source).
    if src.contains(dst) or dst.contains(src):
        raise LocationError(
            f"source {redact_uri(source.uri)} and destination {redact_uri(destination.uri)} overlap "
            "(one lies inside the other); a sync between them would copy into itself or delete its own input."
        )
    destination_exists = dst.check(writable=True, dry_run=options.dry_run)
    execution = create_execution_dir(store or DEFAULT_STORE, task_name, store_conn_id)
    execution.write_json(execution.launch, {
        "execution_id": execution.execution_id, "task_name": task_name, "status": "LAUNCHING",
        "launched_at": utcnow(),
        "source": source.to_dict(), "destination": destination.to_dict(), "options_dict": _options_for_record(options),
        # False only for a dry run towards a missing folder that a real run would create.
        "airflow": airflow, "destination_exists": destination_exists is not False,
    })
    log.info("LAUNCHING %s: %s → %s%s", execution.execution_id, redact_uri(source.uri), redact_uri(destination.uri),
             " (dry run: nothing is written at the destination)" if options.dry_run else "")
    return execution


def _options_for_record(options: TaskOptions) -> dict[str, Any]:
    data = options.to_dict()
    data["TaskReportConfig"] = dict(data["TaskReportConfig"])
    return data


# -- PREPARING -------------------------------------------------------------------------------------
#: Above this many entries on either side, PREPARING plans in hash partitions of at most about this many
#: entries each, so that its memory stays flat however large the tree (tests lower it).
PARTITION_ROWS = 200_000


def _scan_to(execution: ExecutionDir, location: Location, path: str, what: str,
             hints: ScanHints | None = None, other: str | None = None, compare: bool = True) -> int:
    """List one side into ``path``; return its entry count. Given the ``other`` side's listing, an object store
    reads metadata (a HEAD) only for entries the plan will compare: those present on the other side as a
    file of the same size."""
    progress = Progress(f"scanning {what}")
    needs = None
    if other is not None and location.capabilities.scan_hints:
        # The other side's file sizes as a dict: memory grows with the tree here, for object stores only.
        listing = execution.read_table(other, LISTING_SCHEMA)
        files = listing.filter(pc.equal(listing["type"], "file"))
        sizes = dict(zip(files["path"].to_pylist(), files["size"].to_pylist()))
        del listing, files
        needs = (lambda rel, size: compare and sizes.get(rel) == size)
    with execution.sink(path, LISTING_SCHEMA) as sink:
        for batch in location.scan(hints=hints, needs_metadata=needs):
            sink.write(batch)
            progress.add(batch.num_rows)
    progress.log()
    return sink.rows


def prepare(execution: ExecutionDir, *, max_shards: int | None = None) -> list[dict[str, Any]]:
    """Scan both sides, write the manifest, cut shards; return the shard descriptors for XCom.

    A dry run plans the same way (the manifest says what a run would do, shard by shard) but returns no
    shards, so that nothing is transferred."""
    t0 = time.monotonic()
    started = utcnow()
    record, src, dst, options = _load(execution)
    src_scan_hints, dst_scan_hints = src.capabilities.scan_hints, dst.capabilities.scan_hints
    previous = _previous_execution(execution, record) if src_scan_hints or dst_scan_hints else None
    src_hints = _hints(previous, "source") if previous is not None and src_scan_hints else None
    dst_hints = _hints(previous, "destination") if previous is not None and dst_scan_hints else None
    compare = options.TransferMode == "CHANGED"
    # The side that can skip metadata reads is listed second, knowing what the first side holds.
    # TransferMode=ALL still lists the destination: it tells a directory from a file before we write.
    if options.ManifestConfig is not None:
        # Only what the manifest lists is stat'ed, on both sides: neither side is listed (manifest_list).
        src_count, dst_count = _listed_to(execution, record, src, dst, options)
    elif not record.get("destination_exists", True):
        # A dry run towards a folder a real run would create: what it would find there is nothing.
        dst_count = _empty_listing(execution, execution.destination_listing)
        src_count = _scan_to(execution, src, execution.source_listing, "source", src_hints)
    elif src_scan_hints:
        dst_count = _scan_to(execution, dst, execution.destination_listing, "destination", dst_hints)
        src_count = _scan_to(execution, src, execution.source_listing, "source", src_hints,
                             execution.destination_listing, compare)
    else:
        src_count = _scan_to(execution, src, execution.source_listing, "source", src_hints)
        dst_count = _scan_to(execution, dst, execution.destination_listing, "destination", dst_hints,
                             execution.source_listing, compare)
    limit = min(options.max_shards, max_shards or options.max_shards)
    parts = -(-max(src_count, dst_count) // PARTITION_ROWS)
    if parts <= 1:
        shard_plan, est, shards = _plan_in_memory(execution, src, dst, options, limit)
    else:
        shard_plan, est, shards = _plan_partitioned(execution, src, dst, options, limit, parts)
    execution.write_json(execution.prepare, {
        "started_at": started, "ended_at": utcnow(), "duration_ms": int((time.monotonic() - t0) * 1000),
        "source_entries": src_count, "destination_entries": dst_count,
        "shard_count": shard_plan.count, "files_per_shard": shard_plan.files_per_shard,
        "bytes_per_shard": shard_plan.bytes_per_shard, **est, "warnings": _prepare_warnings(options, dst, src),
    })
    log.info("PREPARING %s: %s at source, %s at destination; %s to transfer (%s bytes), %s to delete, %s",
             execution.execution_id, entries(src_count), dst_count,
             est["EstimatedFilesToTransfer"], est["EstimatedBytesToTransfer"], est["EstimatedFilesToDelete"],
             counted(shard_plan.count, "shard"))
    if options.dry_run:
        log.info("PREPARING %s: dry run: no shard is transferred; the report lists what a run would do",
                 execution.execution_id)
        return []
    return shards


def _listed_to(execution: ExecutionDir, record: dict[str, Any], src: Location, dst: Location,
               options: TaskOptions) -> tuple[int, int]:
    """The two listings of a ManifestConfig execution, from stats of the listed paths; their entry counts."""
    from airflow_datasync import manifest_list

    source, destination = manifest_list.listings_for(record, src, dst, options)
    if not record.get("destination_exists", True):
        destination = LISTING_SCHEMA.empty_table()
    execution.write_table(execution.source_listing, source, LISTING_SCHEMA)
    execution.write_table(execution.destination_listing, destination, LISTING_SCHEMA)
    log.info("PREPARING %s: ManifestConfig: %s listed, %s of them at the destination", execution.execution_id,
             entries(source.num_rows), destination.num_rows)
    return source.num_rows, destination.num_rows


def _empty_listing(execution: ExecutionDir, path: str) -> int:
    execution.write_table(path, LISTING_SCHEMA.empty_table(), LISTING_SCHEMA)
    return 0


def _plan_in_memory(execution: ExecutionDir, src: Location, dst: Location, options: TaskOptions, limit: int
                    ) -> tuple[planning.ShardPlan, dict[str, int], list[dict[str, Any]]]:
    """Plan both whole listings at once: the manifest sorted by shard, then path (unsharded rows first)."""
    source = execution.read_table(execution.source_listing, LISTING_SCHEMA)
    destination = execution.read_table(execution.destination_listing, LISTING_SCHEMA)
    manifest = planning.diff(*planning.comparable(source, destination, options, src, dst),
                             compare_dir_metadata=dst.capabilities.keeps_directory_metadata)
    manifest, shard_plan = planning.assign_shards(manifest, options.files_per_shard, options.bytes_per_shard, limit)
    manifest = manifest.sort_by([("shard", "ascending"), ("path", "ascending")])
    execution.write_table(execution.manifest, manifest, MANIFEST_SCHEMA)
    return shard_plan, planning.estimates(manifest), _shard_descriptors(execution, manifest)


def _plan_partitioned(execution: ExecutionDir, src: Location, dst: Location, options: TaskOptions, limit: int,
                      parts: int) -> tuple[planning.ShardPlan, dict[str, int], list[dict[str, Any]]]:
    """Plan a large tree in ``parts`` hash partitions of the paths, one in memory at a time.

    Every decision of the plan relates only entries of one partition (the same path on both sides; for a
    case-insensitive destination, names under the same top-level name), so each partition is planned
    exactly as a whole tree would be. What spans partitions is summed as it goes: the estimates, and the
    bytes of each work row (8 bytes per row) from which the shards are cut once, as :func:`plan.assign_shards`
    cuts them, over the work rows in partition then path order.

    The manifest holds the unsharded rows first (partition by partition, then the errors sorted by path,
    which the report quotes the first of), then the work rows, shard after shard.
    """
    log.info("PREPARING %s: planning in %d partitions", execution.execution_id, parts)
    by_top = dst.capabilities.case_insensitive
    est: dict[str, int] = {}
    sizes: list[np.ndarray] = []
    errors: list[pa.Table] = []
    with execution.scratch("prepare") as scratch, execution.sink(execution.manifest, MANIFEST_SCHEMA) as out:
        src_parts = _split(execution, execution.source_listing, f"{scratch}/source", parts, by_top)
        dst_parts = _split(execution, execution.destination_listing, f"{scratch}/destination", parts, by_top)
        work_parts = [f"{scratch}/work-{i:05d}.arrow" for i in range(parts)]
        for src_part, dst_part, work_part in zip(src_parts, dst_parts, work_parts):
            part_est, part_sizes, part_errors = _plan_part(src_part, dst_part, work_part, out, options, src, dst)
            # Hand the partition's freed memory back: the allocator would otherwise keep some of each
            # partition's and the peak would creep up with the partition count.
            pa.default_memory_pool().release_unused()
            est = {key: est.get(key, 0) + value for key, value in part_est.items()}
            sizes.append(part_sizes)
            errors.append(part_errors)
        out.write(pa.concat_tables(errors).sort_by("path"))
        del errors
        all_sizes = np.concatenate(sizes)
        ids, shard_plan = planning.cut_shards(all_sizes, options.files_per_shard, options.bytes_per_shard, limit)
        offset = 0
        for work_part in work_parts:
            rows = read_scratch(work_part)
            shard = pa.array(ids[offset:offset + rows.num_rows], pa.int32())
            out.write(rows.set_column(rows.schema.get_field_index("shard"), "shard", shard))
            offset += rows.num_rows
    return shard_plan, est, _descriptors_of(execution, ids, all_sizes)


def _plan_part(src_part: str, dst_part: str, work_part: str, out: ParquetSink, options: TaskOptions,
               src: Location, dst: Location) -> tuple[dict[str, int], np.ndarray, pa.Table]:
    """Plan one partition as :func:`_plan_in_memory` plans a whole tree. Its unsharded rows but errors go to
    ``out``, its work rows to ``work_part``; return its estimates, the cut bytes of its work rows and its
    error rows."""
    manifest = planning.diff(*planning.comparable(read_scratch(src_part), read_scratch(dst_part), options, src, dst),
                             compare_dir_metadata=dst.capabilities.keeps_directory_metadata)
    work, work_sizes = planning.work_sizes(manifest)
    is_error = pc.equal(manifest["action"], "error").to_numpy(zero_copy_only=False)
    out.write(manifest.filter(pa.array(~work & ~is_error)))
    with ScratchSink(work_part, MANIFEST_SCHEMA) as sink:
        sink.write(manifest.filter(pa.array(work)))
    return planning.estimates(manifest), work_sizes, manifest.filter(pa.array(is_error))


def _split(execution: ExecutionDir, listing: str, prefix: str, parts: int, by_top: bool) -> list[str]:
    """Spread a listing over ``parts`` scratch files by partition of the path, one batch in memory."""
    paths = [f"{prefix}-{i:05d}.arrow" for i in range(parts)]
    with contextlib.ExitStack() as stack:
        sinks = [stack.enter_context(ScratchSink(path, LISTING_SCHEMA)) for path in paths]
        for batch in execution.iter_batches(listing):
            part = _partition_of(batch["path"], parts, by_top)
            order = np.argsort(part, kind="stable")
            bounds = np.searchsorted(part[order], np.arange(parts + 1))
            batch = batch.take(pa.array(order))
            for i, sink in enumerate(sinks):
                sink.write(batch.slice(bounds[i], bounds[i + 1] - bounds[i]))
    return paths


def _partition_of(paths: pa.Array, parts: int, by_top: bool) -> np.ndarray:
    """The partition of each path: Python's string hash, the same for a path all through this process.

    ``by_top`` (a case-insensitive destination): of the lower-cased first path segment instead, as case
    folding relates entries across the tree below one top-level name (``Data/x`` collides with ``data/``).
    """
    if by_top:
        paths = pc.utf8_lower(pc.list_element(pc.split_pattern(paths, "/", max_splits=1), 0))
    return np.fromiter(map(hash, paths.to_pylist()), dtype=np.int64, count=len(paths)) % parts


def _prepare_warnings(options: TaskOptions, dst: Location, src: Location | None = None) -> list[str]:
    mapped = [f"{name}={value}" for name, value in (("Uid", options.Uid), ("Gid", options.Gid)) if value in ("NAME", "BOTH")]
    no_owners = [loc.scheme for loc in (src, dst) if loc is not None and not loc.capabilities.posix_metadata]
    if mapped and no_owners:
        return [f"{', '.join(mapped)}: {no_owners[0].upper()} has no POSIX owners, so owners are neither mapped by "
                "name nor kept between these locations"]
    if (options.Uid != "NONE" or options.Gid != "NONE") and not dst.capabilities.keeps_ownership:
        return [f"Uid/Gid: ownership is neither kept nor compared: the worker runs as uid {os.geteuid()} and only "
                "root may give files to other owners at the destination (run as root, or set Uid/Gid NONE)"]
    return []


def _previous_execution(execution: ExecutionDir, record: dict[str, Any], look_back: int = 5) -> ExecutionDir | None:
    """The latest earlier execution of this task between the same two locations that got as far as a
    report: what it saw and wrote saves this one a HEAD request per unchanged object."""
    task_dir = execution.root.rsplit("/", 1)[0]
    earlier = [n for n in execution.store.listdir(task_dir) if n < execution.execution_id]
    for name in sorted(earlier, reverse=True)[:look_back]:
        uri = (execution.uri.rsplit("/", 1)[0]) + "/" + name
        candidate = ExecutionDir(uri, execution.conn_id)
        launched = candidate.read_json(candidate.launch) or {}
        if (launched.get("source"), launched.get("destination")) != (record["source"], record["destination"]):
            continue
        if candidate.store.exists(candidate.report):
            return candidate
    return None


def _hints(previous: ExecutionDir, side: str) -> ScanHints | None:
    """Per path and ETag, the metadata ``previous`` saw on one side, plus (destination) what it wrote."""
    try:
        listing = previous.read_table(previous.source_listing if side == "source" else previous.destination_listing,
                                      LISTING_SCHEMA)
        results = previous.shard_results()
        copied = results.filter(pc.and_(pc.equal(results["status"], "SUCCESS"), pc.is_valid(results["src_mtime_ns"])))
        read = copied.select(["path", "src_mtime_ns", "src_atime_ns", "src_mode", "src_uid", "src_gid"])
        if side == "source" and read.num_rows:
            # What the copies read (a GET brings the version's metadata) completes what the listing skipped.
            joined = listing.join(read, keys="path", join_type="left outer")
            learnt = pc.and_(pc.invert(pc.fill_null(joined["meta_known"], True)), pc.is_valid(joined["src_mtime_ns"]))
            for name in ("mtime_ns", "atime_ns", "mode", "uid", "gid"):
                joined = joined.set_column(joined.schema.get_field_index(name), name,
                                           pc.if_else(learnt, joined["src_" + name], joined[name]))
            joined = joined.set_column(joined.schema.get_field_index("meta_known"), "meta_known",
                                       pc.or_(pc.fill_null(joined["meta_known"], True), learnt))
            listing = joined.select(LISTING_SCHEMA.names)
        if side == "destination":
            written = results.filter(pc.and_(pc.equal(results["status"], "SUCCESS"), pc.is_valid(results["dst_etag"])))
            if written.num_rows:
                record = previous.read_json(previous.launch) or {}
                options = TaskOptions.from_dict(record.get("options_dict"))
                manifest = previous.read_table(previous.manifest, MANIFEST_SCHEMA).select(
                    ["path", "type", "mtime_ns", "atime_ns", "mode", "uid", "gid", "link_target", "meta_known"])
                rows = written.select(["path", "dst_etag", "src_mtime_ns", "src_atime_ns", "src_mode", "src_uid",
                                       "src_gid"]).join(manifest, keys="path", join_type="inner")
                # The metadata written came from what the copy read (src_*), else from the manifest when known;
                # placeholders of a listing that skipped the HEAD are never passed on.
                for name in ("mtime_ns", "atime_ns", "mode", "uid", "gid"):
                    rows = rows.set_column(rows.schema.get_field_index(name), name,
                                           pc.if_else(pc.is_valid(rows["src_mtime_ns"]), rows["src_" + name], rows[name]))
                rows = rows.filter(pc.or_(pc.is_valid(rows["src_mtime_ns"]), pc.fill_null(rows["meta_known"], True)))
                # What a HEAD would now return: only the metadata the options had us write.
                kept = {"mtime_ns": options.Mtime == "PRESERVE", "atime_ns": options.Atime == "BEST_EFFORT",
                        "mode": options.PosixPermissions == "PRESERVE", "uid": options.Uid != "NONE",
                        "gid": options.Gid != "NONE"}
                cols = {"path": rows["path"], "etag": rows["dst_etag"], "type": rows["type"],
                        "link_target": rows["link_target"]}
                for name, keep in kept.items():
                    cols[name] = rows[name] if keep else pa.nulls(rows.num_rows, LISTING_SCHEMA.field(name).type)
                fresh = pa.table(cols)
                listing = listing.filter(pc.invert(pc.is_in(listing["path"], fresh["path"])))
                listing = pa.concat_tables([listing.select(fresh.column_names), fresh.cast(
                    pa.schema([LISTING_SCHEMA.field(n) for n in fresh.column_names]))])
        hints = ScanHints(listing)
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:  # hints only save requests: never fail on them
        log.warning("not using hints from %s: %s", previous.execution_id, exc)
        return None
    log.info("PREPARING: %s known on the %s side from execution %s", entries(len(hints)), side, previous.execution_id)
    return hints


def _shard_descriptors(execution: ExecutionDir, manifest: pa.Table) -> list[dict[str, Any]]:
    work = manifest.filter(pc.greater_equal(manifest["shard"], 0))
    if work.num_rows == 0:
        return []
    sizes = pc.if_else(pc.equal(work["action"], "copy"), pc.fill_null(work["size"], 0), 0)
    grouped = pa.table({"shard": work["shard"], "size": sizes}).group_by("shard").aggregate(
        [("size", "sum"), ("size", "count")]).sort_by("shard")
    return [
        {**execution.ref(), "shard": s, "files": c, "bytes": b}
        for s, b, c in zip(grouped["shard"].to_pylist(), grouped["size_sum"].to_pylist(), grouped["size_count"].to_pylist())
    ]


def _descriptors_of(execution: ExecutionDir, ids: np.ndarray, sizes: np.ndarray) -> list[dict[str, Any]]:
    """:func:`_shard_descriptors` from the shard id and cut bytes of each work row (ids ascending)."""
    if len(ids) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    files = np.diff(np.r_[starts, len(ids)])
    nbytes = np.add.reduceat(sizes, starts)
    return [{**execution.ref(), "shard": int(ids[s]), "files": int(c), "bytes": int(b)}
            for s, c, b in zip(starts, files, nbytes)]


# -- TRANSFERRING ----------------------------------------------------------------------------------
def transfer(execution: ExecutionDir, shard: int, *, bytes_per_second: int | None = None,
             try_number: int | None = None) -> dict[str, Any]:
    """TRANSFERRING of one shard; ``try_number`` (Airflow's) goes into its summary and progress file."""
    _record, src, dst, options = _load(execution)
    if options.dry_run:  # PREPARING hands out no shards for a dry run; never write for one that got here
        raise OptionsError(f"execution {execution.execution_id} is a dry run: TRANSFERRING writes nothing")
    return transfer_shard(execution, shard, src, dst, options, bytes_per_second, try_number)


def finalize(execution: ExecutionDir) -> dict[str, Any]:
    """After every shard: deletions (PreserveDeletedFiles=REMOVE), then directory metadata, deepest first.

    Deletes wait until all copies are done (like rsync's --delete-after) so that a failed transfer never
    leaves the destination with less than it had; directory mtimes are set last because writing into a
    directory changes its mtime.
    """
    t0 = time.monotonic()
    _record, src, dst, options = _load(execution)
    if options.dry_run:
        return _dry_run_summary("finalize", "nothing deleted, no directory metadata set")
    options = planning.without_ownership(options, dst)
    manifest = execution.read_table(execution.manifest, MANIFEST_SCHEMA)
    deletes = manifest.filter(pc.equal(manifest["action"], "delete")).select(["path", "type"]).to_pylist()
    deletes.sort(key=lambda r: (r["path"].count("/"), r["type"] != DIR), reverse=True)
    results, failed = [], 0
    for row in deletes:
        try:
            dst.delete(row["path"], is_dir=row["type"] == DIR)
            results.append({"path": row["path"], "type": row["type"], "action": "delete", "status": "SUCCESS"})
        except DirectoryNotEmptyError as exc:
            results.append({"path": row["path"], "type": row["type"], "action": "delete", "status": "SKIPPED",
                            "warning": str(exc)})
        except (OSError, LocationError) as exc:
            failed += 1
            results.append({"path": row["path"], "type": row["type"], "action": "delete", "status": "FAILED",
                            "error": f"{row['path']}: {exc}"})
    dir_rows = _directories_to_finish(manifest, dst.capabilities.directory_times_follow_children)

    def finish(row: dict[str, Any]) -> list[str]:
        try:
            return dst.set_metadata(row["path"], _directory_metadata(src, dst, row, options, extras), is_dir=True)
        except FileNotFoundError:
            return []  # its creation failed in a shard, which reports it
        except LocationError as exc:  # behind a symlink at the destination: not applied through it
            return [f"{row['path']}: directory metadata not set: {exc}"]
        except OSError as exc:
            return [f"{row['path']}: directory metadata not set: {exc.strerror}"]

    # Deepest level first (a parent's mode may close the way to its children), each level in parallel.
    extras = copied_extras(src, dst, options)
    warnings = [w for found in run_by_depth(finish, dir_rows, options.workers(src, dst), "finalize",
                                            deepest_first=True) for w in found]
    execution.write_table(execution.delete_rows, pa.Table.from_pylist(results, schema=RESULT_SCHEMA), RESULT_SCHEMA)
    summary = {"ended_at": utcnow(), "duration_ms": int((time.monotonic() - t0) * 1000), "deleted": len(results) - failed,
               "delete_failed": failed, "directories_updated": len(dir_rows), "warnings": warnings[:100]}
    execution.write_json(execution.finalize, summary)
    return summary


def _directories_to_finish(manifest: pa.Table, follow_children: bool = True) -> list[dict[str, Any]]:
    """Directories whose metadata must be (re)applied after the shards: those created or with metadata to
    update, and the parents of every entry written or deleted (that changed their mtime). Directories
    nothing touched keep what they had, which matched: a re-run of a large tree costs no call per directory.
    Where directories do not change with their children (object-store markers, written with their
    metadata by the shard), only those planned for a metadata update."""
    action = manifest["action"]
    if not follow_children:
        return manifest.filter(pc.and_(pc.equal(manifest["type"], DIR), pc.equal(action, "meta"))).to_pylist()
    changed = manifest.filter(pc.is_in(action, pa.array(["copy", "mkdir", "delete"])))["path"].to_pylist()
    parents = {p.rsplit("/", 1)[0] for p in changed if "/" in p}
    is_dir = pc.equal(manifest["type"], DIR)
    wanted = pc.or_(pc.is_in(action, pa.array(["mkdir", "meta"])),
                    pc.and_(pc.equal(action, "skip"), pc.is_in(manifest["path"], pa.array(sorted(parents), pa.string()))))
    return manifest.filter(pc.and_(is_dir, wanted)).to_pylist()


def _directory_metadata(src: Location, dst: Location, row: dict[str, Any], options: TaskOptions,
                        extras: frozenset[str]) -> Metadata:
    """The planned times of a directory, and where the pair copies ``extras`` (see
    transfer.copied_extras) also what a file gets at copy time: those of a stat of the source directory,
    and those that cost a request of their own (a security descriptor). Otherwise the manifest row alone."""
    meta = metadata_for(row, options, OwnerMap(src, dst, options))
    if not extras:
        return meta
    now = src.stat(row["path"])
    if now is None or now.type != DIR:
        return meta
    return with_extras(src, row["path"], meta, now, extras, options)


# -- VERIFYING and report ---------------------------------------------------------------------------
def verify(execution: ExecutionDir) -> dict[str, Any]:
    from airflow_datasync.verify import verify_execution

    _record, src, dst, options = _load(execution)
    if options.dry_run:
        return {**_dry_run_summary("verify", "nothing was transferred, so nothing to verify"), "failed": 0,
                "examples": []}
    hints = {}
    if options.VerifyMode == "POINT_IN_TIME_CONSISTENT":
        # The second listing re-reads metadata this execution already has, for every ETag still unchanged.
        hints = {side: _hints(execution, side) for side, loc in (("source", src), ("destination", dst))
                 if loc.capabilities.scan_hints}
    return verify_execution(execution, src, dst, options, hints)


def _dry_run_summary(phase: str, what: str) -> dict[str, Any]:
    """What finalize and verify return for a dry run: they do nothing and write no file."""
    log.info("%s: dry run: %s", phase, what)
    return {"dry_run": True, "detail": f"dry run: {what}"}


def report(execution: ExecutionDir) -> dict[str, Any]:
    from airflow_datasync.report import build_report

    return build_report(execution)


def run_execution(source: LocationSpec | str, destination: LocationSpec | str, options: TaskOptions | dict | None = None,
                  *, task_name: str = "datasync", store: str | None = None, store_conn_id: str | None = None) -> dict[str, Any]:
    """Run a whole execution in this process, shard after shard; return the report summary.

    With ``dry_run`` in the options: LAUNCHING and PREPARING only, then the report of what a run would do."""
    source = source if isinstance(source, LocationSpec) else LocationSpec(source)
    destination = destination if isinstance(destination, LocationSpec) else LocationSpec(destination)
    execution = launch(source, destination, options, task_name=task_name, store=store, store_conn_id=store_conn_id)
    try:
        shards = prepare(execution)
        transfer_ok = True
        for shard in shards:
            try:
                transfer(execution, shard["shard"])
            except Exception as exc:  # noqa: BLE001 - recorded by the shard; the report says ERROR
                log.error("%s", exc)
                transfer_ok = False
        if transfer_ok:
            finalize(execution)
            verify(execution)
    finally:
        summary = report(execution)
    return summary


__all__ = ["LocationSpec", "OptionsError", "launch", "prepare", "transfer", "finalize", "verify", "report", "run_execution"]
