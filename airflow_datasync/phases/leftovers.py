"""What killed copies leave at a destination, and who removes it.

A copy killed half way (``kill -9``, a lost worker) leaves its temporary (file systems, SMB: a
``.~ds-<tag>-…`` name) or its unfinished upload (S3 multipart, Azure uncommitted blocks). Two cleaners:

- a **retried shard**, at its start, removes what its own earlier tries left in the directories its rows
  write to and aborts the uploads they recorded (Airflow runs one try of a task at a time, so those
  writers are gone);
- **PREPARING of the next execution** removes the dead temporaries its destination scan met (a backend
  hides them from the listing and tells which a live writer still holds) and aborts the unfinished
  uploads below the destination that executions of this task recorded and that are over; uploads it finds
  no record of are left alone and reported (count, oldest), as someone else's.

Uploads are recorded in the execution's store, one ``shards/shard-NNNNN.uploads`` journal per shard
(JSON lines "started" and "ended", with the writer's host and pid): S3's ListMultipartUploads tells a
key, an upload id and a start time, nothing that says who started it.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from airflow_datasync.locations.base import UPLOAD, Cleanup, Leftover, Location
from airflow_datasync.manifest import ExecutionDir, _running, utcnow

log = logging.getLogger("airflow_datasync")

#: A recorded upload whose shard's progress file was not rewritten for this long belongs to a worker that
#: is gone (a running shard rewrites it every few seconds).
STALE_PROGRESS_S = 15 * 60
#: How many earlier executions of the task PREPARING looks through for the records of unfinished uploads.
LOOK_BACK = 50


def shard_tag(execution: ExecutionDir, shard: int) -> str:
    """The writer tag of one shard of an execution: in its temporaries' names and its uploads' records."""
    return f"{execution.execution_id[-8:]}-{shard}"


class UploadRecords:
    """The ``uploads`` journal of one shard: a line per upload in parts started and ended, written before the
    upload's first part (a local store appends to one file, an S3 store writes an object per line)."""

    def __init__(self, execution: ExecutionDir, shard: int) -> None:
        self.execution, self.shard = execution, shard
        self.path = execution.shard_file(shard, "uploads")
        self._lock = threading.Lock()
        self._host, self._pid = socket.gethostname(), os.getpid()

    def __call__(self, event: str, upload: Leftover) -> None:
        line = json.dumps({"event": event, "path": upload.path, "upload_id": upload.upload_id, "tag": upload.tag,
                           "host": self._host, "pid": self._pid, "at": utcnow()}) + "\n"
        store = self.execution.store
        with self._lock:
            if store.local:
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())  # the record must outlive a kill right after CreateMultipartUpload
            else:
                store.write_bytes(f"{self.path}.{time.time_ns():020d}-{secrets.token_hex(2)}", line.encode())

    def open_uploads(self) -> list[dict[str, Any]]:
        """Uploads started and never ended, oldest first."""
        store = self.execution.store
        if store.local:
            blobs = [store.read_bytes(self.path)]
        else:
            prefix = posixpath.basename(self.path) + "."
            blobs = [store.read_bytes(self.execution.file(f"shards/{n}"))
                     for n in store.listdir(self.execution.file("shards")) if n.startswith(prefix)]
        started: dict[str, dict[str, Any]] = {}
        for blob in blobs:
            for line in (blob or b"").decode("utf-8", "replace").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line torn by a kill
                if rec.get("event") == "started":
                    started.setdefault(rec["upload_id"], rec)
                else:
                    started.pop(rec.get("upload_id"), None)
        return sorted(started.values(), key=lambda r: r["at"])


def clean_shard_start(execution: ExecutionDir, shard: int, dst: Location, rows: Iterable[dict[str, Any]]) -> Cleanup:
    """Remove what earlier tries of this shard left: temporaries of its tag in the directories ``rows``
    write to, and the uploads its journal holds open. Called only when an earlier try started."""
    tag = shard_tag(execution, shard)
    dirs = {posixpath.dirname(r["path"]) for r in rows if r["action"] == "copy"}
    done = dst.remove_leftovers(dst.own_leftovers(dirs, tag), writers_gone=True)
    uploads = [Leftover(UPLOAD, r["path"], tag, upload_id=r["upload_id"], started=r["at"])
               for r in UploadRecords(execution, shard).open_uploads()]
    if uploads:
        done.add(dst.remove_leftovers(uploads, writers_gone=True))
    if done.removed or done.in_use:
        log.info("shard %d: removed %d leftover(s) of earlier tries (%d bytes)%s", shard, done.removed, done.bytes,
                 f"; {done.in_use} still in use, kept" if done.in_use else "")
    return done


