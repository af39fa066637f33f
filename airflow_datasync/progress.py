"""Progress of long phases: rate-limited log lines (scanning, verifying), the live progress file of a
TRANSFERRING shard (:class:`ShardProgress`), and the BytesPerSecond limiter."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from airflow_datasync.manifest import utcnow
from airflow_datasync.report_text import format_bytes, format_duration
from airflow_datasync.units import counted

log = logging.getLogger("airflow_datasync")


class Progress:
    """Counts work from many threads and logs a line at most every ``every`` seconds."""

    def __init__(self, what: str, total_items: int | None = None, total_bytes: int | None = None, every: float = 5.0):
        self.what, self.total_items, self.total_bytes, self.every = what, total_items, total_bytes, every
        self.items = self.bytes = 0
        self.started = self._last = time.monotonic()
        self._lock = threading.Lock()

    def add(self, items: int = 1, nbytes: int = 0) -> None:
        with self._lock:
            self.items += items
            self.bytes += nbytes
            now = time.monotonic()
            if now - self._last < self.every:
                return
            self._last = now
        self.log()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate, bps = self.items / elapsed, self.bytes / elapsed
        done = f"{self.items:,}/{self.total_items:,} entries" if self.total_items else counted(self.items, "entry", "entries")
        parts = [f"{self.what}: {done}",
                 f"{rate:,.0f} files/s"]
        if self.bytes or self.total_bytes:  # a scan counts entries only
            parts[1:1] = [format_bytes(self.bytes)]
            parts.append(f"{format_bytes(bps)}/s")
        if self.total_bytes and bps > 0 and self.total_bytes > self.bytes:
            parts.append(f"ETA {format_duration((self.total_bytes - self.bytes) / bps * 1000)}")
        elif self.total_items and rate > 0 and self.total_items > self.items:
            parts.append(f"ETA {format_duration((self.total_items - self.items) / rate * 1000)}")
        return ", ".join(parts)

    def log(self) -> None:
        log.info("%s", self.line())


class ShardProgress:
    """Live progress of one TRANSFERRING shard, written as ``progress/shard-NNNNN.json`` for the UI.

    The copy threads only count (one lock and an addition per chunk or entry): bytes as each chunk
    streams (:meth:`add_bytes`), entries when they end (:meth:`end`). A background thread snapshots the
    counters: it calls ``write`` every ``file_every`` seconds (the UI polls that file) and logs the same
    line every ``log_every`` seconds (a task log is read by a person scrolling, where a line every 2 s
    would bury everything else). It also writes once at :meth:`start` and once at :meth:`finish`.

    Entries a retried shard finds in its journal count as done from the start (``done_items``/``done_bytes``);
    the rates count only what this attempt moved, so a resumed attempt does not claim a burst of speed.
    """

    MAX_CURRENT = 5

    def __init__(self, shard: int, total_items: int, total_bytes: int, write: Callable[[dict[str, Any]], None], *,
                 try_number: int | None = None, done_items: int = 0, done_bytes: int = 0,
                 file_every: float = 2.0, log_every: float = 10.0) -> None:
        self.shard, self.total_items, self.total_bytes, self.try_number = shard, total_items, total_bytes, try_number
        self.items, self.bytes = done_items, done_bytes
        self._resumed_items, self._resumed_bytes = done_items, done_bytes
        self._write, self.file_every, self.log_every = write, file_every, log_every
        self.hostname = socket.gethostname()
        self._current: dict[str, None] = {}  # entries being copied now, oldest first (a dict keeps order)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_failed = False
        self.started_at, self._t0 = utcnow(), time.monotonic()

    # -- counting, from the copy threads ----------------------------------------------------------------
    def begin(self, path: str) -> None:
        with self._lock:
            self._current[path] = None

    def add_bytes(self, nbytes: int) -> None:
        with self._lock:
            self.bytes += nbytes

    def end(self, path: str, nbytes: int = 0) -> None:
        """An entry ended (copied or failed); ``nbytes``: its bytes not already counted as they streamed."""
        with self._lock:
            self._current.pop(path, None)
            self.items += 1
            self.bytes += nbytes

    def resumed(self, path: str) -> None:
        """An entry found done in the journal (and still so at the destination): counted at the start."""
        with self._lock:
            self._current.pop(path, None)

    def uncount(self, nbytes: int) -> None:
        """A journal entry counted as done at the start is stale (the destination changed): it is copied
        again, and counted again when it ends."""
        with self._lock:
            self.items -= 1
            self.bytes -= nbytes
            self._resumed_items -= 1
            self._resumed_bytes -= nbytes

    def merge(self, counts: dict[str, int]) -> None:
        """Counts relayed by a copy process (see :class:`CountingProgress`): what it ended, streamed and
        uncounted since its last report."""
        with self._lock:
            self.items += counts["items"]
            self.bytes += counts["bytes"]
            self._resumed_items += counts["resumed_items"]
            self._resumed_bytes += counts["resumed_bytes"]

    # -- snapshots --------------------------------------------------------------------------------------
    def snapshot(self, state: str = "RUNNING") -> dict[str, Any]:
        """The progress file's content (its keys are a contract with the UI: see docs/manifest.md)."""
        with self._lock:
            items, nbytes = self.items, self.bytes
            current = list(self._current)[: self.MAX_CURRENT] if state == "RUNNING" else []
            moved_items, moved_bytes = items - self._resumed_items, nbytes - self._resumed_bytes
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        bps, fps = moved_bytes / elapsed, moved_items / elapsed
        return {
            "shard": self.shard, "state": state, "try_number": self.try_number, "hostname": self.hostname,
            "files_done": items, "files_total": self.total_items, "bytes_done": nbytes, "bytes_total": self.total_bytes,
            "current": current, "bytes_per_second": round(bps, 1), "files_per_second": round(fps, 2),
            "eta_seconds": self._eta(state, items, nbytes, bps, fps),
            "started_at": self.started_at, "updated_at": utcnow(),
        }

    def _eta(self, state: str, items: int, nbytes: int, bps: float, fps: float) -> float | None:
        if state != "RUNNING":
            return 0.0 if state == "SUCCESS" else None
        # Bytes dominate a shard of big files and entries one of small files: the longer estimate wins.
        # A rate still at zero gives no estimate (the first big file has not ended: no entry rate yet).
        left = [(self.total_bytes - nbytes, bps), (self.total_items - items, fps)]
        if all(todo <= 0 for todo, _ in left):
            return 0.0
        estimates = [todo / rate for todo, rate in left if todo > 0 and rate > 0]
        return round(max(estimates), 1) if estimates else None

    def line(self, snap: dict[str, Any] | None = None) -> str:
        return progress_line(snap or self.snapshot())

    # -- the writer thread ------------------------------------------------------------------------------
    def start(self) -> None:
        resumed = (f", {counted(self.items, 'entry', 'entries')} ({format_bytes(self.bytes)}) already done by an earlier try"
                   if self.items else "")
        log.info("shard %d: starting, %s, %s%s", self.shard, counted(self.total_items, "entry", "entries"),
                 format_bytes(self.total_bytes), resumed)
        self._emit(self.snapshot(), log_it=False)
        self._thread = threading.Thread(target=self._run, name=f"progress-shard{self.shard}", daemon=True)
        self._thread.start()

    def finish(self, state: str) -> dict[str, Any]:
        """Stop the thread, then write and log the final state (SUCCESS or FAILED) with the final counters."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        snap = self.snapshot(state)
        self._emit(snap, log_it=True)
        return snap

    def _run(self) -> None:
        last_log = time.monotonic()
        while not self._stop.wait(self.file_every):
            now = time.monotonic()
            log_it = now - last_log >= self.log_every
            if log_it:
                last_log = now
            self._emit(self.snapshot(), log_it=log_it)

    def _emit(self, snap: dict[str, Any], log_it: bool) -> None:
        if log_it:
            log.info("%s", self.line(snap))
        try:
            self._write(snap)
        except OSError as exc:  # the store blinked: progress is advisory and must never fail the copy
            if not self._write_failed:
                log.warning("shard %d: could not write its progress file (%s); the copy goes on", self.shard, exc)
            self._write_failed = True


def progress_line(s: dict[str, Any]) -> str:
    """A progress file's snapshot as the task log shows it: entries and bytes done of total, rates, then
    the ETA and a file being copied (running) or the final state."""
    parts = [f"shard {s['shard']}: {s['files_done']:,}/{counted(s['files_total'], 'entry', 'entries')}",
             f"{format_bytes(s['bytes_done'])} of {format_bytes(s['bytes_total'])}",
             f"{format_bytes(s['bytes_per_second'])}/s", f"{s['files_per_second']:,.1f} files/s"]
    if s["state"] == "RUNNING":
        eta = s["eta_seconds"]
        parts.append("ETA " + (format_duration(eta * 1000) if eta is not None else "unknown"))
        if s["current"]:
            more = len(s["current"]) - 1
            parts.append("copying " + s["current"][0] + (f" (+{more} more)" if more else ""))
    else:
        parts.append(s["state"] + (f" (try {s['try_number']})" if s.get("try_number") else ""))
    return ", ".join(parts)


class RateLimiter:
    """A token bucket shared by all copy threads of one task (BytesPerSecond)."""

    def __init__(self, bytes_per_second: int) -> None:
        self.rate = bytes_per_second
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def acquire(self, nbytes: int) -> None:
        if self.rate <= 0 or nbytes <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now)
            self._next = start + nbytes / self.rate
            wait = start - now
        if wait > 0:
            time.sleep(wait)


class CountingProgress:
    """What a copy process gives its :class:`ShardCopier` instead of a :class:`ShardProgress`: the same
    calls, counted as deltas that :meth:`take` hands over (the parent process merges them into the shard's
    one progress file with :meth:`ShardProgress.merge`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = self._zero()

    @staticmethod
    def _zero() -> dict[str, int]:
        return {"items": 0, "bytes": 0, "resumed_items": 0, "resumed_bytes": 0}

    def begin(self, path: str) -> None:
        pass

    def resumed(self, path: str) -> None:
        pass

    def add_bytes(self, nbytes: int) -> None:
        with self._lock:
            self._counts["bytes"] += nbytes

    def end(self, path: str, nbytes: int = 0) -> None:
        with self._lock:
            self._counts["items"] += 1
            self._counts["bytes"] += nbytes

    def uncount(self, nbytes: int) -> None:
        with self._lock:
            c = self._counts
            c["items"] -= 1
            c["bytes"] -= nbytes
            c["resumed_items"] -= 1
            c["resumed_bytes"] -= nbytes

    def take(self) -> dict[str, int]:
        """The counts since the last call, reset."""
        with self._lock:
            counts, self._counts = self._counts, self._zero()
        return counts
