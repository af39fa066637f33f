"""LAUNCHING's partitions of the key space: which top-level names each mapped PREPARING task lists.

A shallow listing of both roots gives the top-level names. Names that are a directory on either side
are dealt over the partitions (sorted, round robin: as many names in each); names that are files on
both sides form one partition of their own. Every decision of the plan relates entries below one
top-level name only (the same path on both sides; with a case-insensitive destination, names equal once
lower-cased, which are kept in one partition), so each partition is planned as the whole tree would be.

What would not hold within one partition makes LAUNCHING keep ONE partition (the reason is logged and
recorded): hard links kept (``preserve_hard_links``: the names of one file may sit below different
top-level names), a ManifestConfig (nothing is listed), a location without partial scans (SMB, Azure
Blob), or a dry run towards a destination folder that does not exist yet.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from airflow_datasync.locations import Location
from airflow_datasync.manifest import ExecutionDir
from airflow_datasync.options import TaskOptions

log = logging.getLogger("airflow_datasync")

#: ``prepare_partitions="auto"``: one partition per this many entries the last execution of the task listed
#: (on its larger side); one partition when there is no such execution.
AUTO_ENTRIES_PER_PARTITION = 1_000_000


def partitions_file(execution: ExecutionDir) -> str:
    return execution.file("partitions.json")


def part_file(execution: ExecutionDir, partition: int, suffix: str) -> str:
    """A file of one partition: ``partitions/part-NNNNN.{source.parquet,destination.parquet,manifest.parquet,json}``."""
    return execution.file(f"partitions/part-{partition:05d}.{suffix}")


def single_reason(options: TaskOptions, src: Location, dst: Location, destination_exists: bool) -> str | None:
    """Why this execution must be listed and planned as ONE partition, or None."""
    if options.ManifestConfig is not None:
        return "a ManifestConfig lists no tree"
    if options.preserve_hard_links:
        return "preserve_hard_links: the names of one file may lie below different top-level folders"
    if not destination_exists:
        return "the destination folder does not exist yet"
    for side, location in (("source", src), ("destination", dst)):
        if not location.capabilities.partial_scans:
            return f"the {side} ({location.scheme}) cannot list part of its tree"
    return None


def wanted_partitions(options: TaskOptions, previous_entries: int | None) -> int:
    """How many partitions the option asks for (before the top-level names bound it)."""
    if options.prepare_partitions != "auto":
        return int(options.prepare_partitions)
    return max(1, math.ceil((previous_entries or 0) / AUTO_ENTRIES_PER_PARTITION))


def group_names(source: list[tuple[str, bool]], destination: list[tuple[str, bool]], wanted: int) -> list[list[str]]:
    """The top-level names of both sides in at most ``wanted`` partitions (none empty; at least one)."""
    is_dir: dict[str, bool] = {}
    for name, directory in (*source, *destination):
        is_dir[name] = is_dir.get(name, False) or directory
    # Names equal once lower-cased stay together: a case-insensitive destination relates them.
    folded: dict[str, list[str]] = {}
    for name in sorted(is_dir):
        folded.setdefault(name.lower(), []).append(name)
    dirs = [group for group in folded.values() if any(is_dir[n] for n in group)]
    files = [name for group in folded.values() if not any(is_dir[n] for n in group) for name in group]
    slots = max(1, min(len(dirs), wanted - 1 if files else wanted))
    parts: list[list[str]] = [[] for _ in range(slots)]
    for i, group in enumerate(dirs):
        parts[i % slots].extend(group)
    parts = [p for p in parts if p]
    if files:
        parts.append(files)
    return parts or [[]]


def partition_key_space(execution: ExecutionDir, src: Location, dst: Location, options: TaskOptions,
                        destination_exists: bool, previous_entries: int | None,
                        max_partitions: int | None = None) -> dict[str, Any]:
    """Decide the partitions of an execution and record them in ``partitions.json`` (the name lists stay in
    the store; XCom carries only their indexes). Returns the record: ``count``, and ``reason`` for one.
    ``max_partitions``: Airflow's ``[core] max_map_length`` (it refuses to map over a longer list)."""
    wanted = min(wanted_partitions(options, previous_entries), max_partitions or 2**31)
    reason = single_reason(options, src, dst, destination_exists) if wanted > 1 else None
    if wanted <= 1 or reason is not None:
        record: dict[str, Any] = {"count": 1, "partitions": None, "wanted": wanted, "reason": reason}
    else:
        parts = group_names(src.top_level(), dst.top_level(), wanted)
        if len(parts) <= 1:
            record = {"count": 1, "partitions": None, "wanted": wanted,
                      "reason": "nothing to deal: a single top-level folder, or only files, below the roots"}
        else:
            record = {"count": len(parts), "partitions": parts, "wanted": wanted, "reason": None}
    if record["reason"] is not None and wanted > 1:
        log.info("LAUNCHING %s: PREPARING in one task, not %d: %s", execution.execution_id, wanted, record["reason"])
    elif record["count"] > 1:
        log.info("LAUNCHING %s: PREPARING in %d partitions of the top-level names", execution.execution_id,
                 record["count"])
    execution.write_json(partitions_file(execution), record)
    return record


def read_partitions(execution: ExecutionDir) -> list[list[str]] | None:
    """The top-level names of each partition, or None for an execution listed as one (or launched before
    partitions existed)."""
    record = execution.read_json(partitions_file(execution))
    return None if record is None else record.get("partitions")


def previous_entries(execution: ExecutionDir, record: dict[str, Any]) -> int | None:
    """The larger side's entry count of the last execution of this task between the same locations."""
    from airflow_datasync.phases.hints import previous_execution

    previous = previous_execution(execution, record)
    prepared = previous.read_json(previous.prepare) if previous is not None else None
    if not prepared:
        return None
    return max(int(prepared.get("source_entries") or 0), int(prepared.get("destination_entries") or 0))
