"""PREPARING's listings: both sides of the whole tree, or of one partition's top-level names, into Parquet."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync.locations import Location
from airflow_datasync.locations.base import LISTING_SCHEMA, ScanHints
from airflow_datasync.manifest import ExecutionDir
from airflow_datasync.options import TaskOptions
from airflow_datasync.phases.hints import execution_hints, previous_execution
from airflow_datasync.phases.transfer import run_parallel
from airflow_datasync.progress import Progress


def scan_to(execution: ExecutionDir, location: Location, path: str, what: str,
            hints: ScanHints | None = None, other: str | None = None, compare: bool = True,
            under: Collection[str] | None = None) -> int:
    """List one side into ``path``; return its entry count. Given the ``other`` side's listing, an object store
    reads metadata (a HEAD) only for entries the plan will compare: those present on the other side as a
    file of the same size. ``under``: only these top-level names (a partition)."""
    return write_listing(execution, path, what, started_scan(execution, location, hints, other, compare, under))


def started_scan(execution: ExecutionDir, location: Location, hints: ScanHints | None = None, other: str | None = None,
                 compare: bool = True, under: Collection[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The batches of one side's listing, to be read by :func:`write_listing` (see :func:`scan_to`)."""
    needs = None
    if other is not None and location.capabilities.scan_hints:
        # The other side's file sizes as a dict: memory grows with the tree here, for object stores only.
        listing = execution.read_table(other, LISTING_SCHEMA)
        files = listing.filter(pc.equal(listing["type"], "file"))
        sizes = dict(zip(files["path"].to_pylist(), files["size"].to_pylist()))
        del listing, files

        def needs(rel: str, size: int) -> bool:
            return compare and sizes.get(rel) == size
    return location.scan(hints=hints, needs_metadata=needs) if under is None else \
        location.scan(hints=hints, needs_metadata=needs, under=under)


def write_listing(execution: ExecutionDir, path: str, what: str, scan: Iterator[pa.RecordBatch]) -> int:
    """Write the batches of ``scan`` into ``path``; their entry count."""
    progress = Progress(f"scanning {what}")
    with execution.sink(path, LISTING_SCHEMA) as sink:
        for batch in scan:
            sink.write(batch)
            progress.add(batch.num_rows)
    progress.log()
    return sink.rows


def empty_listing(execution: ExecutionDir, path: str) -> int:
    execution.write_table(path, LISTING_SCHEMA.empty_table(), LISTING_SCHEMA)
    return 0


def scan_sides(execution: ExecutionDir, record: dict[str, Any], src: Location, dst: Location, options: TaskOptions,
               source_path: str, destination_path: str, under: Collection[str] | None = None) -> tuple[int, int]:
    """List both sides into ``source_path`` and ``destination_path``; their entry counts."""
    src_scan_hints, dst_scan_hints = src.capabilities.scan_hints, dst.capabilities.scan_hints
    previous = previous_execution(execution, record) if src_scan_hints or dst_scan_hints else None
    src_hints = execution_hints(previous, "source") if previous is not None and src_scan_hints else None
    dst_hints = execution_hints(previous, "destination") if previous is not None and dst_scan_hints else None
    compare = options.TransferMode == "CHANGED"
    # The side that can skip metadata reads is listed second, knowing what the first side holds.
    # TransferMode=ALL still lists the destination: it tells a directory from a file before we write.
    if not record.get("destination_exists", True):
        # A dry run towards a folder a real run would create: what it would find there is nothing.
        dst_count = empty_listing(execution, destination_path)
        src_count = scan_to(execution, src, source_path, "source", src_hints, under=under)
    elif src_scan_hints:
        dst_count = scan_to(execution, dst, destination_path, "destination", dst_hints, under=under)
        src_count = scan_to(execution, src, source_path, "source", src_hints, destination_path, compare, under=under)
    elif dst_scan_hints:
        src_count = scan_to(execution, src, source_path, "source", src_hints, under=under)
        dst_count = scan_to(execution, dst, destination_path, "destination", dst_hints, source_path, compare,
                            under=under)
    else:
        # Neither listing reads the other: both at once, so that one side's waits (a file server answering,
        # a disk seeking) overlap the other side's work. Both scans start here, on this thread, which a backend
        # may bind to its session (SMB lists on the session this thread opened in LAUNCHING).
        src_scan = started_scan(execution, src, src_hints, under=under)
        dst_scan = started_scan(execution, dst, dst_hints, under=under)
        sides = [(source_path, "source", src_scan), (destination_path, "destination", dst_scan)]
        src_count, dst_count = run_parallel(lambda side: write_listing(execution, *side), sides, 2, "listing")
    return src_count, dst_count
