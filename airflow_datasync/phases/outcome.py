"""What TRANSFERRING left behind, as FINALIZE, VERIFYING and the report read it from the shards' files.

An execution goes on to FINALIZE and VERIFYING whatever its shards did, so these phases need to know
which entries did not transfer: entries whose copy FAILED (in a shard's results), entries PREPARING
refused (action ``error``: unreadable, an unsafe name, a name the destination cannot hold) and every
entry of a shard that never wrote its results (killed, out of retries). Deletions wait on all of them:
an unreadable source directory hides its children, which would otherwise look deleted at the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync.manifest import ExecutionDir
from airflow_datasync.units import counted, entries


@dataclass(frozen=True)
class TransferOutcome:
    #: Entries whose copy FAILED in a shard that reported.
    failed: pa.Array
    #: Entries PREPARING refused (never handed to a shard).
    refused: int
    #: Shards planned that wrote no results, and the entries they held.
    missing_shards: list[int]
    unfinished: pa.Array

    @property
    def not_transferred(self) -> pa.Array:
        """Paths that a shard was to carry out and did not: VERIFYING counts them as transfer failures."""
        return pa.concat_arrays([self.failed, self.unfinished])

    @property
    def copies_failed(self) -> int:
        return len(self.failed) + self.refused + len(self.unfinished)

    def why_no_deletions(self, deletions: int) -> str | None:
        """Why FINALIZE skips ``deletions`` (PreserveDeletedFiles=REMOVE), or None when it may delete."""
        if not deletions or not self.copies_failed:
            return None
        causes = []
        if len(self.failed):
            causes.append(f"{counted(len(self.failed), 'copy', 'copies')} failed")
        if self.refused:
            causes.append(f"{entries(self.refused)} {'was' if self.refused == 1 else 'were'} refused in PREPARING")
        if self.missing_shards:
            causes.append(f"{counted(len(self.missing_shards), 'shard')} never reported "
                          f"({entries(len(self.unfinished))} not copied)")
        return (f"{counted(deletions, 'deletion')} skipped because {' and '.join(causes)}: the destination keeps "
                "what it had until a run copies everything (PreserveDeletedFiles=REMOVE)")


def transfer_outcome(execution: ExecutionDir, manifest: pa.Table, shard_count: int) -> TransferOutcome:
    results = execution.shard_results()
    failed = results.filter(pc.equal(results["status"], "FAILED"))["path"].combine_chunks()
    reported = {s["shard"] for s in execution.shard_summaries()}
    missing = [s for s in range(shard_count) if s not in reported]
    unfinished = pa.array([], pa.string())
    if missing:
        work = manifest.filter(pc.is_in(manifest["shard"], pa.array(missing, pa.int32())))
        unfinished = work.filter(pc.is_in(work["action"], pa.array(["copy", "mkdir", "meta"])))["path"].combine_chunks()
    refused = int(pc.sum(pc.equal(manifest["action"], "error")).as_py() or 0)
    return TransferOutcome(failed.cast(pa.string()), refused, missing, unfinished.cast(pa.string()))
