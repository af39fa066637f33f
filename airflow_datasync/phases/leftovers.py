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

import datetime as dt
import json
import logging
import os
import posixpath
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_datasync.locations.base import UPLOAD, Cleanup, Leftover, Location, LocationError
from airflow_datasync.manifest import ExecutionDir, _running, utcnow

log = logging.getLogger("airflow_datasync")

#: A recorded upload whose shard's progress file was not rewritten for this long belongs to a worker that
#: is gone (a running shard rewrites it every few seconds).
STALE_PROGRESS_S = 15 * 60
#: How many earlier executions of the task PREPARING looks through for the records of unfinished uploads
#: the destination lists, and (stores that list none) how many of the latest it reads the records of.
LOOK_BACK, RECENT = 50, 5


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

    def _records(self) -> list[dict[str, Any]]:
        store = self.execution.store
        if store.local:
            blobs = [store.read_bytes(self.path)]
        else:
            prefix = posixpath.basename(self.path) + "."
            blobs = [store.read_bytes(self.execution.file(f"shards/{n}"))
                     for n in store.listdir(self.execution.file("shards")) if n.startswith(prefix)]
        out = []
        for blob in blobs:
            for line in (blob or b"").decode("utf-8", "replace").splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a line torn by a kill
        return out

    def open_uploads(self) -> list[dict[str, Any]]:
        """Uploads started and never ended, oldest first."""
        started: dict[str, dict[str, Any]] = {}
        for rec in self._records():
            if rec.get("upload_id") is None:
                continue  # an intent (see unrecorded_intents)
            if rec.get("event") == "started":
                started.setdefault(rec["upload_id"], rec)
            else:
                started.pop(rec.get("upload_id"), None)
        return sorted(started.values(), key=lambda r: r["at"])

    def unrecorded_intents(self) -> tuple[list[dict[str, Any]], set[str]]:
        """The uploads announced (``starting``, before CreateMultipartUpload) whose id was never recorded: the
        writer was killed between the server's answer and the record. With every upload id recorded."""
        intents: dict[str, dict[str, Any]] = {}
        ids = set()
        for rec in self._records():
            if rec.get("upload_id") is not None:
                ids.add(rec["upload_id"])
                if rec.get("event") == "started":
                    intents.pop(rec["path"], None)
            elif rec.get("event") == "starting":
                intents.setdefault(rec["path"], rec)
            else:
                intents.pop(rec["path"], None)
        return sorted(intents.values(), key=lambda r: r["at"]), ids


def clean_shard_start(execution: ExecutionDir, shard: int, dst: Location, rows: Iterable[dict[str, Any]]) -> Cleanup:
    """Remove what earlier tries of this shard left: temporaries of its tag in the directories ``rows``
    write to, and the uploads its journal holds open. Called only when an earlier try started."""
    tag = shard_tag(execution, shard)
    dirs = {posixpath.dirname(r["path"]) for r in rows if r["action"] == "copy"}
    records = UploadRecords(execution, shard)
    try:
        done = dst.remove_leftovers(dst.own_leftovers(dirs, tag), writers_gone=True)
        for rec in records.open_uploads():
            upload = Leftover(UPLOAD, rec["path"], tag, upload_id=rec["upload_id"], started=rec["at"])
            done.add(dst.remove_leftovers([upload], writers_gone=True))
            records("ended", upload)  # aborted, or gone already: not looked at again
        done.add(_abort_unrecorded(dst, records, tag))
    except (LocationError, OSError) as exc:  # a clean-up never fails the copy: the next execution looks again
        log.warning("shard %d: leftovers of earlier tries not removed: %s", shard, exc)
        return Cleanup()
    if done.removed or done.in_use:
        log.info("shard %d: removed %d leftover(s) of earlier tries (%d bytes)%s", shard, done.removed, done.bytes,
                 f"; {done.in_use} still in use, kept" if done.in_use else "")
    return done


#: How much earlier than its writer's announcement the server may date an upload (clocks differ).
CLOCK_SKEW = dt.timedelta(minutes=5)


def _abort_unrecorded(dst: Location, records: UploadRecords, tag: str) -> Cleanup:
    """Abort the uploads a killed writer started without recording their id: those of an announced object
    that no record names, started (by the server's clock) no earlier than the announcement."""
    intents, known = records.unrecorded_intents()
    done = Cleanup()
    if not intents or not dst.capabilities.lists_uploads:
        return done
    since = {rec["path"]: _when(rec["at"]) - CLOCK_SKEW for rec in intents}
    for upload in dst.pending_uploads():
        started = _when(upload.started) if upload.started else None
        if (upload.path in since and upload.upload_id not in known
                and (started is None or started >= since[upload.path])):
            done.add(dst.remove_leftovers([upload], writers_gone=True))
    for rec in intents:
        records("ended", Leftover(UPLOAD, rec["path"], tag))  # looked at: not again
    return done


