"""Hard links: names of one source file, counted in every execution, kept with ``preserve_hard_links``.

A file system's listing carries ``hardlink_id`` (device and inode) for files with more than one name.
PREPARING groups the names in scope (after filters, without unreadable entries) by it; a group of one
is an ordinary file (its other names lie outside the tree). Without the option, or towards a store
that holds no hard links (S3, SMB, Azure), every name is copied as an independent file and the report
says how many. With it, the first name of each group by path (its *leader*) is planned like any file,
and the others get action ``link``: FINALIZE makes them names of the leader's destination file once
every shard is done (so shard cutting never has to keep a group together), before directory times are
set. A name that already is the leader's file at the destination is a skip, so re-runs converge.

Memory: the names in groups (and their destination ids), not the tree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync.locations.base import FILE, LISTING_SCHEMA, Location, LocationError
from airflow_datasync.manifest import MANIFEST_SCHEMA, RESULT_SCHEMA, ExecutionDir
from airflow_datasync.options import TaskOptions
from airflow_datasync.units import counted

log = logging.getLogger("airflow_datasync")


@dataclass(frozen=True)
class LinkPlan:
    """The hard-link groups of one execution's source and what PREPARING does with them."""

    #: Each non-leader name in a group → its leader's path.
    leader_of: dict[str, str] = field(default_factory=dict)
    #: Destination ``hardlink_id`` of the names in groups (only when links are kept).
    dst_ids: dict[str, str] = field(default_factory=dict)
    files: int = 0
    groups: int = 0
    #: Whether the names are kept as links (the option is on and the destination holds hard links).
    preserved: bool = False

    def summary(self) -> dict[str, Any]:
        """``prepare.json``'s ``hard_links``."""
        return {"files": self.files, "groups": self.groups, "preserved": self.preserved}

    def warning(self, options: TaskOptions, dst: Location) -> str | None:
        """The report's line about hard links copied as independent files, if any were."""
        if not self.groups or self.preserved:
            return None
        what = (f"{counted(self.files, 'file')} in {counted(self.groups, 'hard-link group')} copied as independent "
                "files")
        if options.preserve_hard_links:
            return f"preserve_hard_links: {dst.scheme.upper()} holds no hard links, so {what}"
        return what + (" (set preserve_hard_links to keep them as links)" if dst.capabilities.hard_links else "")

    def apply(self, manifest: pa.Table, options: TaskOptions) -> pa.Table:
        """``manifest`` (rows of :func:`plan.diff`, before shards are cut) with the non-leader names of kept
        groups planned as ``link`` (or a skip where they already are the leader's file)."""
        if not self.preserved or not self.leader_of or manifest.num_rows == 0:
            return manifest
        paths = manifest["path"]
        rows = np.flatnonzero(pc.is_in(paths, pa.array(list(self.leader_of), pa.string())).to_numpy(zero_copy_only=False))
        if len(rows) == 0:
            return manifest
        action = manifest["action"].to_numpy(zero_copy_only=False).astype(object)
        reason = manifest["reason"].to_numpy(zero_copy_only=False).astype(object)
        link_to = np.full(manifest.num_rows, None, dtype=object)
        picked = manifest.take(pa.array(rows)).select(["path", "action", "dst_type"]).to_pylist()
        for i, row in zip(rows, picked):
            path, leader = row["path"], self.leader_of[row["path"]]
            if row["action"] == "error" or (options.OverwriteMode == "NEVER" and row["dst_type"] is not None):
                continue
            here = self.dst_ids.get(path)
            if row["action"] in ("skip", "meta") and here is not None and here == self.dst_ids.get(leader):
                action[i], reason[i] = "skip", "hard link in place"  # its metadata is the leader's: set there
            else:
                action[i], reason[i], link_to[i] = "link", f"hard link of {leader!r}", leader
        for name, values in (("action", action), ("reason", reason), ("hardlink_to", link_to)):
            manifest = manifest.set_column(manifest.schema.get_field_index(name), name, pa.array(values, pa.string()))
        return manifest


