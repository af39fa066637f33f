"""The cross-execution scan-hint cache: what an earlier execution saw and wrote, as ScanHints that save an
object store a HEAD request per unchanged object (PREPARING, and VERIFYING's second listing)."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync.locations.base import LISTING_SCHEMA, ScanHints
from airflow_datasync.manifest import MANIFEST_SCHEMA, ExecutionDir
from airflow_datasync.options import TaskOptions
from airflow_datasync.units import entries

log = logging.getLogger("airflow_datasync")


def previous_execution(execution: ExecutionDir, record: dict[str, Any], look_back: int = 5) -> ExecutionDir | None:
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


def execution_hints(previous: ExecutionDir, side: str) -> ScanHints | None:
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
            # What the listing said of an entry the execution then changed is stale even under the same ETag
            # (a metadata update copies an object onto itself): only what it wrote, below, may stand for it.
            changed = results.filter(pc.equal(results["status"], "SUCCESS"))["path"]
            listing = listing.filter(pc.invert(pc.is_in(listing["path"], changed)))
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