def _when(iso: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def clean_destination(execution: ExecutionDir, dst: Location, *, dry_run: bool, uploads: bool = True) -> dict[str, Any]:
    """PREPARING's clean-up after the destination scan; returns the summary recorded in prepare.json (with
    ``error`` where it could not be done: a clean-up never fails PREPARING, the next one looks again).
    ``uploads=False`` (all partitions of a partitioned PREPARING but one): only the temporaries the scan met,
    as the unfinished uploads are listed for the whole destination."""
    try:
        return _clean_destination(execution, dst, dry_run=dry_run, uploads=uploads)
    except (LocationError, OSError) as exc:
        log.warning("PREPARING %s: leftovers of killed copies not removed: %s", execution.execution_id, exc)
        return {"dry_run": dry_run, "error": str(exc)}


def _clean_destination(execution: ExecutionDir, dst: Location, *, dry_run: bool, uploads: bool) -> dict[str, Any]:
    temporaries = dst.scanned_leftovers()
    # Where the store lists unfinished uploads (S3), records are looked up only for those it lists, and an
    # upload in no record is someone else's; elsewhere (Azure blocks) the latest executions' records are read.
    lists = dst.capabilities.lists_uploads
    pending = dst.pending_uploads() if lists and uploads else []
    records = _open_records(execution, LOOK_BACK if pending else RECENT) if uploads else []
    listed = {u.upload_id for u in pending}
    foreign = [u for u in pending if u.upload_id not in {r.upload.upload_id for r in records}]
    live = [r for r in records if r.alive]
    # A dead writer's upload the store no longer lists was completed or aborted: only its record is closed.
    gone = [r for r in records if not r.alive and lists and r.upload.upload_id not in listed]
    dead = [r for r in records if not r.alive and not (lists and r.upload.upload_id not in listed)]
    summary: dict[str, Any] = {"dry_run": dry_run, "temporaries_found": len(temporaries),
                               "uploads_found": len(pending) if lists else len(records),
                               "uploads_of_others": len(foreign),
                               "oldest_upload_of_others": min((u.started for u in foreign if u.started), default=None)}
    if dry_run:  # a dry run changes nothing at the destination: it says what a run would look at
        summary.update(temporaries_removed=0, bytes_removed=0, uploads_aborted=0, in_use=0)
        return summary
    removed = dst.remove_leftovers(temporaries) if temporaries else Cleanup()
    aborted = Cleanup()
    for rec in dead:
        done = dst.remove_leftovers([rec.upload])
        if done.removed:
            aborted.add(done)
            rec.close()
    for rec in gone:  # completed or aborted by someone else: nothing to ask the store about again
        rec.close()
    summary.update(temporaries_removed=removed.removed, bytes_removed=removed.bytes + aborted.bytes,
                   uploads_aborted=aborted.removed,
                   in_use=removed.in_use + len(live))
    if removed.removed or aborted.removed or removed.in_use:
        log.info("PREPARING %s: removed %d temporary file(s) of killed copies (%d bytes), aborted %d unfinished "
                 "upload(s)%s", execution.execution_id, removed.removed, removed.bytes, aborted.removed,
                 f"; {summary['in_use']} in use by running copies, kept" if summary["in_use"] else "")
    if foreign:
        log.warning("PREPARING %s: %d unfinished upload(s) below the destination were not started by this task "
                    "(oldest %s) and are left alone; a lifecycle rule (AbortIncompleteMultipartUpload) removes "
                    "them", execution.execution_id, len(foreign), summary["oldest_upload_of_others"])
    return summary


@dataclass
class _Record:
    """An upload an earlier execution recorded as started and never ended."""

    execution: ExecutionDir
    shard: int
    upload: Leftover
    #: Whether its writer may still be running it (then it is kept).
    alive: bool

    def close(self) -> None:
        """Record it ended in its own execution's journal, so later executions do not look at it again."""
        UploadRecords(self.execution, self.shard)("ended", self.upload)


def _open_records(execution: ExecutionDir, look_back: int) -> list[_Record]:
    """The uploads the latest ``look_back`` earlier executions of this task towards the same destination
    recorded and never ended."""
    task_dir = execution.root.rsplit("/", 1)[0]
    base = execution.uri.rsplit("/", 1)[0]
    earlier = sorted((n for n in execution.store.listdir(task_dir) if n < execution.execution_id), reverse=True)
    destination = (execution.read_json(execution.launch) or {}).get("destination")
    out: list[_Record] = []
    for name in earlier[:look_back]:
        candidate = ExecutionDir(f"{base}/{name}", execution.conn_id)
        shards = {n.split(".", 1)[0] for n in candidate.store.listdir(candidate.file("shards")) if ".uploads" in n}
        if not shards or (candidate.read_json(candidate.launch) or {}).get("destination") != destination:
            continue
        over = candidate.store.exists(candidate.report)
        for shard_name in sorted(shards):
            shard = int(shard_name.removeprefix("shard-"))
            for rec in UploadRecords(candidate, shard).open_uploads():
                upload = Leftover(UPLOAD, rec["path"], rec.get("tag"), upload_id=rec["upload_id"], started=rec["at"])
                out.append(_Record(candidate, shard, upload, not over and _writer_may_live(candidate, shard, rec)))
    return out


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


def merged_leftovers(summaries: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The clean-up summaries of a partitioned PREPARING (one per partition) as one: counts summed, the
    oldest foreign upload the earliest, the first error kept."""
    present = [s for s in summaries if s is not None]
    if len(present) <= 1:
        return present[0] if present else None
    merged: dict[str, Any] = {"dry_run": present[0].get("dry_run", False)}
    for summary in present:
        for key, value in summary.items():
            if key == "oldest_upload_of_others":
                if value is not None:
                    merged[key] = min(value, merged.get(key) or value)
                else:
                    merged.setdefault(key, None)
            elif key == "error":
                merged.setdefault(key, value)
            elif isinstance(value, int) and not isinstance(value, bool):
                merged[key] = merged.get(key, 0) + value
    return merged
