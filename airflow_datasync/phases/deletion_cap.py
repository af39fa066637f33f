"""The deletion cap (PreserveDeletedFiles=REMOVE), checked in PREPARING, when the plan knows every delete.

A source that is suddenly empty or half there (an NFS export not mounted looks like an empty directory;
a wrong prefix lists nothing) turns REMOVE into "delete the destination". Such a plan is wrong as a
whole, so the execution stops before copying or deleting anything, and says which counts it saw and
which option to raise (like rclone's ``--max-delete``, but also as a share of the destination, on by
default). A dry run reports what a run would refuse instead.
"""

from __future__ import annotations

from airflow_datasync.manifest import ExecutionDir
from airflow_datasync.options import OptionsError, TaskOptions
from airflow_datasync.units import counted, entries

#: The share cap (max_delete_percent) leaves plans of fewer deletions alone: a first REMOVE run into a folder
#: holding a few stale files deletes most of it and is right to; the empty-source rule and max_deletes
#: still apply to them.
PERCENT_CAP_FLOOR = 10


class DeletionCapError(OptionsError):
    """The plan would delete more than the deletion cap allows: nothing was copied or deleted."""


def destination_entries_in_scope(execution: ExecutionDir) -> int:
    """The destination's entries the plan compared (those the filters keep), streamed from the manifest."""
    total = 0
    for batch in execution.iter_batches(execution.manifest):
        total += batch.num_rows - batch.column(batch.schema.get_field_index("dst_type")).null_count
    return total


def deletion_cap_problem(options: TaskOptions, deletes: int, source_entries: int, destination_entries: int) -> str | None:
    """Why the cap refuses a plan of ``deletes`` deletions, or None. ``source_entries``: entries in scope at
    the source; ``destination_entries``: at the destination (both after filters)."""
    if options.PreserveDeletedFiles != "REMOVE" or deletes == 0:
        return None
    if source_entries == 0 and not options.allow_empty_source_delete:
        return (f"the source is empty and PreserveDeletedFiles=REMOVE would delete all {entries(deletes)} at the "
                "destination (an unmounted export or a wrong path looks like an empty source); nothing was copied "
                "or deleted. If the source really is empty now, set allow_empty_source_delete=true")
    if options.max_deletes >= 0 and deletes > options.max_deletes:
        return (f"PreserveDeletedFiles=REMOVE would delete {entries(deletes)}, more than max_deletes="
                f"{options.max_deletes}; nothing was copied or deleted. Check the source, or raise max_deletes "
                "(-1: no limit by count)")
    share = 100 * deletes / destination_entries if destination_entries else 100.0
    if share > options.max_delete_percent and deletes >= PERCENT_CAP_FLOOR:
        return (f"PreserveDeletedFiles=REMOVE would delete {entries(deletes)} of the destination's "
                f"{counted(destination_entries, 'entry', 'entries')} ({share:.0f} %), more than "
                f"max_delete_percent={options.max_delete_percent}; nothing was copied or deleted. Check the source "
                "(is it mounted, is the path right?), or raise max_delete_percent (100: no limit by share)")
    return None
