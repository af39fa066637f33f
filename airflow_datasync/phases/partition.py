"""Partitioned PREPARING.

- In one task (:func:`plan_partitioned`): a large tree planned in hash partitions of the paths, one in
  memory at a time.
- Over mapped tasks (:func:`plan_partition`, then :func:`collect_partitions`): each task lists and plans
  the top-level names LAUNCHING gave its partition (phases/key_space.py) into ``partitions/part-NNNNN.*``;
  one task then collects the partitions into the execution's listings and manifest, and cuts the shards
  over all of them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync import plan as planning
from airflow_datasync.locations import Location
from airflow_datasync.locations.base import LISTING_SCHEMA
from airflow_datasync.manifest import MANIFEST_SCHEMA, ExecutionDir, ParquetSink, ScratchSink, read_scratch
from airflow_datasync.options import TaskOptions
from airflow_datasync.phases.hardlinks import LinkPlan
from airflow_datasync.phases.key_space import part_file
from airflow_datasync.phases.leftovers import clean_destination
from airflow_datasync.phases.scan import scan_sides

log = logging.getLogger("airflow_datasync")


def plan_partitioned(execution: ExecutionDir, src: Location, dst: Location, options: TaskOptions, limit: int,
                      parts: int, links: LinkPlan | None = None) -> tuple[planning.ShardPlan, dict[str, int], list[dict[str, Any]]]:
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
    errors: list[pa.Table] = []
    with execution.scratch("prepare") as scratch, execution.sink(execution.manifest, MANIFEST_SCHEMA) as out:
        src_parts = _split(execution, execution.source_listing, f"{scratch}/source", parts, by_top)
        dst_parts = _split(execution, execution.destination_listing, f"{scratch}/destination", parts, by_top)
        work_parts = [f"{scratch}/work-{i:05d}.arrow" for i in range(parts)]
        # Each partition's cut bytes (8 per work row) go to scratch, not memory: the cut reads them back
        # a partition at a time, so memory stays flat however many entries (issue 15: 10 million).
        size_parts = [f"{scratch}/sizes-{i:05d}.npy" for i in range(parts)]
        # A directory's children hash to other partitions: which ones could not be listed is known globally.
        errors_only = execution.read_table(execution.source_listing, LISTING_SCHEMA, filters=[("error", "!=", "")])
        unlisted = planning.unlisted_dirs(errors_only)
        for src_part, dst_part, work_part, size_part in zip(src_parts, dst_parts, work_parts, size_parts):
            part_est, part_sizes, part_errors = _plan_part(src_part, dst_part, work_part, out, options, src, dst,
                                                           unlisted, links)
            # Hand the partition's freed memory back: the allocator would otherwise keep some of each
            # partition's and the peak would creep up with the partition count.
            pa.default_memory_pool().release_unused()
            est = {key: est.get(key, 0) + value for key, value in part_est.items()}
            np.save(size_part, part_sizes)
            errors.append(part_errors)
        out.write(pa.concat_tables(errors).sort_by("path"))
        del errors

        shard_plan, descriptors = _cut_work_rows(execution, out, (read_scratch(w) for w in work_parts), size_parts,
                                                 options, limit)
    return shard_plan, est, descriptors


def _cut_work_rows(execution: ExecutionDir, out: ParquetSink, work_rows: Iterator[pa.Table], size_parts: list[str],
                   options: TaskOptions, limit: int) -> tuple[planning.ShardPlan, list[dict[str, Any]]]:
    """Cut the shards over every partition's work rows (``work_rows``, one table per partition, in order;
    their cut bytes saved in ``size_parts``), one partition in memory at a time, and write the rows with
    their shard ids to ``out``: the shard plan and the shards' descriptors."""
    def sizes() -> Iterator[np.ndarray]:
        return (np.load(path) for path in size_parts)

    shard_plan = planning.fit_shard_bounds(sizes, options.files_per_shard, options.bytes_per_shard, limit)
    cutter = planning.ShardCutter(shard_plan.files_per_shard, shard_plan.bytes_per_shard)
    totals = _ShardTotals(shard_plan.count)
    for rows, part_sizes in zip(work_rows, sizes()):
        ids = cutter.cut(part_sizes)
        totals.add(ids, part_sizes)
        out.write(rows.set_column(rows.schema.get_field_index("shard"), "shard", pa.array(ids, pa.int32())))
    return shard_plan, totals.descriptors(execution)


def _plan_part(src_part: str, dst_part: str, work_part: str, out: ParquetSink, options: TaskOptions,
               src: Location, dst: Location, unlisted: list[str],
               links: LinkPlan | None = None) -> tuple[dict[str, int], np.ndarray, pa.Table]:
    """Plan one partition as :func:`prepare._plan_in_memory` plans a whole tree. Its unsharded rows but errors go to
    ``out``, its work rows to ``work_part``; return its estimates, the cut bytes of its work rows and its
    error rows."""
    manifest = planning.diff(*planning.comparable(read_scratch(src_part), read_scratch(dst_part), options, src, dst),
                             compare_dir_metadata=dst.capabilities.keeps_directory_metadata, unlisted=unlisted)
    if links is not None:  # groups span partitions: their leaders and ids come from the whole listings
        manifest = links.apply(manifest, options)
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


