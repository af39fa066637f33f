"""PREPARING: scan both sides, plan the manifest (in memory, or in partitions for a large tree), cut shards.

Returns the shard descriptors that TRANSFERRING is mapped over.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync import plan as planning
from airflow_datasync.locations import Location
from airflow_datasync.locations.base import LISTING_SCHEMA, ScanHints
from airflow_datasync.manifest import MANIFEST_SCHEMA, ExecutionDir, utcnow
from airflow_datasync.options import TaskOptions
from airflow_datasync.phases.deletion_cap import DeletionCapError, deletion_cap_problem, destination_entries_in_scope
from airflow_datasync.phases.hardlinks import LinkPlan, link_plan
from airflow_datasync.phases.hints import execution_hints, previous_execution
from airflow_datasync.phases.launch import opened
from airflow_datasync.phases.leftovers import clean_destination
from airflow_datasync.phases.partition import plan_partitioned
from airflow_datasync.phases.resume import stored_shards
from airflow_datasync.progress import Progress
from airflow_datasync.units import counted, entries

log = logging.getLogger("airflow_datasync")

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

        def needs(rel: str, size: int) -> bool:
            return compare and sizes.get(rel) == size
    with execution.sink(path, LISTING_SCHEMA) as sink:
        for batch in location.scan(hints=hints, needs_metadata=needs):
            sink.write(batch)
            progress.add(batch.num_rows)
    progress.log()
    return sink.rows


def prepare(execution: ExecutionDir, *, max_shards: int | None = None) -> list[dict[str, Any]]:
    """Scan both sides, write the manifest, cut shards; return the shard descriptors for XCom.

    A dry run plans the same way (the manifest says what a run would do, shard by shard) but returns no
    shards, so that nothing is transferred.

    An execution planned already (a cleared PREPARING, a resumed execution) is never listed or planned
    again: its stored plan's shards are handed out (phases/resume.py), which its journals index into."""
    stored = stored_shards(execution)
    if stored is not None:
        return stored
    t0 = time.monotonic()
    started = utcnow()
    with opened(execution) as (record, src, dst, options):
        src_scan_hints, dst_scan_hints = src.capabilities.scan_hints, dst.capabilities.scan_hints
        previous = previous_execution(execution, record) if src_scan_hints or dst_scan_hints else None
        src_hints = execution_hints(previous, "source") if previous is not None and src_scan_hints else None
        dst_hints = execution_hints(previous, "destination") if previous is not None and dst_scan_hints else None
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
        # What killed copies of earlier executions left at the destination (temporaries its scan met,
        # unfinished uploads), removed before this execution writes, or only counted in a dry run.
        leftovers = clean_destination(execution, dst, dry_run=options.dry_run) \
            if record.get("destination_exists", True) else None
        limit = min(options.max_shards, max_shards or options.max_shards)
        parts = -(-max(src_count, dst_count) // PARTITION_ROWS)
        links = link_plan(execution, options, dst)
        if parts <= 1:
            shard_plan, est, shards = _plan_in_memory(execution, src, dst, options, limit, links)
        else:
            shard_plan, est, shards = plan_partitioned(execution, src, dst, options, limit, parts, links)
        warnings = _prepare_warnings(options, dst, src)
        if links.warning(options, dst):
            warnings.append(links.warning(options, dst))
        refused = _check_deletion_cap(execution, options, est)
        if refused is not None and options.dry_run:
            warnings.insert(0, f"dry run: a run would be refused: {refused}")
        elif refused is not None:
            # Before prepare.json: FINALIZE (which runs whatever happened upstream) finds no plan to carry out.
            execution.write_json(execution.prepare_refused, {"ended_at": utcnow(), "error": refused, **est})
            log.error("PREPARING %s: refused: %s", execution.execution_id, refused)
            raise DeletionCapError(refused)
        execution.write_json(execution.prepare, {
            "started_at": started, "ended_at": utcnow(), "duration_ms": int((time.monotonic() - t0) * 1000),
            "source_entries": src_count, "destination_entries": dst_count,
            "shard_count": shard_plan.count, "files_per_shard": shard_plan.files_per_shard,
            "bytes_per_shard": shard_plan.bytes_per_shard, **est, "hard_links": links.summary(), "warnings": warnings,
            "leftovers": leftovers,
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


def _check_deletion_cap(execution: ExecutionDir, options: TaskOptions, est: dict[str, int]) -> str | None:
    deletes = est["EstimatedFilesToDelete"]
    if options.PreserveDeletedFiles != "REMOVE" or deletes == 0:
        return None
    return deletion_cap_problem(options, deletes, est["FilesPrepared"], destination_entries_in_scope(execution))


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


def _plan_in_memory(execution: ExecutionDir, src: Location, dst: Location, options: TaskOptions, limit: int,
                    links: LinkPlan) -> tuple[planning.ShardPlan, dict[str, int], list[dict[str, Any]]]:
    """Plan both whole listings at once: the manifest sorted by shard, then path (unsharded rows first)."""
    source = execution.read_table(execution.source_listing, LISTING_SCHEMA)
    destination = execution.read_table(execution.destination_listing, LISTING_SCHEMA)
    manifest = planning.diff(*planning.comparable(source, destination, options, src, dst),
                             compare_dir_metadata=dst.capabilities.keeps_directory_metadata)
    manifest = links.apply(manifest, options)
    manifest, shard_plan = planning.assign_shards(manifest, options.files_per_shard, options.bytes_per_shard, limit)
    manifest = manifest.sort_by([("shard", "ascending"), ("path", "ascending")])
    execution.write_table(execution.manifest, manifest, MANIFEST_SCHEMA)
    return shard_plan, planning.estimates(manifest), _shard_descriptors(execution, manifest)


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
