"""PREPARING: scan both sides, plan the manifest (in memory, or in partitions for a large tree), cut shards.

Runs as mapped tasks, one per partition of the top-level names (:func:`prepare_partition`), then one that
collects them (:func:`prepare`). Returns the shard descriptors that TRANSFERRING is mapped over.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync import plan as planning
from airflow_datasync.locations import Location
from airflow_datasync.locations.base import LISTING_SCHEMA
from airflow_datasync.manifest import MANIFEST_SCHEMA, ExecutionDir, utcnow
from airflow_datasync.options import TaskOptions
from airflow_datasync.phases.deletion_cap import DeletionCapError, deletion_cap_problem, destination_entries_in_scope
from airflow_datasync.phases.hardlinks import LinkPlan, link_plan
from airflow_datasync.phases.key_space import part_file, read_partitions
from airflow_datasync.phases.launch import opened
from airflow_datasync.phases.leftovers import clean_destination, merged_leftovers
from airflow_datasync.phases.partition import collect_partitions, plan_partition, plan_partitioned
from airflow_datasync.phases.resume import stored_shards
from airflow_datasync.phases.scan import scan_sides
from airflow_datasync.phases.stripes import plan_stripes, stored_descriptors
from airflow_datasync.units import counted, entries

log = logging.getLogger("airflow_datasync")

#: Above this many entries on either side, PREPARING plans in hash partitions of at most about this many
#: entries each, so that its memory stays flat however large the tree (tests lower it).
PARTITION_ROWS = 200_000


def prepare_partition(execution: ExecutionDir, partition: int) -> dict[str, Any]:
    """The mapped PREPARING task of one partition (see phases/key_space.py): list its top-level names on both
    sides and plan them (partition files in ``partitions/``). For an execution in one partition, list both
    whole trees only: :func:`prepare` plans them. Returns a small summary for XCom."""
    if execution.read_json(execution.prepare) is not None:  # resumed, or cleared after it completed
        log.info("PREPARING %s: partition %d: already prepared, nothing listed", execution.execution_id, partition)
        return {**execution.ref(), "partition": partition, "resumed": True}
    parts = read_partitions(execution)
    started = utcnow()
    with opened(execution) as (record, src, dst, options):
        if parts is None:
            summary = _scan_whole(execution, record, src, dst, options)
        else:
            summary = plan_partition(execution, record, src, dst, options, partition, parts[partition])
    execution.store.makedirs(execution.file("partitions"))
    execution.write_json(part_file(execution, partition, "json"), {**summary, "started_at": started, "ended_at": utcnow()})
    return {**execution.ref(), "partition": partition, "source_entries": summary["source_entries"],
            "destination_entries": summary["destination_entries"]}


def _scan_whole(execution: ExecutionDir, record: dict[str, Any], src: Location, dst: Location,
                options: TaskOptions) -> dict[str, Any]:
    if options.ManifestConfig is not None:
        # Only what the manifest lists is stat'ed, on both sides: neither side is listed (manifest_list).
        src_count, dst_count = _listed_to(execution, record, src, dst, options)
    else:
        src_count, dst_count = scan_sides(execution, record, src, dst, options,
                                          execution.source_listing, execution.destination_listing)
    # What killed copies of earlier executions left at the destination (temporaries its scan met,
    # unfinished uploads), removed before this execution writes, or only counted in a dry run.
    leftovers = clean_destination(execution, dst, dry_run=options.dry_run) \
        if record.get("destination_exists", True) else None
    return {"source_entries": src_count, "destination_entries": dst_count, "leftovers": leftovers,
            "names": None, "manifest_rows": None}  # planned by prepare(), not here


def prepare(execution: ExecutionDir, *, max_shards: int | None = None) -> list[dict[str, Any]]:
    """Plan the listings into the manifest, cut shards; return the shard descriptors for XCom.

    Lists first what :func:`prepare_partition` has not listed yet (everything, run from the engine; nothing
    after the mapped PREPARING tasks of a DAG). Partitioned, it collects the partitions: their listings
    and plans into the execution's one manifest, the shards cut over all of them (at most ``max_shards``),
    the global checks (the deletion cap, hard links across partitions, warnings) over the sums.

    A dry run plans the same way (the manifest says what a run would do, shard by shard) but returns no
    shards, so that nothing is transferred.

    An execution planned already (a cleared PREPARING, a resumed execution) is never listed or planned
    again: its stored plan's shards are handed out (phases/resume.py), which its journals index into."""
    stored = stored_shards(execution)
    if stored is not None:
        return stored_descriptors(execution, stored)  # with the ranges of its striped files
    t0 = time.monotonic()
    started = utcnow()
    parts = read_partitions(execution)
    with opened(execution) as (record, src, dst, options):
        summaries = []
        for i in range(1 if parts is None else len(parts)):
            summary = execution.read_json(part_file(execution, i, "json"))
            if summary is None:  # not listed by a mapped task (the engine, or an execution launched before)
                summary = _scan_whole(execution, record, src, dst, options) if parts is None else \
                    plan_partition(execution, record, src, dst, options, i, parts[i])
            summaries.append(summary)
        # PREPARING began with the first partition task (its duration includes the listings).
        started = min([started] + [s["started_at"] for s in summaries if "started_at" in s])
        src_count = sum(s["source_entries"] for s in summaries)
        dst_count = sum(s["destination_entries"] for s in summaries)
        leftovers = merged_leftovers([s["leftovers"] for s in summaries])
        limit = min(options.max_shards, max_shards or options.max_shards)
        if parts is not None:
            shard_plan, est, shards = collect_partitions(execution, len(parts), options, limit)
            links = link_plan(execution, options, dst)  # groups across partitions: counted, never kept (key_space)
        else:
            links = link_plan(execution, options, dst)
            rows = -(-max(src_count, dst_count) // PARTITION_ROWS)
            if rows <= 1:
                shard_plan, est, shards = _plan_in_memory(execution, src, dst, options, limit, links)
            else:
                shard_plan, est, shards = plan_partitioned(execution, src, dst, options, limit, rows, links)
        warnings = _prepare_warnings(options, dst, src)
        if links.warning(options, dst):
            warnings.append(links.warning(options, dst))
        refused = _check_deletion_cap(execution, options, est)
        # Huge files become ranges, each a shard of its own (phases/stripes.py), unless the plan is refused.
        shards, striped = plan_stripes(execution, src, dst, options, shards, limit) if refused is None else (shards, None)
        if refused is not None and options.dry_run:
            warnings.insert(0, f"dry run: a run would be refused: {refused}")
        elif refused is not None:
            # Before prepare.json: FINALIZE (which runs whatever happened upstream) finds no plan to carry out.
            execution.write_json(execution.prepare_refused, {"ended_at": utcnow(), "error": refused, **est})
            log.error("PREPARING %s: refused: %s", execution.execution_id, refused)
            raise DeletionCapError(refused)
        execution.write_json(execution.prepare, {
            "started_at": started, "ended_at": utcnow(), "duration_ms": max(int((time.monotonic() - t0) * 1000), _ms_since(started)),
            "source_entries": src_count, "destination_entries": dst_count,
            "shard_count": shard_plan.count, "files_per_shard": shard_plan.files_per_shard,
            "bytes_per_shard": shard_plan.bytes_per_shard, **est, "hard_links": links.summary(), "warnings": warnings,
            "leftovers": leftovers, "partitions": 1 if parts is None else len(parts), "striped": striped,
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


def _ms_since(timestamp: str) -> int:
    return int((datetime.fromisoformat(utcnow()) - datetime.fromisoformat(timestamp)).total_seconds() * 1000)


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