class _ShardTotals:
    """Files and cut bytes per shard, summed over the work rows as the cut assigns them (ids ascending)."""

    def __init__(self, count: int) -> None:
        self.files = np.zeros(count, dtype=np.int64)
        self.bytes = np.zeros(count, dtype=np.int64)

    def add(self, ids: np.ndarray, sizes: np.ndarray) -> None:
        if len(ids) == 0:
            return
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        shards = ids[starts]
        self.files[shards] += np.diff(np.r_[starts, len(ids)])
        self.bytes[shards] += np.add.reduceat(sizes, starts)

    def descriptors(self, execution: ExecutionDir) -> list[dict[str, Any]]:
        """:func:`prepare._shard_descriptors`, one per shard that holds a row."""
        return [{**execution.ref(), "shard": int(s), "files": int(self.files[s]), "bytes": int(self.bytes[s])}
                for s in np.flatnonzero(self.files)]


def plan_partition(execution: ExecutionDir, record: dict[str, Any], src: Location, dst: Location,
                   options: TaskOptions, partition: int, names: Collection[str]) -> dict[str, Any]:
    """List one partition's top-level ``names`` on both sides and plan them, as :func:`prepare._plan_in_memory`
    plans a whole tree but without shards; return its summary (``partitions/part-NNNNN.json``).

    Its temporaries are cleaned as the whole scan would; the unfinished uploads, listed for the whole
    destination, by partition 0 only."""
    execution.store.makedirs(execution.file("partitions"))
    source_path, destination_path = part_file(execution, partition, "source.parquet"), \
        part_file(execution, partition, "destination.parquet")
    log.info("PREPARING %s: partition %d: %d top-level name(s)", execution.execution_id, partition, len(names))
    src_count, dst_count = scan_sides(execution, record, src, dst, options, source_path, destination_path,
                                      under=frozenset(names))
    leftovers = clean_destination(execution, dst, dry_run=options.dry_run, uploads=partition == 0) \
        if record.get("destination_exists", True) else None
    source = execution.read_table(source_path, LISTING_SCHEMA)
    destination = execution.read_table(destination_path, LISTING_SCHEMA)
    manifest = planning.diff(*planning.comparable(source, destination, options, src, dst),
                             compare_dir_metadata=dst.capabilities.keeps_directory_metadata)
    del source, destination
    execution.write_table(part_file(execution, partition, "manifest.parquet"), manifest, MANIFEST_SCHEMA)
    return {"source_entries": src_count, "destination_entries": dst_count, "leftovers": leftovers,
            "names": len(names), "manifest_rows": manifest.num_rows}


def collect_partitions(execution: ExecutionDir, parts: int, options: TaskOptions, limit: int
                       ) -> tuple[planning.ShardPlan, dict[str, int], list[dict[str, Any]]]:
    """The partitions' listings and plans as the execution's ``source.parquet``, ``destination.parquet``
    and ``manifest.parquet``, with the shards cut once over the work rows of all partitions (partition, then
    path order), so that small partitions share shards and there are never more than ``limit``.

    The manifest is laid out as :func:`plan_partitioned` lays it out, and cut as it cuts: each partition's
    work-row bytes go to scratch and the cut streams them back (:class:`plan.ShardCutter`), so memory holds
    one partition at a time however many entries."""
    for side, path in (("source", execution.source_listing), ("destination", execution.destination_listing)):
        with execution.sink(path, LISTING_SCHEMA) as sink:
            for i in range(parts):
                for batch in execution.iter_batches(part_file(execution, i, f"{side}.parquet")):
                    sink.write(batch)
    manifests = [part_file(execution, i, "manifest.parquet") for i in range(parts)]
    est: dict[str, int] = {}
    errors: list[pa.Table] = []
    with execution.scratch("collect") as scratch, execution.sink(execution.manifest, MANIFEST_SCHEMA) as out:
        size_parts = [f"{scratch}/sizes-{i:05d}.npy" for i in range(parts)]
        for path, size_part in zip(manifests, size_parts):
            manifest = execution.read_table(path, MANIFEST_SCHEMA)
            est = {key: est.get(key, 0) + value for key, value in planning.estimates(manifest).items()}
            work, work_sizes = planning.work_sizes(manifest)
            is_error = pc.equal(manifest["action"], "error").to_numpy(zero_copy_only=False)
            out.write(manifest.filter(pa.array(~work & ~is_error)))
            errors.append(manifest.filter(pa.array(is_error)))
            np.save(size_part, work_sizes)
            del manifest
            pa.default_memory_pool().release_unused()
        out.write(pa.concat_tables(errors).sort_by("path") if errors else MANIFEST_SCHEMA.empty_table())
        del errors

        shard_plan, descriptors = _cut_work_rows(execution, out, (_work_rows(execution, m) for m in manifests),
                                                 size_parts, options, limit)
    log.info("PREPARING %s: %d partitions collected into %s", execution.execution_id, parts,
             f"{shard_plan.count} shard(s)")
    return shard_plan, est or planning.estimates(MANIFEST_SCHEMA.empty_table()), descriptors


def _work_rows(execution: ExecutionDir, manifest_path: str) -> pa.Table:
    manifest = execution.read_table(manifest_path, MANIFEST_SCHEMA)
    return manifest.filter(pa.array(planning.work_sizes(manifest)[0]))


def columns_schema(names: Collection[str]) -> pa.Schema:
    """The manifest's schema narrowed to ``names``: reading only those columns."""
    return pa.schema([MANIFEST_SCHEMA.field(n) for n in names])