def clean_destination(execution: ExecutionDir, dst: Location, *, dry_run: bool) -> dict[str, Any]:
    """PREPARING's clean-up after the destination scan; returns the summary recorded in prepare.json."""
    temporaries = dst.scanned_leftovers()
    pending = dst.pending_uploads()
    ours, foreign = _recorded(execution, pending) if pending else ([], [])
    dead = [upload for upload, alive in ours if not alive]
    summary: dict[str, Any] = {"dry_run": dry_run, "temporaries_found": len(temporaries),
                               "uploads_found": len(pending), "uploads_of_others": len(foreign),
                               "oldest_upload_of_others": min((u.started for u in foreign if u.started), default=None)}
    if dry_run:  # a dry run changes nothing at the destination: it says what a run would look at
        summary.update(temporaries_removed=0, bytes_removed=0, uploads_aborted=0, in_use=0)
        return summary
    removed = dst.remove_leftovers(temporaries) if temporaries else Cleanup()
    aborted = dst.remove_leftovers(dead) if dead else Cleanup()
    summary.update(temporaries_removed=removed.removed, bytes_removed=removed.bytes + aborted.bytes,
                   uploads_aborted=aborted.removed, in_use=removed.in_use + len(ours) - len(dead))
    if removed.removed or aborted.removed or removed.in_use:
        log.info("PREPARING %s: removed %d temporary file(s) of killed copies (%d bytes), aborted %d unfinished "
                 "upload(s)%s", execution.execution_id, removed.removed, removed.bytes, aborted.removed,
                 f"; {summary['in_use']} in use by running copies, kept" if summary["in_use"] else "")
    if foreign:
        log.warning("PREPARING %s: %d unfinished upload(s) below the destination were not started by this task "
                    "(oldest %s) and are left alone; a lifecycle rule (AbortIncompleteMultipartUpload) removes "
                    "them", execution.execution_id, len(foreign), summary["oldest_upload_of_others"])
    return summary


def _recorded(execution: ExecutionDir, pending: list[Leftover]) -> tuple[list[tuple[Leftover, bool]], list[Leftover]]:
    """Split ``pending`` uploads into those earlier executions of this task recorded (each with whether its
    writer may still be alive) and the others."""
    wanted = {u.upload_id: u for u in pending}
    task_dir = execution.root.rsplit("/", 1)[0]
    base = execution.uri.rsplit("/", 1)[0]
    earlier = sorted((n for n in execution.store.listdir(task_dir) if n < execution.execution_id), reverse=True)
    ours: list[tuple[Leftover, bool]] = []
    for name in earlier[:LOOK_BACK]:
        if not wanted:
            break
        candidate = ExecutionDir(f"{base}/{name}", execution.conn_id)
        over = candidate.store.exists(candidate.report)
        shards = {n.split(".", 1)[0] for n in candidate.store.listdir(candidate.file("shards")) if ".uploads" in n}
        for shard_name in sorted(shards):
            shard = int(shard_name.removeprefix("shard-"))
            for rec in UploadRecords(candidate, shard).open_uploads():
                upload = wanted.pop(rec["upload_id"], None)
                if upload is not None:
                    alive = not over and _writer_may_live(candidate, shard, rec)
                    ours.append((Leftover(UPLOAD, upload.path, rec.get("tag"), upload.size, upload.upload_id,
                                          upload.started), alive))
    return ours, list(wanted.values())


def _writer_may_live(execution: ExecutionDir, shard: int, rec: dict[str, Any]) -> bool:
    """Whether the process that started the upload ``rec`` may still be running it: on this host its pid
    tells; elsewhere, the shard's progress file (rewritten every few seconds while a try runs)."""
    if rec.get("host") == socket.gethostname():
        return _running(int(rec.get("pid") or 0))
    progress = execution.read_json(execution.progress_file(shard)) or {}
    if progress.get("state") not in (None, "RUNNING"):
        return False
    updated = progress.get("updated_at")
    if not updated:
        return True
    age = (datetime.now(UTC) - datetime.fromisoformat(updated)).total_seconds()
    return age < STALE_PROGRESS_S
