"""FINALIZE: after every shard, the deletions, then the directory metadata, deepest first."""

from __future__ import annotations

import logging
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync import plan as planning
from airflow_datasync.locations import Location, LocationError
from airflow_datasync.locations.base import DIR, DirectoryNotEmptyError, Metadata
from airflow_datasync.manifest import MANIFEST_SCHEMA, RESULT_SCHEMA, ExecutionDir, utcnow
from airflow_datasync.options import TaskOptions
from airflow_datasync.owners import OwnerMap
from airflow_datasync.phases.hardlinks import make_links
from airflow_datasync.phases.launch import opened
from airflow_datasync.phases.outcome import transfer_outcome
from airflow_datasync.phases.stripes import commit_stripes
from airflow_datasync.phases.transfer import copied_extras, metadata_for, run_by_depth, with_extras

log = logging.getLogger("airflow_datasync")


def finalize(execution: ExecutionDir) -> dict[str, Any]:
    """After every shard: deletions (PreserveDeletedFiles=REMOVE), hard links (preserve_hard_links), then
    directory metadata, deepest first.

    Deletes wait until all copies are done (like rsync's --delete-after) and are skipped, every one, when
    any entry did not transfer (a failed copy, an entry refused in PREPARING, a shard that never reported):
    a failed transfer never leaves the destination with less than it had. Directory metadata is applied
    either way, last, because writing into a directory changes its mtime.
    """
    t0 = time.monotonic()
    with opened(execution) as (_record, src, dst, options):
        if options.dry_run:
            return dry_run_summary("finalize", "nothing deleted, no directory metadata set")
        # Striped files first: published whole (or dropped) before anything reads the shards' results.
        striped = commit_stripes(execution, src, dst, options)
        options = planning.without_ownership(options, dst)
        manifest = execution.read_table(execution.manifest, MANIFEST_SCHEMA)
        deletes = manifest.filter(pc.equal(manifest["action"], "delete")).select(["path", "type"]).to_pylist()
        deletes.sort(key=lambda r: (r["path"].count("/"), r["type"] != DIR), reverse=True)
        shard_count = (execution.read_json(execution.prepare) or {}).get("shard_count", 0)
        outcome = transfer_outcome(execution, manifest, shard_count)
        skipped_because = outcome.why_no_deletions(len(deletes))
        results, failed = [], 0
        if skipped_because is not None:
            log.warning("FINALIZE %s: %s", execution.execution_id, skipped_because)
            results = [{"path": row["path"], "type": row["type"], "action": "delete", "status": "SKIPPED",
                        "warning": f"not deleted: {skipped_because}"} for row in deletes]
            deletes = []
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
        link_rows, link_failed = make_links(execution, dst, manifest, options)  # before directory times: links change them
        dir_rows = _directories_to_finish(manifest, dst.capabilities.directory_times_follow_children,
                                          overwrite=options.OverwriteMode != "NEVER")
        # A directory whose creation failed in its shard has something else at its path (a file, a symlink
        # out of the filters' scope): its metadata must not land on that entry.
        not_made = set(outcome.not_transferred.to_pylist())
        dir_rows = [row for row in dir_rows if row["path"] not in not_made]
        extras = copied_extras(src, dst, options)

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
        warnings = [w for found in run_by_depth(finish, dir_rows, options.workers(src, dst), "finalize",
                                                deepest_first=True) for w in found]
        execution.write_table(execution.delete_rows, pa.Table.from_pylist(results, schema=RESULT_SCHEMA), RESULT_SCHEMA)
        deleted = sum(1 for r in results if r["status"] == "SUCCESS")
        summary = {"ended_at": utcnow(), "duration_ms": int((time.monotonic() - t0) * 1000), "deleted": deleted,
                   "delete_failed": failed, "deletions_skipped": len(results) if skipped_because else 0,
                   "deletions_skipped_because": skipped_because, "linked": len(link_rows) - link_failed,
                   "link_failed": link_failed, "directories_updated": len(dir_rows), "warnings": warnings[:100],
                   "striped": striped}
        execution.write_json(execution.finalize, summary)
        return summary


def _directories_to_finish(manifest: pa.Table, follow_children: bool = True, overwrite: bool = True
                           ) -> list[dict[str, Any]]:
    """Directories whose metadata must be (re)applied after the shards: those created or with metadata to
    update, and the parents of every entry written or deleted (that changed their mtime). Directories
    nothing touched keep what they had, which matched: a re-run of a large tree costs no call per directory.
    Where directories do not change with their children (object-store markers, written with their
    metadata by the shard), only those planned for a metadata update. With OverwriteMode=NEVER a directory
    that existed is never touched, whatever was written into it."""
    action = manifest["action"]
    if not follow_children:
        return manifest.filter(pc.and_(pc.equal(manifest["type"], DIR), pc.equal(action, "meta"))).to_pylist()
    changed = manifest.filter(pc.is_in(action, pa.array(["copy", "mkdir", "delete", "link"])))["path"].to_pylist()
    parents = {p.rsplit("/", 1)[0] for p in changed if "/" in p}
    is_dir = pc.equal(manifest["type"], DIR)
    wanted = pc.is_in(action, pa.array(["mkdir", "meta"]))
    if overwrite:
        wanted = pc.or_(wanted, pc.and_(pc.equal(action, "skip"),
                                        pc.is_in(manifest["path"], pa.array(sorted(parents), pa.string()))))
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


def dry_run_summary(phase: str, what: str) -> dict[str, Any]:
    """What finalize and verify return for a dry run: they do nothing and write no file."""
    log.info("%s: dry run: %s", phase, what)
    return {"dry_run": True, "detail": f"dry run: {what}"}