def link_plan(execution: ExecutionDir, options: TaskOptions, dst: Location) -> LinkPlan:
    """The groups of names in the source listing (as filtered), and with the option on a destination that
    holds hard links, the destination ids of those names."""
    from airflow_datasync.plan import apply_filters

    # Row groups whose hardlink_id is all null (most of a tree) are skipped by their statistics.
    with_ids = pc.is_valid(pc.field("hardlink_id"))
    names = execution.read_table(execution.source_listing, LISTING_SCHEMA, filters=with_ids)
    names = names.filter(pc.and_(pc.equal(names["type"], FILE), pc.is_null(names["error"])))
    if names.num_rows == 0:
        return LinkPlan()
    names = apply_filters(names.select(["path", "type", "hardlink_id"]), options)
    names = names.sort_by([("hardlink_id", "ascending"), ("path", "ascending")])
    groups: dict[str, list[str]] = {}
    for path, inode in zip(names["path"].to_pylist(), names["hardlink_id"].to_pylist()):
        groups.setdefault(inode, []).append(path)
    groups = {inode: paths for inode, paths in groups.items() if len(paths) > 1}
    leader_of = {path: paths[0] for paths in groups.values() for path in paths[1:]}
    preserved = options.preserve_hard_links and dst.capabilities.hard_links
    plan = LinkPlan(leader_of=leader_of, files=sum(len(p) for p in groups.values()), groups=len(groups),
                    preserved=bool(preserved))
    if preserved and groups:
        in_groups = pa.array(sorted({p for paths in groups.values() for p in paths}), pa.string())
        there = execution.read_table(execution.destination_listing, LISTING_SCHEMA, filters=with_ids)
        there = there.filter(pc.is_in(there["path"], in_groups))
        plan.dst_ids.update(zip(there["path"].to_pylist(), there["hardlink_id"].to_pylist()))
    return plan


def make_links(execution: ExecutionDir, dst: Location, manifest: pa.Table, options: TaskOptions) -> tuple[pa.Table, int]:
    """FINALIZE: every ``link`` row of ``manifest`` made a name of its leader's destination file, once the
    leader is there as the source holds it (a leader whose copy failed leaves its names failed, not stale).
    Writes and returns the rows (``links.parquet``) and the count that failed."""
    rows = manifest.filter(pc.equal(manifest["action"], "link")).select(["path", "size", "mtime_ns", "hardlink_to"]).to_pylist()
    tag = f"{execution.execution_id[-8:]}-links"
    results, failed = [], 0
    for row in rows:
        path, leader = row["path"], row["hardlink_to"]
        result = {"path": path, "type": FILE, "action": "link", "status": "SUCCESS", "bytes_written": 0, "resumed": False}
        try:
            there = dst.stat(leader)
            if there is None or there.type != FILE or there.size != row["size"] or (
                    options.preserve_mtime and there.mtime_ns != row["mtime_ns"]):
                raise LocationError(f"not linked: {leader!r} is not at the destination as the source holds it "
                                    "(its copy failed, or it changed)")
            dst.hard_link(path, leader, tag=tag)
        except (OSError, LocationError) as exc:
            failed += 1
            result.update(status="FAILED", error=f"{path}: {exc}")
        results.append(result)
    table = pa.Table.from_pylist(results, schema=RESULT_SCHEMA)
    if rows:
        execution.write_table(execution.link_rows, table, RESULT_SCHEMA)
        log.info("FINALIZE %s: %s linked, %d failed", execution.execution_id, counted(len(rows) - failed, "hard link"), failed)
    return table, failed


def unlinked(dst: Location, pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Of ``(name, leader)`` pairs, those whose name is not the leader's file at the destination → why."""
    out = {}
    for path, leader in pairs:
        try:
            a, b = dst.stat(path), dst.stat(leader)
        except (OSError, LocationError) as exc:
            out[path] = f"{path}: cannot stat to verify the hard link: {exc}"
            continue
        if a is None or b is None or a.hardlink_id is None or a.hardlink_id != b.hardlink_id:
            out[path] = f"{path}: not a hard link of {leader!r} at the destination"
    return out


def kept_pairs(execution: ExecutionDir) -> list[tuple[str, str]]:
    """``(name, leader)`` of the names this execution linked (ONLY_FILES_TRANSFERRED verifies them)."""
    links = execution.read_table(execution.link_rows, RESULT_SCHEMA)
    done = set(links.filter(pc.equal(links["status"], "SUCCESS"))["path"].to_pylist())
    if not done:
        return []
    manifest = execution.read_table(execution.manifest, MANIFEST_SCHEMA, filters=[("action", "=", "link")])
    return [(p, leader) for p, leader in zip(manifest["path"].to_pylist(), manifest["hardlink_to"].to_pylist()) if p in done]


def group_pairs(source: pa.Table) -> list[tuple[str, str]]:
    """``(name, leader)`` of every non-leader name of the groups in a source listing (POINT_IN_TIME_CONSISTENT)."""
    if "hardlink_id" not in source.column_names:
        return []
    names = source.filter(pc.and_(pc.is_valid(source["hardlink_id"]), pc.equal(source["type"], FILE)))
    groups: dict[str, list[str]] = {}
    for path, inode in zip(names["path"].to_pylist(), names["hardlink_id"].to_pylist()):
        groups.setdefault(inode, []).append(path)
    return [(p, min(paths)) for paths in groups.values() if len(paths) > 1 for p in paths if p != min(paths)]
