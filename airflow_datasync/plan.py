"""PREPARING: diff a source listing against a destination listing and decide an action per entry.

All decisions are vectorised over Arrow columns (a hash join on ``path`` and boolean masks), so the cost
per entry is a few C-level operations, not a Python loop: a million entries plan in seconds.

Actions: ``copy`` (file or symlink data), ``mkdir`` (directory), ``meta`` (only metadata differs),
``skip`` (already in sync), ``delete`` (only at the destination, PreserveDeletedFiles=REMOVE) and
``error`` (the source entry cannot be read; reported and counted as failed) and ``link`` (another name
of a file copied or kept, made in FINALIZE with preserve_hard_links: see phases/hardlinks.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync.filters import keep_mask
from airflow_datasync.locations.base import Location
from airflow_datasync.manifest import MANIFEST_SCHEMA
from airflow_datasync.options import TaskOptions

ACTIONS = ("copy", "mkdir", "meta", "skip", "delete", "error", "link")
#: Actions that a TRANSFERRING shard carries out.
SHARDED_ACTIONS = ("copy", "mkdir", "meta")


def apply_filters(listing: pa.Table, options: TaskOptions) -> pa.Table:
    if not options.Includes and not options.Excludes:
        return listing
    return listing.filter(keep_mask(listing["path"], listing["type"], options.Includes, options.Excludes))


def without_ownership(options: TaskOptions, dst: Location) -> TaskOptions:
    """Uid/Gid as NONE where the destination cannot take other owners (not root on a file system): neither
    applied (a refused chown per file) nor compared (every re-run would plan an update it cannot make)."""
    if dst.capabilities.keeps_ownership or (options.Uid == "NONE" and options.Gid == "NONE"):
        return options
    return dataclasses.replace(options, Uid="NONE", Gid="NONE")


def comparable(source: pa.Table, destination: pa.Table, options: TaskOptions, src: Location, dst: Location
               ) -> tuple[pa.Table, pa.Table, TaskOptions]:
    """Listings and options as the two locations can compare them.

    Modification times are floored to the coarser resolution of the two stores (SMB keeps 100 ns), and
    POSIX mode/uid/gid are not compared when either store does not keep them (SMB), so an unchanged file
    is neither copied nor updated again on every run.
    """
    have, want = src.capabilities, dst.capabilities
    resolution = max(have.mtime_resolution_ns, want.mtime_resolution_ns)
    if resolution > 1:
        def floor(table: pa.Table) -> pa.Table:
            m = table["mtime_ns"]
            down = pc.multiply(pc.divide(m, resolution), resolution)  # integer division truncates toward zero
            down = pc.if_else(pc.greater(down, m), pc.subtract(down, resolution), down)  # floor before 1970 too
            return table.set_column(table.schema.get_field_index("mtime_ns"), "mtime_ns", down)
        source, destination = floor(source), floor(destination)
    if not (have.posix_metadata and want.posix_metadata):
        options = dataclasses.replace(options, PosixPermissions="NONE", Uid="NONE", Gid="NONE")
    options = without_ownership(options, dst)
    from airflow_datasync.owners import OwnerMap  # Uid/Gid NAME/BOTH: compare owners in the source's terms

    source, destination = OwnerMap(src, dst, options).comparable(source, destination)
    if want.case_insensitive:
        source, destination = fold_case(source, destination, options)
    return refuse_names(source, dst), destination, options


def refuse_names(source: pa.Table, dst: Location) -> pa.Table:
    """Source entries the destination cannot hold under their names (:meth:`Location.name_problem`: a
    backslash or ``:`` on an SMB share) get an ``error``: reported per entry, nothing written, never renamed.
    Entries below a refused directory are refused too (their paths hold its name)."""
    if source.num_rows == 0:
        return source
    problems = dst.name_problems(source["path"])
    if problems is None:
        return source
    if isinstance(problems, pa.ChunkedArray):
        problems = problems.combine_chunks()
    refused = pc.is_valid(problems)
    paths, why = source["path"].filter(refused).to_pylist(), problems.filter(refused).to_pylist()
    messages = pa.array([f"{p!r} cannot be written to {dst.uri}: {w}. Rename it at the source or exclude it "
                         "with Excludes." for p, w in zip(paths, why)], pa.string())
    message = pc.replace_with_mask(pa.nulls(source.num_rows, pa.string()), refused, messages)
    return source.set_column(source.schema.get_field_index("error"), "error", pc.coalesce(source["error"], message))


# -- case-insensitive destinations (SMB) ------------------------------------------------------------
CASE_RULE = ("an SMB destination is case-insensitive and cannot hold both, so neither is copied. "
             "Rename one at the source or exclude it with Excludes.")


def fold_case(source: pa.Table, destination: pa.Table, options: TaskOptions) -> tuple[pa.Table, pa.Table]:
    """Listings as a case-insensitive destination sees them (``Report.txt`` and ``report.txt`` are one name).

    - Source entries whose paths differ only in case would overwrite each other there: each gets an
      ``error`` naming the others (so the plan reports it and copies neither), and so does every entry
      below a colliding directory (``Data/x`` when the source also has ``data/``).
    - A destination entry spelled differently from exactly one source entry (``README`` for ``readme``)
      is that entry: its path takes the source's spelling, so it is compared, not copied again, and not
      deleted with PreserveDeletedFiles=REMOVE.

    Filters apply first (excluding one of the two names is the fix). Vectorised: lower-cased paths, one
    group-by and hash look-ups; only the colliding rows are handled one by one, to word their messages.
    """
    source, destination = apply_filters(source, options), apply_filters(destination, options)
    if source.num_rows == 0:
        return source, destination
    src_key = pc.utf8_lower(source["path"])
    keys = pa.table({"key": src_key, "path": source["path"]}).group_by("key").aggregate(
        [("path", "min"), ([], "count_all")])
    colliding = keys.filter(pc.greater(keys["count_all"], 1))["key"]
    if len(colliding):
        source = _refuse_collisions(source, src_key, colliding)
    if destination.num_rows:
        dst_key = pc.utf8_lower(destination["path"])
        dst_keys = pa.table({"key": dst_key}).group_by("key").aggregate([([], "count_all")])
        spelled = pc.take(keys["path_min"], pc.index_in(dst_key, value_set=keys["key"]))
        alone = pc.equal(pc.take(dst_keys["count_all"], pc.index_in(dst_key, value_set=dst_keys["key"])), 1)
        rename = pc.and_(pc.and_(pc.is_valid(spelled), alone), pc.invert(pc.is_in(destination["path"], source["path"])))
        if pc.any(rename).as_py():
            destination = destination.set_column(destination.schema.get_field_index("path"), "path",
                                                  pc.if_else(rename, spelled, destination["path"]))
    return source, destination


def _refuse_collisions(source: pa.Table, src_key: pa.ChunkedArray, colliding: pa.ChunkedArray) -> pa.Table:
    paths = source["path"]
    direct = pc.is_in(src_key, value_set=colliding)
    spellings: dict[str, list[str]] = {}
    for path, key in zip(paths.filter(direct).to_pylist(), src_key.filter(direct).to_pylist()):
        spellings.setdefault(key, []).append(path)

    def others(path: str, key: str) -> str:
        return ", ".join(repr(p) for p in sorted(spellings[key]) if p != path)

    errors = {p: f"{p!r} and {others(p, k)} differ only in case: {CASE_RULE}"
              for k, group in spellings.items() for p in group}
    # Entries below a colliding directory: the shallowest colliding ancestor, one pass per depth it can have.
    parts = pc.split_pattern(paths, "/")
    depth = pc.list_value_length(parts)
    ancestor = ancestor_key = pa.nulls(len(paths), pa.string())
    for level in sorted({k.count("/") + 1 for k in spellings}):
        prefix = pc.binary_join(pc.list_slice(parts, 0, level), "/")
        prefix_key = pc.utf8_lower(prefix)
        hit = pc.and_(pc.and_(pc.greater(depth, level), pc.is_null(ancestor)), pc.is_in(prefix_key, value_set=colliding))
        ancestor, ancestor_key = pc.if_else(hit, prefix, ancestor), pc.if_else(hit, prefix_key, ancestor_key)
    below = pc.is_valid(ancestor)
    for path, top, key in zip(paths.filter(below).to_pylist(), ancestor.filter(below).to_pylist(),
                              ancestor_key.filter(below).to_pylist()):
        errors[path] = (f"{path!r} is inside {top!r}, whose name differs only in case from {others(top, key)}: "
                        + CASE_RULE.replace("neither is", "nothing below either is"))
    message = pc.take(pa.array(list(errors.values()), pa.string()),
                      pc.index_in(paths, value_set=pa.array(list(errors), pa.string())))
    return source.set_column(source.schema.get_field_index("error"), "error", pc.coalesce(source["error"], message))


def _np(col) -> np.ndarray:
    return col.to_numpy(zero_copy_only=False)


def unlisted_dirs(source: pa.Table) -> list[str]:
    """Prefixes (``dir/``) of source directories that could not be listed (unreadable, or gone while the
    scan ran): what lies below them at the destination is unknown to this listing, never to be deleted."""
    bad = source.filter(pc.and_(pc.is_valid(source["error"]), pc.equal(source["type"], "dir")))
    return sorted({p.rstrip("/") + "/" for p in bad["path"].to_pylist()})


def diff(source: pa.Table, destination: pa.Table, options: TaskOptions, *, compare_dir_metadata: bool = True,
         unlisted: list[str] | None = None) -> pa.Table:
    """Return the manifest rows (without shards) sorted by path.

    ``compare_dir_metadata``: False where the destination's directories do not keep metadata reliably
    (object-store markers), so an existing directory is never planned for an update on every run.
    ``unlisted``: :func:`unlisted_dirs` of the whole source (a partitioned plan passes it; else computed here).
    """
    source = apply_filters(source, options)
    destination = apply_filters(destination, options)
    if source.num_rows == 0 and destination.num_rows == 0:
        return MANIFEST_SCHEMA.empty_table()  # nothing on either side (and no join engine to load for it)
    dst = destination.select(["path", "type", "size", "mtime_ns", "mode", "uid", "gid", "link_target"])
    dst = dst.rename_columns(["path"] + ["dst_" + n for n in dst.column_names[1:]])
    joined = source.join(dst, keys="path", join_type="full outer").sort_by("path")

    n = joined.num_rows
    in_src = _np(pc.is_valid(joined["type"]))
    in_dst = _np(pc.is_valid(joined["dst_type"]))
    src_type = _np(pc.fill_null(joined["type"], ""))
    dst_type = _np(pc.fill_null(joined["dst_type"], ""))
    has_error = _np(pc.is_valid(joined["error"]))

    def differs(name: str) -> np.ndarray:
        """Source value known and not equal to the destination's (a missing destination value differs;
        a missing source value, e.g. an S3 object written by another tool without mode, does not)."""
        a, b = joined[name], joined["dst_" + name]
        return _np(pc.and_(pc.is_valid(a), pc.fill_null(pc.not_equal(a, b), True)))

    action = np.full(n, "skip", dtype=object)
    reason = np.full(n, "unchanged", dtype=object)

    ok = in_src & ~has_error
    both = ok & in_dst & (src_type == dst_type)
    is_dir = src_type == "dir"

    # Metadata that the options ask to keep and that differs.
    meta = np.zeros(n, dtype=bool)
    if options.PosixPermissions == "PRESERVE":
        meta |= differs("mode")
    if options.Uid != "NONE":
        meta |= differs("uid")
    if options.Gid != "NONE":
        meta |= differs("gid")
    meta_upd = both & ~is_dir & meta
    action[meta_upd], reason[meta_upd] = "meta", "metadata changed"

    if options.TransferMode == "ALL":
        forced = both & ~is_dir
        action[forced], reason[forced] = "copy", "forced (TransferMode=ALL)"
    else:
        is_file = src_type == "file"
        is_link = src_type == "symlink"
        changed = np.zeros(n, dtype=bool)
        if options.preserve_mtime:
            m = both & (is_file | is_link) & differs("mtime_ns")
            action[m], reason[m] = "copy", "mtime changed"
            changed |= m
        s = both & is_file & differs("size")
        action[s], reason[s] = "copy", "size changed"
        changed |= s
        t = both & is_link & differs("link_target")
        action[t], reason[t] = "copy", "link target changed"

    dir_exists = both & is_dir
    action[dir_exists], reason[dir_exists] = "skip", "exists"
    # A directory whose kept metadata differs (its mtime too, when kept) is updated in finalize.
    dir_meta = dir_exists & (meta | (differs("mtime_ns") if options.preserve_mtime else False)) & compare_dir_metadata
    action[dir_meta], reason[dir_meta] = "meta", "metadata changed"

    type_changed = ok & in_dst & (src_type != dst_type)
    action[type_changed], reason[type_changed] = "copy", "type changed"
    new = ok & ~in_dst
    action[new], reason[new] = "copy", "new"
    mk = (new | type_changed) & is_dir
    action[mk] = "mkdir"

    if options.OverwriteMode == "NEVER":
        # A mkdir over an existing entry (type changed) would replace it: NEVER keeps that too.
        keep = ok & in_dst & np.isin(action, ["copy", "mkdir", "meta"])
        action[keep], reason[keep] = "skip", "exists (OverwriteMode=NEVER)"

    special = ok & (src_type == "other")
    action[special], reason[special] = "skip", "special file ignored (PreserveDevices=NONE)"

    err = in_src & has_error
    action[err] = "error"
    reason[err] = _np(pc.fill_null(joined["error"], ""))[err]

    only_dst = ~in_src & in_dst
    if options.PreserveDeletedFiles == "REMOVE":
        action[only_dst], reason[only_dst] = "delete", "not in source"
        below_unlisted = np.zeros(n, dtype=bool)
        for prefix in unlisted if unlisted is not None else unlisted_dirs(source):
            below_unlisted |= _np(pc.starts_with(joined["path"], prefix))
        kept = only_dst & below_unlisted
        action[kept], reason[kept] = "skip", "kept: its source directory could not be listed"
    keep_rows = in_src | (only_dst & (options.PreserveDeletedFiles == "REMOVE"))

    # Rows that exist only at the destination describe the destination entry.
    for name in ("type", "size", "mtime_ns"):
        joined = joined.set_column(
            joined.schema.get_field_index(name), name,
            pc.if_else(pa.array(only_dst), joined["dst_" + name], joined[name]),
        )
    out = pa.table(
        {
            **{f.name: joined[f.name] for f in MANIFEST_SCHEMA if f.name in joined.column_names and f.name != "dst_type"},
            "dst_type": joined["dst_type"],
            "action": pa.array(action, pa.string()),
            "reason": pa.array(reason, pa.string()),
            "shard": pa.array(np.full(n, -1, dtype=np.int32)),
            "hardlink_to": pa.nulls(n, pa.string()),
        }
    )
    return out.filter(pa.array(keep_rows)).select([f.name for f in MANIFEST_SCHEMA]).cast(MANIFEST_SCHEMA)


@dataclass(frozen=True)
class ShardPlan:
    count: int
    files_per_shard: int
    bytes_per_shard: int


def assign_shards(manifest: pa.Table, files_per_shard: int, bytes_per_shard: int, max_shards: int) -> tuple[pa.Table, ShardPlan]:
    """Cut actionable rows into contiguous shards bounded by file count and bytes (see :func:`cut_shards`)."""
    work, sizes = work_sizes(manifest)
    ids, shard_plan = cut_shards(sizes, files_per_shard, bytes_per_shard, max_shards)
    if shard_plan.count == 0:
        return manifest, shard_plan
    shard = np.full(manifest.num_rows, -1, dtype=np.int32)
    shard[work] = ids
    manifest = manifest.set_column(manifest.schema.get_field_index("shard"), "shard", pa.array(shard, pa.int32()))
    return manifest, shard_plan


def work_sizes(manifest: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """The rows a shard carries out (a mask) and, for each of them in order, the bytes it weighs in the cut
    (its size for a copy, else 0). Separate from the cut so that a plan made in parts cuts the same way."""
    work = _np(pc.is_in(manifest["action"], pa.array(SHARDED_ACTIONS)))
    sizes = np.where(_np(pc.equal(manifest["action"], "copy")), _np(pc.fill_null(manifest["size"], 0)), 0).astype(np.int64)
    return work, sizes[work]


def cut_shards(sizes: np.ndarray, files_per_shard: int, bytes_per_shard: int, max_shards: int
               ) -> tuple[np.ndarray, ShardPlan]:
    """Shard id of each work row (``sizes`` as :func:`work_sizes` gives them, in the order to cut).

    A shard closes when it reaches ``files_per_shard`` entries or ``bytes_per_shard`` bytes (one file
    larger than that gets a shard of its own). If that makes more than ``max_shards`` shards (Airflow's
    ``max_map_length``), both bounds are doubled until it fits.
    """
    if len(sizes) == 0:
        return np.empty(0, dtype=np.int32), ShardPlan(0, files_per_shard, bytes_per_shard)
    fps, bps = files_per_shard, bytes_per_shard
    while True:
        ids = _cut(sizes, fps, bps)
        count = int(ids[-1]) + 1
        if count <= max_shards:
            break
        fps, bps = fps * 2, bps * 2
    return ids, ShardPlan(count, fps, bps)


def fit_shard_bounds(chunks: Callable[[], Iterable[np.ndarray]], files_per_shard: int, bytes_per_shard: int,
                     max_shards: int) -> ShardPlan:
    """:func:`cut_shards`' bounds for rows given in chunks (``chunks()`` yields them afresh on each call):
    doubled until the cut makes at most ``max_shards`` shards, one chunk in memory at a time."""
    fps, bps = files_per_shard, bytes_per_shard
    while True:
        cutter = ShardCutter(fps, bps)
        for sizes in chunks():
            cutter.cut(sizes)
            if cutter.count > max_shards:
                break
        if cutter.count <= max_shards:
            return ShardPlan(cutter.count, fps, bps)
        fps, bps = fps * 2, bps * 2


def _cut(sizes: np.ndarray, fps: int, bps: int) -> np.ndarray:
    """Greedy contiguous cut of one array: :class:`ShardCutter` fed it whole."""
    return ShardCutter(fps, bps).cut(sizes)


class ShardCutter:
    """The greedy contiguous cut of :func:`cut_shards`, fed the work rows' sizes a chunk at a time: a plan
    made in partitions cuts its rows without holding one array of them all (memory flat in the row count).

    A shard takes the next row while it holds fewer than ``fps`` rows and the row's bytes still fit in
    ``bps`` (a row larger than that gets a shard of its own). Vectorised per shard: each step finds the
    end of one shard with ``searchsorted``; the open shard carries over from one chunk to the next."""

    def __init__(self, fps: int, bps: int) -> None:
        self.fps, self.bps = fps, bps
        self.shard, self.files, self.bytes = 0, 0, 0  # the open shard and what it holds so far

    @property
    def count(self) -> int:
        """Shards cut so far, the open one included."""
        return self.shard + 1 if self.files else self.shard

    def cut(self, sizes: np.ndarray) -> np.ndarray:
        """The shard id of each row of ``sizes``, continuing the rows fed before."""
        cum = np.cumsum(sizes, dtype=np.int64)
        n = len(sizes)
        ids = np.empty(n, dtype=np.int32)
        pos = 0
        while pos < n:
            base = int(cum[pos - 1]) if pos else 0
            by_bytes = int(np.searchsorted(cum, base + self.bps - self.bytes, side="right"))
            end = min(pos + self.fps - self.files, by_bytes)
            end = min(max(end, pos + 1 if self.files == 0 else pos), n)
            if end > pos:
                ids[pos:end] = self.shard
                self.files += end - pos
                self.bytes += int(cum[end - 1]) - base
                pos = end
            if pos < n:  # the open shard is full: the next row starts another
                self.shard, self.files, self.bytes = self.shard + 1, 0, 0
        return ids


def estimates(manifest: pa.Table) -> dict[str, int]:
    action = manifest["action"]
    is_copy_file = pc.and_(pc.equal(action, "copy"), pc.equal(manifest["type"], "file"))
    counts = {a: 0 for a in ACTIONS}
    for row in pc.value_counts(action).to_pylist():
        counts[row["values"]] = row["counts"]
    return {
        "EstimatedFilesToTransfer": counts["copy"] + counts["mkdir"] + counts["meta"] + counts["link"],
        "EstimatedBytesToTransfer": int(pc.sum(pc.if_else(is_copy_file, manifest["size"], 0)).as_py() or 0),
        "EstimatedFilesToDelete": counts["delete"],
        "FilesSkippedEstimate": counts["skip"],
        "FilesWithErrors": counts["error"],
        "FilesPrepared": int(manifest.num_rows - counts["delete"]),
    }
